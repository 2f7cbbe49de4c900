/* qgt_kern_dense.c -- dense (non-diagonal) kernels on one unit buffer.
 *
 * Called by qk_apply_op (qgt_kern_sweep.c) with the op's pinned bits fm/fv
 * (high controls, plus split bits when several threads share one unit).
 *
 * High targets (buffer bit >= QK_LVW) are at least one vector apart, so the
 * partners of a group are whole vectors at fixed offsets: the loop walks runs
 * of contiguous vectors (qk_runs) and the arithmetic is lane-uniform.
 * Low targets are inside a vector: partners come from lane shuffles
 * (qk_perm) and the coefficients differ per lane (compiled in compile_lanes).
 * Low controls: uniform kernels compute every lane and keep the old value in
 * failing lanes (qk_sel, bitwise so exact); lane kernels folded them into
 * their coefficients.
 */
#include "qgt_kern_impl.h"

/* ---- dense 1-qubit, target high: 2x2 complex on vector pairs ---------- */

/* real: 1 (a real matrix), 2 (real diagonal, imaginary off-diagonal: rx and its
 * products with X), or 0 (any complex matrix) */
QK_INLINE void d1h_loop(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv,
                        const int lsel, const int real)
{
    const int t = op->hb[0];
    const size_t st = (size_t)2 << t; /* the two amplitudes are 2^t apart */
    const qk_vd sg = qk_sgn();
    const qk_vd ar = qk_bc(op->cr[0]), ai = qk_bc(op->ci[0]) * sg;
    const qk_vd br = qk_bc(op->cr[1]), bi = qk_bc(op->ci[1]) * sg;
    const qk_vd cr = qk_bc(op->cr[2]), ci = qk_bc(op->ci[2]) * sg;
    const qk_vd dr = qk_bc(op->cr[3]), di = qk_bc(op->ci[3]) * sg;
    const qk_vi lm = op->lmask;
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | ((uint64_t)1 << t), &fr, &R);
    uint64_t f = 0;
    do {
        qk_real *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            qk_real *p0 = p + i, *p1 = p0 + st;
            const qk_vd x0 = qk_ld(p0), x1 = qk_ld(p1);
            qk_vd y0, y1;
            if (real == 1) {
                /* real matrices (h, ry, fused real blocks): half the work */
                y0 = ar * x0 + br * x1;
                y1 = cr * x0 + dr * x1;
            } else if (real == 2) {
                /* rx: i*b*x1 is b times x1 with re and im swapped, one signed */
                y0 = ar * x0 + bi * qk_sw(x1);
                y1 = ci * qk_sw(x0) + dr * x1;
            } else {
                const qk_vd s0 = qk_sw(x0), s1 = qk_sw(x1);
                y0 = ar * x0 + ai * s0 + br * x1 + bi * s1;
                y1 = cr * x0 + ci * s0 + dr * x1 + di * s1;
            }
            if (lsel) {
                y0 = qk_sel(lm, y0, x0);
                y1 = qk_sel(lm, y1, x1);
            }
            qk_st(p0, y0);
            qk_st(p1, y1);
        }
        f = QK_NEXT(f, fr);
    } while (f);
}

void qk_d1h(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv)
{
    if (op->lsel)
        d1h_loop(op, buf, w, fm, fv, 1, 0);
    else if (op->real)
        d1h_loop(op, buf, w, fm, fv, 0, 1);
    else if (op->xrot)
        d1h_loop(op, buf, w, fm, fv, 0, 2);
    else
        d1h_loop(op, buf, w, fm, fv, 0, 0);
}

/* ---- exact X / SWAPBITS on high bits: move runs, no arithmetic ------- */

void qk_move(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv)
{
    const size_t st = 2 * op->moff;
    const qk_vi lm = op->lmask;
    const int lsel = op->lsel;
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | op->mfm, &fr, &R);
    uint64_t f = 0;
    do {
        qk_real *p = buf + 2 * (fv | op->mfv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            qk_real *p0 = p + i, *p1 = p0 + st;
            const qk_vd x0 = qk_ld(p0), x1 = qk_ld(p1);
            if (lsel) {
                qk_st(p0, qk_sel(lm, x1, x0));
                qk_st(p1, qk_sel(lm, x0, x1));
            } else {
                qk_st(p0, x1);
                qk_st(p1, x0);
            }
        }
        f = QK_NEXT(f, fr);
    } while (f);
}

/* ---- exchange a low bit a with a high bit b ----------------------------- */

/* x0 holds b = 0, x1 holds b = 1.  Lanes of x0 with a = 1 take the lanes of
 * x1 with a = 0 (lane l ^ 2^a), and the other way round. */
QK_INLINE void lswap_loop(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv,
                          const int s)
{
    const size_t st = (size_t)2 << op->hb[0];
    const qk_vi m0 = op->lmask, m1 = op->lmask2;
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | ((uint64_t)1 << op->hb[0]), &fr, &R);
    uint64_t f = 0;
    do {
        qk_real *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            qk_real *p0 = p + i, *p1 = p0 + st;
            const qk_vd x0 = qk_ld(p0), x1 = qk_ld(p1);
            qk_st(p0, qk_sel(m0, qk_perm(x1, s), x0));
            qk_st(p1, qk_sel(m1, qk_perm(x0, s), x1));
        }
        f = QK_NEXT(f, fr);
    } while (f);
}

void qk_lswap(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv)
{
    /* one instance per low bit, so each shuffle is a constant */
    switch (op->lb[0]) {
    case 0:
        lswap_loop(op, buf, w, fm, fv, 1);
        break;
#if QK_LVW > 2
    case 2:
        lswap_loop(op, buf, w, fm, fv, 4);
        break;
#endif
    default:
        lswap_loop(op, buf, w, fm, fv, 2);
        break;
    }
}

/* ---- dense 2-qubit, both targets high --------------------------------- */

/* The sign of the imaginary part is folded into the swapped inputs (4 muls
 * per group), so all 32 coefficients are plain broadcasts: the compiler can
 * take them straight from memory as FMA operands. */
QK_INLINE void d2h_loop(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv,
                        const int lsel, const int real)
{
    const int t0 = op->hb[0], t1 = op->hb[1];
    const size_t o1 = (size_t)2 << t0, o2 = (size_t)2 << t1, o3 = o1 + o2;
    const qk_vd sg = qk_sgn();
    const qk_real *cr = op->cr, *ci = op->ci;
    const qk_vi lm = op->lmask;
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | ((uint64_t)1 << t0) | ((uint64_t)1 << t1), &fr, &R);
    uint64_t f = 0;
    do {
        qk_real *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            qk_real *q = p + i;
            const qk_vd x[4] = {qk_ld(q), qk_ld(q + o1), qk_ld(q + o2), qk_ld(q + o3)};
            qk_vd s[4] = {{0}};
            if (!real)
                for (int c = 0; c < 4; c++)
                    s[c] = qk_sw(x[c]) * sg;
            qk_vd y[4];
            for (int r = 0; r < 4; r++) {
                qk_vd a = cr[4 * r] * x[0] + cr[4 * r + 1] * x[1] + cr[4 * r + 2] * x[2] +
                          cr[4 * r + 3] * x[3];
                if (!real)
                    a += ci[4 * r] * s[0] + ci[4 * r + 1] * s[1] + ci[4 * r + 2] * s[2] +
                         ci[4 * r + 3] * s[3];
                y[r] = lsel ? qk_sel(lm, a, x[r]) : a;
            }
            qk_st(q, y[0]);
            qk_st(q + o1, y[1]);
            qk_st(q + o2, y[2]);
            qk_st(q + o3, y[3]);
        }
        f = QK_NEXT(f, fr);
    } while (f);
}

void qk_d2h(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv)
{
    if (op->lsel)
        d2h_loop(op, buf, w, fm, fv, 1, 0);
    else if (op->real)
        d2h_loop(op, buf, w, fm, fv, 0, 1);
    else
        d2h_loop(op, buf, w, fm, fv, 0, 0);
}

/* ---- generic dense, all targets high: broadcast coefs ----------------- */

/* Full matrices go four rows at a time, so each loaded input feeds four
 * FMAs; sparse ones (permutations, controlled blocks) follow their rows'
 * nonzeros only. */
QK_INLINE void dgu_loop(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv,
                        const int dense, const int real)
{
    const int k = op->kh, dim = 1 << k;
    size_t off[1 << QGT_KERN_MAX_TARGETS];
    uint64_t tb = 0;
    for (int c = 0; c < dim; c++) {
        off[c] = 0;
        for (int j = 0; j < k; j++)
            off[c] |= (size_t)((c >> j) & 1) << op->hb[j];
        off[c] *= 2;
    }
    for (int j = 0; j < k; j++)
        tb |= (uint64_t)1 << op->hb[j];
    const qk_vd sg = qk_sgn();
    const qk_vi lm = op->lmask;
    const int lsel = op->lsel;
    const qk_real *cr = op->cr, *ci = op->ci;
    const int *rs = op->rstart, *tc = op->tcol;
    qk_vd X[1 << QGT_KERN_MAX_TARGETS], XS[1 << QGT_KERN_MAX_TARGETS];
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | tb, &fr, &R);
    uint64_t f = 0;
    do {
        qk_real *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            qk_real *q = p + i;
            for (int c = 0; c < dim; c++) {
                X[c] = qk_ld(q + off[c]);
                if (!real)
                    XS[c] = qk_sw(X[c]) * sg; /* sign folded once per input */
            }
            if (dense && dim >= 4) {
                for (int r = 0; r < dim; r += 4) {
                    const qk_real *c0 = cr + r * dim, *i0 = ci + r * dim;
                    qk_vd a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                    for (int c = 0; c < dim; c++) {
                        const qk_vd x = X[c];
                        a0 += c0[c] * x;
                        a1 += c0[dim + c] * x;
                        a2 += c0[2 * dim + c] * x;
                        a3 += c0[3 * dim + c] * x;
                        if (!real) {
                            const qk_vd xs = XS[c];
                            a0 += i0[c] * xs;
                            a1 += i0[dim + c] * xs;
                            a2 += i0[2 * dim + c] * xs;
                            a3 += i0[3 * dim + c] * xs;
                        }
                    }
                    if (lsel) {
                        a0 = qk_sel(lm, a0, X[r]);
                        a1 = qk_sel(lm, a1, X[r + 1]);
                        a2 = qk_sel(lm, a2, X[r + 2]);
                        a3 = qk_sel(lm, a3, X[r + 3]);
                    }
                    qk_st(q + off[r], a0);
                    qk_st(q + off[r + 1], a1);
                    qk_st(q + off[r + 2], a2);
                    qk_st(q + off[r + 3], a3);
                }
                continue;
            }
            for (int r = 0; r < dim; r++) {
                qk_vd acc = {0};
                for (int t = rs[r]; t < rs[r + 1]; t++) {
                    acc += cr[t] * X[tc[t]];
                    if (!real)
                        acc += ci[t] * XS[tc[t]];
                }
                if (lsel)
                    acc = qk_sel(lm, acc, X[r]);
                qk_st(q + off[r], acc);
            }
        }
        f = QK_NEXT(f, fr);
    } while (f);
}

void qk_dgu(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv)
{
    const int dense = op->dense && op->kh >= 2;
    if (dense && op->real)
        dgu_loop(op, buf, w, fm, fv, 1, 1);
    else if (dense)
        dgu_loop(op, buf, w, fm, fv, 1, 0);
    else if (op->real)
        dgu_loop(op, buf, w, fm, fv, 0, 1);
    else
        dgu_loop(op, buf, w, fm, fv, 0, 0);
}

/* ---- dense with low targets: lane-varying coefficients ----------------- */

/* kh high targets give 2^kh input vectors; kl low targets give 2^kl lane
 * patterns per input (pattern si is lane xor pdep(si, s1)).  Output row rh
 * sums coef[rh][ch][si] * pattern si of input ch.  Instantiated with
 * constant (kh, kl, s1) for the common shapes, so every loop unrolls. */
QK_INLINE void dgl_loop(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv,
                        const int kh, const int kl, const int s1, const int real)
{
    const int nh = 1 << kh, np = 1 << kl;
    size_t off[1 << QGT_KERN_MAX_TARGETS];
    uint64_t tb = 0;
    for (int c = 0; c < nh; c++) {
        off[c] = 0;
        for (int j = 0; j < kh; j++)
            off[c] |= (size_t)((c >> j) & 1) << op->hb[j];
        off[c] *= 2;
    }
    for (int j = 0; j < kh; j++)
        tb |= (uint64_t)1 << op->hb[j];
    /* local copies of small tables: buf stores cannot alias them, so the
     * compiler keeps the coefficients in registers across the loop */
    const int nterm = nh * nh * np;
    qk_vd lcr[32], lci[32];
    const qk_vd *vcr = op->vcr, *vci = op->vci;
    if (nterm <= 32) {
        for (int t = 0; t < nterm; t++) {
            lcr[t] = op->vcr[t];
            lci[t] = op->vci[t];
        }
        vcr = lcr;
        vci = lci;
    }
    qk_vd P[1 << QGT_KERN_MAX_TARGETS], PS[1 << QGT_KERN_MAX_TARGETS];
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | tb, &fr, &R);
    uint64_t f = 0;
    do {
        qk_real *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            qk_real *q = p + i;
            for (int c = 0; c < nh; c++) {
                const qk_vd x = qk_ld(q + off[c]);
                for (int si = 0; si < np; si++) {
                    /* pattern pdep(si, s1), spelt out for kl = 1 and 2 so that it
                     * folds to a constant in the instantiated shapes; kl = 3 (three
                     * low targets, 8 lanes per vector) takes the general form */
                    const int s = kl > 2 ? (int)qk_pdep((uint64_t)si, (uint64_t)s1)
                                  : si == 0 ? 0
                                  : (kl == 1 || si == 3) ? s1
                                  : si == 1 ? (s1 & -s1) : (s1 & (s1 - 1));
                    const qk_vd px = qk_perm(x, s);
                    P[c * np + si] = px;
                    if (!real)
                        PS[c * np + si] = qk_sw(px);
                }
            }
            for (int r = 0; r < nh; r++) {
                const qk_vd *cr = vcr + (size_t)r * nh * np, *ci = vci + (size_t)r * nh * np;
                qk_vd acc = {0};
                for (int t = 0; t < nh * np; t++) {
                    acc += cr[t] * P[t];
                    if (!real)
                        acc += ci[t] * PS[t];
                }
                qk_st(q + off[r], acc);
            }
        }
        f = QK_NEXT(f, fr);
    } while (f);
}

#define QK_DGL_CASE(KH, KL, S1)                                                              \
    if (op->kh == KH && op->kl == KL && op->s1 == S1) {                                      \
        if (op->real)                                                                        \
            dgl_loop(op, buf, w, fm, fv, KH, KL, S1, 1);                                     \
        else                                                                                 \
            dgl_loop(op, buf, w, fm, fv, KH, KL, S1, 0);                                     \
        return;                                                                              \
    }

void qk_dgl(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv)
{
#if QK_VW >= 2
    QK_DGL_CASE(0, 1, 1)
    QK_DGL_CASE(1, 1, 1)
    QK_DGL_CASE(2, 1, 1)
#endif
#if QK_VW >= 4
    QK_DGL_CASE(0, 1, 2)
    QK_DGL_CASE(1, 1, 2)
    QK_DGL_CASE(2, 1, 2)
    QK_DGL_CASE(0, 2, 3)
    QK_DGL_CASE(1, 2, 3)
#endif
#if QK_VW >= 8
    QK_DGL_CASE(0, 1, 4)
    QK_DGL_CASE(1, 1, 4)
    QK_DGL_CASE(2, 1, 4)
    QK_DGL_CASE(0, 2, 5)
    QK_DGL_CASE(1, 2, 5)
    QK_DGL_CASE(0, 2, 6)
    QK_DGL_CASE(1, 2, 6)
#endif
    dgl_loop(op, buf, w, fm, fv, op->kh, op->kl, op->s1, op->real);
}
