/* qgt_kern_adjoint.c -- two-buffer kernels for adjoint differentiation.
 *
 * Called through qgt/_kern.pyx by qgt.session.adjoint, which runs a plan
 * backwards on two slices of the same layout: psi (the state) and lambda
 * (the observable applied to the final state, carried back).  At an op U of
 * the plan that depends on a parameter t, the derivative of <O> is
 * 2 Re <lambda| A |psi> with A = (dU/dt) U^dagger, a small matrix on the op's
 * targets (and controls): qgt_kern_transition computes <lambda|A|psi> for
 * this rank's slice.  qgt_kern_pauli_axpy builds lambda = sum_k c_k P_k psi
 * term by term, with the Pauli masks of the plan's expectation steps.
 *
 * Sums are kept per thread and added in thread order (as in
 * qgt_kern_reduce.c), so a result depends only on the thread count.
 */
#include "qgt_kern_impl.h"

#define QA_MAXTH 1024

/* the local index of unit g's amplitude 0: a zero bit inserted at every target
 * (sorted ascending in sorted_t) */
static inline uint64_t qa_spread(uint64_t g, const int32_t *sorted_t, int k)
{
    for (int j = 0; j < k; j++) {
        const uint64_t low = g & (((uint64_t)1 << sorted_t[j]) - 1);
        g = ((g ^ low) << 1) | low;
    }
    return g;
}

int qgt_kern_transition(const double *bra, const double *ket, int L, uint64_t rank_base,
                        const int32_t *targets, int k, int diag, const double *mat,
                        uint64_t ctrl_mask, uint64_t ctrl_val, int nthreads, double *out_re,
                        double *out_im)
{
    if (!bra || !ket || !mat || !out_re || !out_im || L < 0 || L > 62 || k < 0 ||
        k > QGT_KERN_MAX_TARGETS || nthreads < 1 || nthreads > QA_MAXTH)
        return QGT_KERN_ERR_BAD_ARG;
    if (rank_base & qk_lowmask(L))
        return QGT_KERN_ERR_BAD_ARG;
    int32_t sorted_t[QGT_KERN_MAX_TARGETS];
    uint64_t tmask = 0;
    for (int j = 0; j < k; j++) {
        if (targets[j] < 0 || targets[j] > 62)
            return QGT_KERN_ERR_BAD_OP;
        if (!diag && targets[j] >= L)
            return QGT_KERN_ERR_TARGET_OUTSIDE;
        const uint64_t bit = (uint64_t)1 << targets[j];
        if ((tmask & bit) || (ctrl_mask & bit))
            return QGT_KERN_ERR_BAD_OP;
        tmask |= bit;
        sorted_t[j] = targets[j];
    }
    if (ctrl_val & ~ctrl_mask)
        return QGT_KERN_ERR_BAD_OP;
    /* controls on rank bits: this rank either holds the controlled part or none */
    if ((rank_base & ctrl_mask & ~qk_lowmask(L)) != (ctrl_val & ~qk_lowmask(L))) {
        *out_re = *out_im = 0.0;
        return QGT_KERN_OK;
    }
    const uint64_t lctrl = ctrl_mask & qk_lowmask(L), lval = ctrl_val & qk_lowmask(L);
    const int d = 1 << k;
    double part_re[QA_MAXTH], part_im[QA_MAXTH];
    int used = 1;
    if (diag) {
        /* A is diagonal (d entries, index bits from the global index at targets) */
        const size_t n = (size_t)1 << L;
#pragma omp parallel num_threads(nthreads)
        {
            int t = 0, nt = 1;
#ifdef _OPENMP
            t = omp_get_thread_num();
            nt = omp_get_num_threads();
#endif
            double sr = 0.0, si = 0.0;
            const size_t lo = n * (size_t)t / (size_t)nt, hi = n * (size_t)(t + 1) / (size_t)nt;
            for (size_t i = lo; i < hi; i++) {
                if ((i & lctrl) != lval)
                    continue;
                const uint64_t gi = rank_base | i;
                size_t m = 0;
                for (int j = 0; j < k; j++)
                    m |= (size_t)((gi >> targets[j]) & 1) << j;
                const double ar = bra[2 * i], ai = bra[2 * i + 1];
                const double br = ket[2 * i], bi = ket[2 * i + 1];
                const double cr = mat[2 * m], ci = mat[2 * m + 1];
                const double vr = cr * br - ci * bi, vi = cr * bi + ci * br;
                sr += ar * vr + ai * vi;
                si += ar * vi - ai * vr;
            }
            part_re[t] = sr;
            part_im[t] = si;
#pragma omp single
            used = nt;
        }
    } else {
        /* insertion order must be ascending for qa_spread */
        for (int a = 1; a < k; a++)
            for (int b = a; b > 0 && sorted_t[b - 1] > sorted_t[b]; b--) {
                const int32_t tmp = sorted_t[b];
                sorted_t[b] = sorted_t[b - 1];
                sorted_t[b - 1] = tmp;
            }
        size_t off[1 << QGT_KERN_MAX_TARGETS];
        for (int m = 0; m < d; m++) {
            off[m] = 0;
            for (int j = 0; j < k; j++)
                off[m] |= (size_t)((m >> j) & 1) << targets[j];
        }
        const size_t units = (size_t)1 << (L - k);
#pragma omp parallel num_threads(nthreads)
        {
            int t = 0, nt = 1;
#ifdef _OPENMP
            t = omp_get_thread_num();
            nt = omp_get_num_threads();
#endif
            double sr = 0.0, si = 0.0;
            const size_t lo = units * (size_t)t / (size_t)nt;
            const size_t hi = units * (size_t)(t + 1) / (size_t)nt;
            for (size_t g = lo; g < hi; g++) {
                const uint64_t i0 = qa_spread(g, sorted_t, k);
                if ((i0 & lctrl) != lval)
                    continue;
                for (int r = 0; r < d; r++) {
                    double vr = 0.0, vi = 0.0;
                    const double *row = mat + 2 * (size_t)r * (size_t)d;
                    for (int c = 0; c < d; c++) {
                        const size_t ic = i0 | off[c];
                        const double br = ket[2 * ic], bi = ket[2 * ic + 1];
                        vr += row[2 * c] * br - row[2 * c + 1] * bi;
                        vi += row[2 * c] * bi + row[2 * c + 1] * br;
                    }
                    const size_t ir = i0 | off[r];
                    const double ar = bra[2 * ir], ai = bra[2 * ir + 1];
                    sr += ar * vr + ai * vi;
                    si += ar * vi - ai * vr;
                }
            }
            part_re[t] = sr;
            part_im[t] = si;
#pragma omp single
            used = nt;
        }
    }
    double sr = 0.0, si = 0.0;
    for (int t = 0; t < used; t++) {
        sr += part_re[t];
        si += part_im[t];
    }
    *out_re = sr;
    *out_im = si;
    return QGT_KERN_OK;
}

int qgt_kern_pauli_axpy(double *out, const double *in, int L, uint64_t rank_base,
                        uint64_t xmask, uint64_t zmask, double c_re, double c_im, int nthreads)
{
    if (!out || !in || out == in || L < 0 || L > 62 || nthreads < 1 || nthreads > QA_MAXTH)
        return QGT_KERN_ERR_BAD_ARG;
    if (rank_base & qk_lowmask(L))
        return QGT_KERN_ERR_BAD_ARG;
    if (xmask & ~qk_lowmask(L))
        return QGT_KERN_ERR_XMASK_RANK;
    const int64_t n = (int64_t)1 << L;
    /* (P psi)_i = sign(j) psi_j, j = i ^ xmask, sign from the global index j */
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const uint64_t j = (uint64_t)i ^ xmask;
        const double s = (__builtin_popcountll((rank_base | j) & zmask) & 1) ? -1.0 : 1.0;
        const double br = s * in[2 * j], bi = s * in[2 * j + 1];
        out[2 * i] += c_re * br - c_im * bi;
        out[2 * i + 1] += c_re * bi + c_im * br;
    }
    return QGT_KERN_OK;
}
