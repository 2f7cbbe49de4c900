/* qgt_kern_impl.h -- internals shared by the csrc/qgt_kern_*.c files only.
 *
 * Holds the SIMD vector helpers and the compiled form of an operation
 * (qk_op) that qgt_kern_compile.c builds and the kernel files execute.
 *
 * Vectors use GCC/Clang vector extensions so one source builds for AVX-512
 * (8 doubles = 4 complex per vector), AVX (2 complex) and the portable
 * baseline (1 complex); the width follows the compiler's target flags.
 * Amplitudes stay interleaved (re, im).  A complex product m * a is written
 *     mr * a + mi_signed * swap(a),   mi_signed = (-mi, +mi, -mi, +mi, ...)
 * so it costs two FMAs and one in-lane shuffle, with no sign fix-up.
 */
#ifndef QGT_KERN_IMPL_H
#define QGT_KERN_IMPL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qgt_kern.h"

#ifdef QK_SINGLE
/* complex64 build (csrc/f32/): the same sources with float lanes.  With AVX-512
 * a vector holds 8 complex64 (three low buffer bits inside one vector), so the
 * arithmetic-bound kernels do twice the work per instruction of the double build. */
#if defined(__AVX512F__)
#define QK_VD 16
#define QK_LVW 3
#define QK_ISA "avx512 vectors, 8 complex64 per vector"
#elif defined(__AVX__)
#define QK_VD 8
#define QK_LVW 2
#define QK_ISA "avx vectors, 4 complex64 per vector"
#else
#define QK_VD 4
#define QK_LVW 1
#define QK_ISA "portable vectors, 2 complex64 per vector"
#endif
#elif defined(__AVX512F__)
#define QK_VD 8
#define QK_LVW 2
#define QK_ISA "avx512 vectors, 4 complex per vector"
#elif defined(__AVX__)
#define QK_VD 4
#define QK_LVW 1
#define QK_ISA "avx vectors, 2 complex per vector"
#else
#define QK_VD 2
#define QK_LVW 0
#define QK_ISA "portable vectors, 1 complex per vector"
#endif
#define QK_VW (QK_VD / 2) /* complex amplitudes per vector */

/* this thread's number and the team size inside an OpenMP region (0 and 1 without) */
#ifdef _OPENMP
#include <omp.h>
#define QK_TID omp_get_thread_num()
#define QK_NTH omp_get_num_threads()
#else
#define QK_TID 0
#define QK_NTH 1
#endif

/* qk_real: one real part of an amplitude (qgt_amp, from qgt_kern.h) */
typedef qgt_amp qk_real;
typedef qk_real qk_vd __attribute__((vector_size(QK_VD * sizeof(qk_real))));
#ifdef QK_SINGLE
typedef int32_t qk_vi __attribute__((vector_size(QK_VD * sizeof(qk_real))));
#else
typedef long long qk_vi __attribute__((vector_size(QK_VD * sizeof(qk_real))));
#endif

#define QK_INLINE static inline __attribute__((always_inline))

/* memcpy loads: the state may be only 16-byte aligned (numpy's default). */
QK_INLINE qk_vd qk_ld(const qk_real *p)
{
    qk_vd v;
    memcpy(&v, p, sizeof v);
    return v;
}

QK_INLINE void qk_st(qk_real *p, qk_vd v)
{
    memcpy(p, &v, sizeof v);
}

QK_INLINE qk_vd qk_bc(qk_real x)
{
    qk_vd z = {0};
    return z + x;
}

/* (re, im) -> (im, re) in every complex lane */
QK_INLINE qk_vd qk_sw(qk_vd v)
{
#if QK_VD == 16
    return __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
#elif QK_VD == 8
    return __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);
#elif QK_VD == 4
    return __builtin_shufflevector(v, v, 1, 0, 3, 2);
#else
    return __builtin_shufflevector(v, v, 1, 0);
#endif
}

/* complex lane l takes lane l ^ s (s < QK_VW): a low target bit inside a vector */
#if QK_VD == 16
/* the 16 float lanes of complex lanes 0..7, each xor-ed with S */
#define QK_P16(v, S)                                                                         \
    __builtin_shufflevector(v, v, 2 * (0 ^ S), 2 * (0 ^ S) + 1, 2 * (1 ^ S), 2 * (1 ^ S) + 1, \
                            2 * (2 ^ S), 2 * (2 ^ S) + 1, 2 * (3 ^ S), 2 * (3 ^ S) + 1,       \
                            2 * (4 ^ S), 2 * (4 ^ S) + 1, 2 * (5 ^ S), 2 * (5 ^ S) + 1,       \
                            2 * (6 ^ S), 2 * (6 ^ S) + 1, 2 * (7 ^ S), 2 * (7 ^ S) + 1)
#endif

QK_INLINE qk_vd qk_perm(qk_vd v, int s)
{
#if QK_VD == 16
    switch (s) {
    case 1:
        return QK_P16(v, 1);
    case 2:
        return QK_P16(v, 2);
    case 3:
        return QK_P16(v, 3);
    case 4:
        return QK_P16(v, 4);
    case 5:
        return QK_P16(v, 5);
    case 6:
        return QK_P16(v, 6);
    case 7:
        return QK_P16(v, 7);
    default:
        return v;
    }
#elif QK_VD == 8
    switch (s) {
    case 1:
        return __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
    case 2:
        return __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
    case 3:
        return __builtin_shufflevector(v, v, 6, 7, 4, 5, 2, 3, 0, 1);
    default:
        return v;
    }
#elif QK_VD == 4
    return s ? __builtin_shufflevector(v, v, 2, 3, 0, 1) : v;
#else
    (void)s;
    return v;
#endif
}

/* lanes where m is all-ones take a, the others b (bitwise, so exact) */
QK_INLINE qk_vd qk_sel(qk_vi m, qk_vd a, qk_vd b)
{
    return (qk_vd)(((qk_vi)a & m) | ((qk_vi)b & ~m));
}

/* sign pattern (-1, +1, ...) that turns mi into mi_signed */
QK_INLINE qk_vd qk_sgn(void)
{
    qk_vd s;
    for (int i = 0; i < QK_VD; i++)
        s[i] = (i & 1) ? 1.0 : -1.0;
    return s;
}

/* lane sums widened to double: reductions add vectors over short runs only, so a
 * complex64 state's sums keep double accuracy */
QK_INLINE double qk_hsum(qk_vd v)
{
    double s = 0.0;
    for (int i = 0; i < QK_VD; i++)
        s += v[i];
    return s;
}

/* sum over complex lanes of re - im: Im(conj(a) b) from the lanes of a * swap(b) */
QK_INLINE double qk_hdiff(qk_vd v)
{
    double s = 0.0;
    for (int i = 0; i < QK_VD; i += 2)
        s += v[i] - v[i + 1];
    return s;
}

QK_INLINE uint64_t qk_lowmask(int b)
{
    return b >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << b) - 1);
}

/* scatter the low bits of v into the set bits of mask (software pdep) */
QK_INLINE uint64_t qk_pdep(uint64_t v, uint64_t mask)
{
    uint64_t r = 0;
    for (uint64_t bb = 1; mask; bb <<= 1) {
        uint64_t low = mask & (~mask + 1);
        if (v & bb)
            r |= low;
        mask &= mask - 1;
    }
    return r;
}

/* Run enumeration: all buffer indices i < 2^w with (i & fm) == fv come as
 * runs of 2^p contiguous indices, p = lowest bit of fm.  `free_hi` holds the
 * free bits above p; run starts are fv | f for every subset f of free_hi,
 * visited in increasing order by f = ((f | ~free_hi) + 1) & free_hi. */
QK_INLINE void qk_runs(int w, uint64_t fm, uint64_t *free_hi, size_t *runlen)
{
    int p = fm ? __builtin_ctzll(fm) : w;
    if (p > w)
        p = w;
    *runlen = (size_t)1 << p;
    *free_hi = qk_lowmask(w) & ~fm & ~qk_lowmask(p);
}

#define QK_NEXT(f, free_hi) ((((f) | ~(free_hi)) + 1) & (free_hi))

/* Compiled kinds (see qgt_kern_compile.c for how an op is classified). */
enum {
    QK_NOP = 0,    /* identity: skipped */
    QK_DIAG,       /* per-unit sub-diagonal, lane-varying factor vectors */
    QK_MOVE,       /* exact X or SWAPBITS on high bits: swap runs, no arithmetic */
    QK_LSWAP,      /* exchange a low (in-vector) bit with a high bit */
    QK_D1H,        /* dense 1-qubit, target >= QK_LVW */
    QK_D2H,        /* dense 2-qubit, both targets high */
    QK_DGU,        /* generic dense, all targets high: sparse rows, scalar coefs */
    QK_DGL,        /* generic dense with low targets: lane-varying coefs */
    QK_SCALAR      /* buffer narrower than one vector: plain scalar code */
};

typedef struct {
    int kind;
    /* controls outside W, on global physical bits: checked once per unit */
    uint64_t ocm, ocv;
    /* controls on high buffer bits: fixed bits of the run enumeration */
    uint64_t fm, fv;
    /* controls on low buffer bits: lanes that may change (uniform kernels) */
    int lsel;
    qk_vi lmask;
    /* QK_MOVE: amplitudes i with (i & mfm) == mfv trade with i + moff;
     * QK_LSWAP: lmask/lmask2 = lanes taking from the upper/lower partner */
    uint64_t mfm, mfv;
    size_t moff;
    qk_vi lmask2;
    /* high (>= QK_LVW) and low targets, as buffer bits, in op order */
    int kh, kl;
    int hb[QGT_KERN_MAX_TARGETS];
    int lb[QGT_KERN_MAX_TARGETS];
    uint64_t ubits; /* high buffer bits the op pins (fm | high targets) */
    /* QK_D1H/QK_D2H/QK_DGU: scalar coefficients; DGU keeps sparse rows */
    qk_real *cr, *ci;
    int real;  /* every ci is 0: half the FMAs and no shuffles */
    int xrot;  /* 1-qubit, real diagonal and imaginary off-diagonal (rx): half the FMAs */
    int dense; /* DGU rows are full: no column indirection */
    int *rstart, *tcol;
    /* QK_DGL: lane vectors, ci already signed, laid out [rh][ch][si] where
     * lane xor pattern si is pdep(si, s1): s1 holds the low targets' lane bits */
    qk_vd *vcr, *vci;
    int s1;
    /* QK_DIAG: tables indexed [oi << kh | h]; oi = values of outside targets */
    int no;
    int obit[QGT_KERN_MAX_TARGETS];
    qk_vd *fr, *fi;
    unsigned char *ones;   /* entry is all ones: skip it */
    unsigned char *anyact; /* per oi: some entry is not one */
    /* QK_SCALAR: original form on buffer bits (-1 = outside W) */
    int nt;
    int tpos[QGT_KERN_MAX_TARGETS];
    int tphys[QGT_KERN_MAX_TARGETS];
    int diag;
    uint64_t icm, icv; /* all in-W controls as buffer bits */
    qk_real *mat;
    void *mem; /* one allocation holding this op's tables */
} qk_op;

struct qgt_kern_prog {
    int w;
    uint64_t wmask; /* physical bits of W */
    int32_t wmap[64];
    size_t nops;
    qk_op *ops;
    /* source op i (as given to qgt_kern_compile) compiled to ops[first[i] .. first[i+1]) */
    size_t nsrc;
    size_t *first;
};

/* Per-unit decisions shared by sweep and apply_block. */
QK_INLINE int qk_oi(const qk_op *op, uint64_t base)
{
    int oi = 0;
    for (int k = 0; k < op->no; k++)
        oi |= (int)((base >> op->obit[k]) & 1) << k;
    return oi;
}

QK_INLINE int qk_active(const qk_op *op, uint64_t base)
{
    if (op->kind == QK_NOP || (base & op->ocm) != op->ocv)
        return 0;
    if (op->kind == QK_DIAG)
        return op->anyact[qk_oi(op, base)];
    return 1;
}

/* Apply one compiled op to a unit buffer of 2^w amplitudes with global base
 * `base`; xfm/xfv pin extra high buffer bits so threads can split one unit. */
void qk_apply_op(const qk_op *op, qk_real *buf, int w, uint64_t base, uint64_t xfm,
                 uint64_t xfv);

/* Units of a sweep (qgt_kern_sweep.c): copy unit bl (local bits outside W) between
 * the slice and a buffer, in runs of 2^r amplitudes (whi: W's bits above the run);
 * apply a whole program to one unit buffer. */
void qk_gather(qk_real *buf, const qk_real *state, uint64_t bl, uint64_t whi, int r);
void qk_scatter(const qk_real *buf, qk_real *state, uint64_t bl, uint64_t whi, int r);
void qk_run_unit(const qgt_kern_prog *p, qk_real *buf, uint64_t base);

/* kernels (qgt_kern_dense.c, qgt_kern_diag.c, qgt_kern_scalar.c) */
void qk_d1h(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv);
void qk_move(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv);
void qk_lswap(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv);
void qk_d2h(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv);
void qk_dgu(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv);
void qk_dgl(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv);
void qk_diag(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv, int oi);
void qk_scalar(const qk_op *op, qk_real *buf, int w, uint64_t base, uint64_t fm, uint64_t fv);

#endif
