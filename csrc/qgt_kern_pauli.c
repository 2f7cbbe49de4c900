/* qgt_kern_pauli.c -- many Pauli terms that share one X/Y pattern, in one pass.
 *
 * Called through qgt/_kern.pyx (pauli_group) by the runtime's grouped
 * expectation steps.  A Hamiltonian of hundreds of terms has far fewer X/Y
 * patterns than terms; every term of a pattern reads the same amplitude
 * pairs (a_i, a_{i^x}), so the slice is walked once, in chunks of C = 2^c
 * amplitudes, and for each chunk:
 *
 *     P[m]  = conj(a_{i0+m}) a_{j0 + (m ^ xc)}            (j0: the partner chunk)
 *     W[u]  = sum_m (-1)^popcount(m & u) P[m]              (Walsh-Hadamard, c adds/amp)
 *     term k += (-1)^popcount((j0 | rank_base) & z_k) (-1)^popcount(xc & zc_k) W[zc_k]
 *
 * so a term costs one table look-up per chunk instead of one pass over the
 * slice: (c + K / C) operations per amplitude for K terms.  Per-thread partial
 * sums are added in thread order, as in qgt_kern_reduce.c, so a result depends
 * only on the thread count.
 */
#include "qgt_kern_impl.h"

#include <stdlib.h>

#define QK_PG_MAXTH 1024
#define QK_PG_MAXC 10
#define QK_PG_WHT_MIN 8 /* from this many terms the transform beats a table per term */
#define QK_PG_DC 8       /* chunks of 2^8 amplitudes for the direct path */

/* in-place Walsh-Hadamard transform of n = 2^c values */
QK_INLINE void pg_wht(double *v, size_t n)
{
    for (size_t h = 1; h < n; h <<= 1)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j++) {
                const double p = v[j], q = v[j + h];
                v[j] = p + q;
                v[j + h] = p - q;
            }
}

/* chunk width: the transform costs c adds per amplitude, the look-ups K / 2^c */
static int pg_width(int L, int nterms)
{
    int c = 3;
    while (c < QK_PG_MAXC && ((size_t)1 << c) < (size_t)nterms)
        c++;
    return c < L ? c : L;
}

/* A few terms: the slice is still read once; per chunk of C = 2^8 the pair products
 * are formed once (vectors P1 = A*B, P2 = A*swap(B), lanes as in qgt_kern_reduce.c)
 * and each term takes a signed sum of them through its own sign table. */
static int pg_direct(const qk_real *state, int L, uint64_t rank_base, uint64_t xmask,
                     const uint64_t *zmasks, int nterms, int nthreads, double *out_re,
                     double *out_im)
{
    const size_t C = (size_t)1 << QK_PG_DC, NV = C / QK_VW;
    const uint64_t xc = xmask & (C - 1);
    const int xlo = (int)(xmask & (QK_VW - 1));
    const size_t xv = (size_t)(xc >> QK_LVW);
    const int64_t nchunks = (int64_t)(((size_t)1 << L) >> QK_PG_DC);
    qk_real *tab = aligned_alloc(64, (size_t)nterms * 2 * C * sizeof(qk_real));
    double *acc = calloc((size_t)nthreads * 2 * (size_t)nterms, sizeof(double));
    if (!tab || !acc) {
        free(tab);
        free(acc);
        return QGT_KERN_ERR_NOMEM;
    }
    for (int k = 0; k < nterms; k++) {
        const uint64_t zc = zmasks[k] & (C - 1);
        qk_real *t = tab + (size_t)k * 2 * C;
        for (size_t m = 0; m < C; m++)
            t[2 * m] = t[2 * m + 1] = (__builtin_popcountll((m ^ xc) & zc) & 1) ? -1.0 : 1.0;
    }
    int nth = 1;
#pragma omp parallel num_threads(nthreads)
    {
        qk_vd P1[(size_t)1 << QK_PG_DC], P2[(size_t)1 << QK_PG_DC];
        double *a1 = acc + (size_t)QK_TID * 2 * (size_t)nterms, *a2 = a1 + nterms;
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < nchunks; ch++) {
            const uint64_t i0 = (uint64_t)ch * C;
            const uint64_t j0 = (i0 ^ xmask) & ~(uint64_t)(C - 1);
            for (size_t v = 0; v < NV; v++) {
                const qk_vd A = qk_ld(state + 2 * (i0 + v * QK_VW));
                const qk_vd B = qk_perm(qk_ld(state + 2 * (j0 + (v ^ xv) * QK_VW)), xlo);
                P1[v] = A * B;
                P2[v] = A * qk_sw(B);
            }
            for (int k = 0; k < nterms; k++) {
                const double cs =
                    (__builtin_popcountll((rank_base | j0) & zmasks[k]) & 1) ? -1.0 : 1.0;
                const qk_real *t = tab + (size_t)k * 2 * C;
                qk_vd b1 = {0}, b2 = {0};
                for (size_t v = 0; v < NV; v++) {
                    const qk_vd T = qk_ld(t + 2 * v * QK_VW);
                    b1 += T * P1[v];
                    b2 += T * P2[v];
                }
                a1[k] += cs * qk_hsum(b1);
                a2[k] += cs * qk_hdiff(b2);
            }
        }
#pragma omp single
        nth = QK_NTH;
    }
    for (int k = 0; k < nterms; k++) {
        double sr = 0.0, si = 0.0;
        for (int t = 0; t < nth; t++) {
            const double *a1 = acc + (size_t)t * 2 * (size_t)nterms, *a2 = a1 + nterms;
            sr += a1[k];
            si += a2[k];
        }
        out_re[k] = sr;
        out_im[k] = si;
    }
    free(tab);
    free(acc);
    return QGT_KERN_OK;
}

int qgt_kern_pauli_group(const qk_real *state, int L, uint64_t rank_base, uint64_t xmask,
                         const uint64_t *zmasks, int nterms, int nthreads, double *out_re,
                         double *out_im)
{
    if (!state || !zmasks || !out_re || !out_im || nterms < 0 || L < 0 || L > 62 ||
        nthreads < 1 || nthreads > QK_PG_MAXTH)
        return QGT_KERN_ERR_BAD_ARG;
    if (rank_base & qk_lowmask(L))
        return QGT_KERN_ERR_BAD_ARG;
    if (xmask & ~qk_lowmask(L))
        return QGT_KERN_ERR_XMASK_RANK;
    if (nterms > 1 && nterms < QK_PG_WHT_MIN && L >= QK_PG_DC)
        return pg_direct(state, L, rank_base, xmask, zmasks, nterms, nthreads, out_re, out_im);
    if (nterms < QK_PG_WHT_MIN) { /* one term, or a tiny slice: one pass per term */
        for (int k = 0; k < nterms; k++) {
            const int rc = qgt_kern_pauli_expect(state, L, rank_base, xmask, zmasks[k],
                                                 nthreads, out_re + k, out_im + k);
            if (rc != QGT_KERN_OK)
                return rc;
        }
        return QGT_KERN_OK;
    }
    const int c = pg_width(L, nterms);
    const size_t C = (size_t)1 << c;
    const uint64_t xc = xmask & (C - 1);
    const int64_t nchunks = (int64_t)(((size_t)1 << L) >> c);
    double *acc = calloc((size_t)nthreads * 2 * (size_t)nterms, sizeof(double));
    double *work = aligned_alloc(64, (size_t)nthreads * 2 * C * sizeof(double));
    if (!acc || !work) {
        free(acc);
        free(work);
        return QGT_KERN_ERR_NOMEM;
    }
    int nth = 1;
#pragma omp parallel num_threads(nthreads)
    {
        const int th = QK_TID;
        double *ar = acc + (size_t)th * 2 * (size_t)nterms, *ai = ar + nterms;
        double *wr = work + (size_t)th * 2 * C, *wi = wr + C;
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < nchunks; ch++) {
            const uint64_t i0 = (uint64_t)ch * C;
            const uint64_t j0 = (i0 ^ xmask) & ~(uint64_t)(C - 1);
            const qk_real *a = state + 2 * i0, *b = state + 2 * j0;
            for (size_t m = 0; m < C; m++) {
                const size_t p = m ^ xc;
                const double xr = a[2 * m], xi = a[2 * m + 1];
                const double yr = b[2 * p], yi = b[2 * p + 1];
                wr[m] = xr * yr + xi * yi; /* conj(x) y */
                wi[m] = xr * yi - xi * yr;
            }
            pg_wht(wr, C);
            pg_wht(wi, C);
            const uint64_t hi = rank_base | j0;
            for (int k = 0; k < nterms; k++) {
                const uint64_t z = zmasks[k], zc = z & (C - 1);
                const int odd = (__builtin_popcountll(hi & z) + __builtin_popcountll(xc & zc)) & 1;
                const double s = odd ? -1.0 : 1.0;
                ar[k] += s * wr[zc];
                ai[k] += s * wi[zc];
            }
        }
#pragma omp single
        nth = QK_NTH;
    }
    for (int k = 0; k < nterms; k++) {
        double sr = 0.0, si = 0.0;
        for (int t = 0; t < nth; t++) {
            sr += acc[(size_t)t * 2 * (size_t)nterms + (size_t)k];
            si += acc[(size_t)t * 2 * (size_t)nterms + (size_t)nterms + (size_t)k];
        }
        out_re[k] = sr;
        out_im[k] = si;
    }
    free(acc);
    free(work);
    return QGT_KERN_OK;
}
