/* qgt_kern.h -- public interface of the qgt state-vector kernels.
 *
 * Called by the Cython wrapper qgt/_kern.pyx (and nothing else): the runtime
 * and the page store reach these functions only through that module.
 *
 * A state slice is 2^L complex128 (or, built with QK_SINGLE, complex64)
 * amplitudes stored as interleaved reals
 * (re, im).  The global physical index of local element i is rank_base | i,
 * with rank_base = rank << L.  Bits are physical bits: the planner has already
 * mapped logical qubits to them.
 *
 * A sweep applies a list of operations to the slice in one cache-blocked pass.
 * The working set W is w physical local bits wmap[0] < ... < wmap[w-1] < L; a
 * unit is the 2^w amplitudes that agree on every local bit outside W.  Each
 * unit is gathered into a contiguous buffer (buffer bit j <-> physical bit
 * wmap[j]), every operation is applied to it, and it is written back.
 *
 *   physical index   L-1 ............................ 0
 *                     o  W  o  o  W  W  o  W  W  W  W      (o: outside W)
 *   buffer index              b6    b5 b4    b3 b2 b1 b0
 *
 * No Python, MPI or I/O here; every function returns a QGT_KERN_* status.
 */
#ifndef QGT_KERN_H
#define QGT_KERN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One real part of an amplitude: complex128 states, or with QK_SINGLE (the
 * csrc/f32/ build, every public name suffixed _f32) complex64 states. */
#ifdef QK_SINGLE
#include "qgt_kern_f32.h"
typedef float qgt_amp;
#else
typedef double qgt_amp;
#endif

/* Status codes.  qgt/_kern.pyx maps each one to an exception in one table. */
enum {
    QGT_KERN_OK = 0,
    QGT_KERN_ERR_BAD_ARG = 1,        /* L, nthreads, rank_base, lengths out of range */
    QGT_KERN_ERR_BAD_WMAP = 2,       /* wmap not strictly ascending or not < L */
    QGT_KERN_ERR_BAD_OP = 3,         /* unknown kind, bad nt, repeated or control targets */
    QGT_KERN_ERR_TARGET_OUTSIDE = 4, /* a dense or swap target is not in W */
    QGT_KERN_ERR_XMASK_RANK = 5,     /* pauli_expect: X/Y on a rank bit */
    QGT_KERN_ERR_NOMEM = 6,          /* a scratch buffer could not be allocated */
    QGT_KERN_ERR_UNSORTED = 7,       /* sample targets not sorted or negative */
    QGT_KERN_ERR_ZERO_NORM = 8,      /* sample asked of a slice with no weight */
    QGT_KERN_ERR_BAD_BASE = 9        /* apply_block base has bits inside W */
};

/* Operation kinds. */
enum {
    QGT_KERN_DENSE = 0,    /* 2^nt x 2^nt row-major matrix, nt in 1..6 */
    QGT_KERN_DIAG = 1,     /* 2^nt diagonal entries, nt in 0..6, targets anywhere */
    QGT_KERN_SWAPBITS = 2  /* exchange two physical bits (both in W), no matrix */
};

#define QGT_KERN_MAX_TARGETS 6
#define QGT_KERN_MAX_MARGINAL 16

/* One operation as the caller describes it.  Matrix index bit j belongs to
 * targets[j] (Qiskit order: targets[0] is the least significant).  Controls
 * are on global physical bits: the op acts where (index & ctrl_mask) ==
 * ctrl_val.  mat points at interleaved complex128; it is copied by
 * qgt_kern_compile, so it need only live until that returns. */
typedef struct {
    int32_t kind;
    int32_t nt;
    int32_t targets[QGT_KERN_MAX_TARGETS];
    uint64_t ctrl_mask;
    uint64_t ctrl_val;
    const double *mat;
} qgt_kern_op;

/* An op list compiled for one working set: specialised kernels and their
 * coefficient tables.  Read-only once built, so threads may share it. */
typedef struct qgt_kern_prog qgt_kern_prog;

int qgt_kern_compile(const qgt_kern_op *ops, size_t nops, int w, const int32_t *wmap,
                     qgt_kern_prog **out);
void qgt_kern_prog_free(qgt_kern_prog *prog);

/* Apply a compiled list to the whole slice (2^L amplitudes), nthreads OpenMP
 * threads.  On an error other than a bad argument the slice may be partly
 * updated: the caller must treat it as lost. */
int qgt_kern_sweep(qgt_amp *state, int L, uint64_t rank_base, const qgt_kern_prog *prog,
                   int nthreads);

/* The same pass over part of the slice, or shared with other processes.
 * fix_mask: local bits outside W held at fix_val (one part of the slice: the
 * runtime sweeps the parts a global swap sends first, qgt/runtime/overlap.py);
 * 0, 0 for the whole slice.  next: NULL, or a counter that several processes
 * calling this on the same state share (a node's MPI-3 shared window), which
 * reads 0 before the first of them starts: chunks of units are taken from it,
 * and each caller returns when none is left (the caller then synchronises). */
int qgt_kern_sweep_ex(qgt_amp *state, int L, uint64_t rank_base, const qgt_kern_prog *prog,
                      int nthreads, uint64_t fix_mask, uint64_t fix_val, int64_t *next);

/* Apply a compiled list to ONE gathered unit buffer of 2^w amplitudes whose
 * global base index (rank bits | local bits outside W) is base.  One thread. */
int qgt_kern_apply_block(qgt_amp *buf, uint64_t base, const qgt_kern_prog *prog);

/* One sweep of the adjoint reverse pass (qgt_kern_adjsweep.c) on psi and lam
 * together: inv holds the sweep's ops daggered in reverse order, der the
 * derivative matrices M_j = A_j + I (same working set); derivative j is taken
 * before inv op der_at[j] (non-decreasing).  out[2j], out[2j+1] get
 * <lam| A_j |psi> for this slice. */
int qgt_kern_adjoint_sweep(qgt_amp *psi, qgt_amp *lam, int L, uint64_t rank_base,
                           const qgt_kern_prog *inv, const qgt_kern_prog *der,
                           const int32_t *der_at, int nthreads, double *out);

/* Reductions over one slice. */
int qgt_kern_marginal(const qgt_amp *state, int L, uint64_t rank_base, const int32_t *bits,
                      int nb, double *out, int nthreads);
int qgt_kern_pauli_expect(const qgt_amp *state, int L, uint64_t rank_base, uint64_t xmask,
                          uint64_t zmask, int nthreads, double *out_re, double *out_im);
/* nterms Pauli terms sharing xmask (zmasks[k] each), one pass: out[k] as for
 * qgt_kern_pauli_expect. */
int qgt_kern_pauli_group(const qgt_amp *state, int L, uint64_t rank_base, uint64_t xmask,
                         const uint64_t *zmasks, int nterms, int nthreads, double *out_re,
                         double *out_im);
int qgt_kern_block_norms(const qgt_amp *state, size_t len, size_t block, double *out,
                         int nthreads);
int qgt_kern_sample_sorted(const qgt_amp *state, size_t len, const double *targets, size_t ns,
                           int64_t *out_idx);

/* Adjoint differentiation (qgt_kern_adjoint.c; the reverse pass itself is
 * qgt_kern_adjoint_sweep above): out += c * X^xmask Z^zmask in (xmask on local
 * bits; the caller folds i^(number of Y) into c), building lambda = O psi. */
int qgt_kern_pauli_axpy(qgt_amp *out, const qgt_amp *in, int L, uint64_t rank_base,
                        uint64_t xmask, uint64_t zmask, double c_re, double c_im, int nthreads);

/* Block permutation (qgt_kern_blocks.c, one build for both precisions): the
 * slice as nblocks blocks of block_bytes; new block j = old block src[j]
 * (src a permutation).  Cycles with no live block are skipped. */
#ifndef QK_SINGLE
int qgt_kern_permute_blocks(void *state, int64_t nblocks, size_t block_bytes,
                            const int64_t *src, const uint8_t *live, int nthreads);
#endif

/* Build description ("avx512 vectors, 4 complex per vector, openmp"), for
 * the run's metadata. */
const char *qgt_kern_build_info(void);

#ifdef __cplusplus
}
#endif

#endif
