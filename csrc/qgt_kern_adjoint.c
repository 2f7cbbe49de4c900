/* qgt_kern_adjoint.c -- building lambda for adjoint differentiation.
 *
 * Called through qgt/_kern.pyx by qgt.session.adjoint, which runs a plan
 * backwards on two slices of the same layout: psi (the state) and lambda
 * (the observable applied to the final state, carried back; the reverse pass
 * is qgt_kern_adjsweep.c).  qgt_kern_pauli_axpy builds lambda = sum_k c_k P_k
 * psi term by term, with the Pauli masks of the plan's expectation steps.
 */
#include "qgt_kern_impl.h"

#define QA_MAXTH 1024

int qgt_kern_pauli_axpy(qk_real *out, const qk_real *in, int L, uint64_t rank_base,
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
