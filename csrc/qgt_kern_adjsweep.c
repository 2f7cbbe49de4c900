/* qgt_kern_adjsweep.c -- one sweep of the adjoint reverse pass, cache-blocked.
 *
 * Called through qgt_kern_adjoint_sweep by qgt/_kern.pyx for
 * qgt.session.adjoint: psi (the state) and lambda (the observable carried
 * back) go through a plan sweep's ops in reverse, unit by unit, as
 * qgt_kern_sweep does for one state:
 *
 *   for each unit (the 2^w amplitudes sharing the local bits outside W):
 *       gather psi -> bp, lambda -> bl           (or in place, W = {0..w-1})
 *       for k = 0 .. nops-1 (the daggered ops, last op first):
 *           for each derivative j attached to k:
 *               bt <- M_j bp;  acc_j += <bl| bt - bp>
 *           bp <- U_k^dag bp;  bl <- U_k^dag bl
 *       scatter bp, bl back
 *
 * so the pass reads and writes both states once per sweep, however many ops
 * and parameters it holds, instead of once per op.  A derivative is given as
 * M = A + I with A = (dU/dt) U^dag on the op's targets and controls: the
 * compiled kernels leave the amplitudes outside the controls (or under a
 * diagonal entry of exactly 1) unchanged, so <bl| M bp - bp> is exactly
 * <lambda| A |psi> restricted to the op's support, with no extra mask.
 *
 * Units are shared out statically and each thread keeps its own sums, added
 * in thread order, so a result depends only on the thread count (as in
 * qgt_kern_reduce.c).
 */
#include "qgt_kern_impl.h"

#define QK_ADJ_RUN 256

/* acc += <l| t - p> over n amplitudes (re, im in acc[0], acc[1]) */
static void dot_diff(const qk_real *l, const qk_real *t, const qk_real *p, size_t n,
                     double *acc)
{
    size_t i = 0;
    double re = 0.0, im = 0.0;
    /* vector lanes over runs of QK_ADJ_RUN amplitudes, then double (complex64 sums) */
    while (i + QK_VW <= n) {
        const size_t e = n - i > QK_ADJ_RUN ? i + QK_ADJ_RUN : n - (n - i) % QK_VW;
        qk_vd vr = qk_bc(0.0), vi = qk_bc(0.0);
        for (; i < e; i += QK_VW) {
            const qk_vd lv = qk_ld(l + 2 * i);
            const qk_vd d = qk_ld(t + 2 * i) - qk_ld(p + 2 * i);
            vr += lv * d;          /* lr dr, li di */
            vi += lv * qk_sw(d);   /* lr di, li dr */
        }
        re += qk_hsum(vr);
        im += qk_hdiff(vi);
    }
    for (; i < n; i++) {
        const double dr = t[2 * i] - p[2 * i], di = t[2 * i + 1] - p[2 * i + 1];
        re += l[2 * i] * dr + l[2 * i + 1] * di;
        im += l[2 * i] * di - l[2 * i + 1] * dr;
    }
    acc[0] += re;
    acc[1] += im;
}

/* apply source op k of p (its compiled ops) to buf; whether any of them acted */
static int apply_source(const qgt_kern_prog *p, size_t k, qk_real *buf, uint64_t base)
{
    int acted = 0;
    for (size_t c = p->first[k]; c < p->first[k + 1]; c++)
        if (qk_active(&p->ops[c], base)) {
            qk_apply_op(&p->ops[c], buf, p->w, base, 0, 0);
            acted = 1;
        }
    return acted;
}

static int source_active(const qgt_kern_prog *p, size_t k, uint64_t base)
{
    for (size_t c = p->first[k]; c < p->first[k + 1]; c++)
        if (qk_active(&p->ops[c], base))
            return 1;
    return 0;
}

static void adjoint_unit(const qgt_kern_prog *inv, const qgt_kern_prog *der,
                         const int32_t *der_at, qk_real *bp, qk_real *bl, qk_real *bt,
                         uint64_t base, double *acc)
{
    const size_t n = (size_t)1 << inv->w;
    size_t j = 0;
    for (size_t k = 0; k <= inv->nsrc; k++) {
        for (; j < der->nsrc && (size_t)der_at[j] == k; j++) {
            if (!source_active(der, j, base))
                continue; /* M is the identity here: A vanishes on this unit */
            memcpy(bt, bp, 2 * sizeof(qk_real) * n);
            apply_source(der, j, bt, base);
            dot_diff(bl, bt, bp, n, acc + 2 * j);
        }
        if (k == inv->nsrc)
            break;
        if (apply_source(inv, k, bp, base))
            apply_source(inv, k, bl, base);
    }
}

int qgt_kern_adjoint_sweep(qk_real *psi, qk_real *lam, int L, uint64_t rank_base,
                           const qgt_kern_prog *inv, const qgt_kern_prog *der,
                           const int32_t *der_at, int nthreads, double *out)
{
    if (!psi || !lam || psi == lam || !inv || !der || (der->nsrc && (!der_at || !out)) ||
        L < 0 || L > 62 || nthreads < 1 || nthreads > 1024)
        return QGT_KERN_ERR_BAD_ARG;
    if (rank_base & qk_lowmask(L))
        return QGT_KERN_ERR_BAD_ARG;
    const int w = inv->w;
    if (w > L || (w && inv->wmap[w - 1] >= L) || der->w != w || der->wmask != inv->wmask)
        return QGT_KERN_ERR_BAD_WMAP;
    for (size_t j = 0; j < der->nsrc; j++)
        if (der_at[j] < 0 || (size_t)der_at[j] > inv->nsrc || (j && der_at[j] < der_at[j - 1]))
            return QGT_KERN_ERR_BAD_ARG;
    const size_t nd = der->nsrc;
    if (nd)
        memset(out, 0, 2 * nd * sizeof(double));
    const uint64_t om = qk_lowmask(L) & ~inv->wmask;
    const int64_t nunits = (int64_t)1 << (L - w);
    int r = 0;
    while (r < w && inv->wmap[r] == r)
        r++;
    const int inplace = r == w && ((uintptr_t)psi & 63) == 0 && ((uintptr_t)lam & 63) == 0;
    const uint64_t whi = inv->wmask & ~qk_lowmask(r);
    const size_t bytes = (2 * sizeof(qk_real)) << w;
    const int nt = nunits < nthreads ? (int)nunits : nthreads;
    double *sums = calloc((size_t)nt * (2 * nd + 1), sizeof(double));
    if (!sums)
        return QGT_KERN_ERR_NOMEM;
    int err = QGT_KERN_OK;
#pragma omp parallel num_threads(nt)
    {
        const int t = QK_TID;
        double *acc = sums + (size_t)t * (2 * nd + 1);
        qk_real *bt = aligned_alloc(64, bytes);
        qk_real *bp = inplace ? NULL : aligned_alloc(64, bytes);
        qk_real *bl = inplace ? NULL : aligned_alloc(64, bytes);
        const int ok = bt && (inplace || (bp && bl));
        if (!ok) {
#pragma omp atomic write
            err = QGT_KERN_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (int64_t u = 0; u < nunits; u++) {
            if (!ok)
                continue;
            const uint64_t ul = qk_pdep((uint64_t)u, om), base = rank_base | ul;
            if (inplace) {
                adjoint_unit(inv, der, der_at, psi + 2 * ul, lam + 2 * ul, bt, base, acc);
                continue;
            }
            qk_gather(bp, psi, ul, whi, r);
            qk_gather(bl, lam, ul, whi, r);
            adjoint_unit(inv, der, der_at, bp, bl, bt, base, acc);
            qk_scatter(bp, psi, ul, whi, r);
            qk_scatter(bl, lam, ul, whi, r);
        }
        free(bt);
        free(bp);
        free(bl);
    }
    for (int t = 0; t < nt; t++)
        for (size_t j = 0; j < 2 * nd; j++)
            out[j] += sums[(size_t)t * (2 * nd + 1) + j];
    free(sums);
    return err;
}
