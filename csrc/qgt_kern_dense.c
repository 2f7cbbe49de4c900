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

QK_INLINE void d1h_loop(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv,
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
        double *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            double *p0 = p + i, *p1 = p0 + st;
            const qk_vd x0 = qk_ld(p0), x1 = qk_ld(p1);
            qk_vd y0, y1;
            if (real) {
                /* real matrices (h, ry, fused real blocks): half the work */
                y0 = ar * x0 + br * x1;
                y1 = cr * x0 + dr * x1;
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

void qk_d1h(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv)
{
    if (op->lsel)
        d1h_loop(op, buf, w, fm, fv, 1, 0);
    else if (op->real)
        d1h_loop(op, buf, w, fm, fv, 0, 1);
    else
        d1h_loop(op, buf, w, fm, fv, 0, 0);
}

/* ---- exact X on a high bit: swap the two runs, no arithmetic ---------- */

void qk_x(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv)
{
    const int t = op->hb[0];
    const size_t st = (size_t)2 << t;
    const qk_vi lm = op->lmask;
    const int lsel = op->lsel;
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | ((uint64_t)1 << t), &fr, &R);
    uint64_t f = 0;
    do {
        double *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            double *p0 = p + i, *p1 = p0 + st;
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

/* ---- dense 1-qubit, target inside a vector ---------------------------- */

QK_INLINE void d1l_loop(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv,
                        const int s)
{
    const qk_vd c0r = op->vcr[0], c0i = op->vci[0];
    const qk_vd c1r = op->vcr[1], c1i = op->vci[1];
    uint64_t fr;
    size_t R;
    qk_runs(w, fm, &fr, &R);
    uint64_t f = 0;
    do {
        double *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            const qk_vd x = qk_ld(p + i);
            const qk_vd px = qk_perm(x, s);
            qk_st(p + i, c0r * x + c0i * qk_sw(x) + c1r * px + c1i * qk_sw(px));
        }
        f = QK_NEXT(f, fr);
    } while (f);
}

void qk_d1l(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv)
{
    /* constant shuffle patterns: one instance per possible low bit */
    switch (op->perms[1]) {
#if QK_VW >= 2
    case 1:
        d1l_loop(op, buf, w, fm, fv, 1);
        break;
#endif
#if QK_VW >= 4
    case 2:
        d1l_loop(op, buf, w, fm, fv, 2);
        break;
#endif
    default:
        d1l_loop(op, buf, w, fm, fv, op->perms[1]);
        break;
    }
}

/* ---- dense 2-qubit, both targets high --------------------------------- */

/* The sign of the imaginary part is folded into the swapped inputs (4 muls
 * per group), so all 32 coefficients are plain broadcasts: the compiler can
 * take them straight from memory as FMA operands. */
QK_INLINE void d2h_loop(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv,
                        const int lsel, const int real)
{
    const int t0 = op->hb[0], t1 = op->hb[1];
    const size_t o1 = (size_t)2 << t0, o2 = (size_t)2 << t1, o3 = o1 + o2;
    const qk_vd sg = qk_sgn();
    const double *cr = op->cr, *ci = op->ci;
    const qk_vi lm = op->lmask;
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | ((uint64_t)1 << t0) | ((uint64_t)1 << t1), &fr, &R);
    uint64_t f = 0;
    do {
        double *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            double *q = p + i;
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

void qk_d2h(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv)
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
QK_INLINE void dgu_loop(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv,
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
    const double *cr = op->cr, *ci = op->ci;
    const int *rs = op->rstart, *tc = op->tcol;
    qk_vd X[1 << QGT_KERN_MAX_TARGETS], XS[1 << QGT_KERN_MAX_TARGETS];
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | tb, &fr, &R);
    uint64_t f = 0;
    do {
        double *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            double *q = p + i;
            for (int c = 0; c < dim; c++) {
                X[c] = qk_ld(q + off[c]);
                if (!real)
                    XS[c] = qk_sw(X[c]) * sg; /* sign folded once per input */
            }
            if (dense && dim >= 4) {
                for (int r = 0; r < dim; r += 4) {
                    const double *c0 = cr + r * dim, *i0 = ci + r * dim;
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

void qk_dgu(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv)
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

/* ---- generic dense with low targets: lane-varying coefficients -------- */

void qk_dgl(const qk_op *op, double *buf, int w, uint64_t fm, uint64_t fv)
{
    const int kh = op->kh, nh = 1 << kh, np = op->nperm;
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
    const qk_vd *vcr = op->vcr, *vci = op->vci;
    const int *rs = op->rstart, *tc = op->tcol, *ts = op->ts;
    /* P[c * np + si]: input c with lanes xor-permuted by perms[si] */
    qk_vd P[1 << QGT_KERN_MAX_TARGETS], PS[1 << QGT_KERN_MAX_TARGETS];
    uint64_t fr;
    size_t R;
    qk_runs(w, fm | tb, &fr, &R);
    uint64_t f = 0;
    do {
        double *p = buf + 2 * (fv | f);
        for (size_t i = 0; i < 2 * R; i += QK_VD) {
            double *q = p + i;
            for (int c = 0; c < nh; c++) {
                const qk_vd x = qk_ld(q + off[c]);
                for (int si = 0; si < np; si++) {
                    const qk_vd px = qk_perm(x, op->perms[si]);
                    P[c * np + si] = px;
                    PS[c * np + si] = qk_sw(px);
                }
            }
            for (int r = 0; r < nh; r++) {
                qk_vd acc = {0};
                for (int t = rs[r]; t < rs[r + 1]; t++) {
                    const int idx = tc[t] * np + ts[t];
                    acc += vcr[t] * P[idx] + vci[t] * PS[idx];
                }
                qk_st(q + off[r], acc);
            }
        }
        f = QK_NEXT(f, fr);
    } while (f);
}
