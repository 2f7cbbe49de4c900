/* qgt_kern_reduce.c -- reductions over one slice: marginals, Pauli
 * expectations, block norms and sampling.
 *
 * Called through qgt/_kern.pyx by the runtime's Measure, Sample and
 * Expectation steps; the runtime adds the per-rank results with an
 * allreduce.  Sums run over vector accumulators (floating-point sums are not
 * reassociated by the compiler); each thread's partial sum is kept apart and
 * added in thread order, so a result depends only on the thread count.
 */
#include "qgt_kern_impl.h"

#define QK_MAXTH 1024

#define QK_ACC_RUN 256 /* amplitudes summed in vector lanes before widening to double */

/* out[l] += sum of |a|^2 over the amplitudes in complex lane l (n a multiple of QK_VW) */
QK_INLINE void sumsq_lanes(const qk_real *a, size_t n, double *out)
{
    for (size_t i0 = 0; i0 < n; i0 += QK_ACC_RUN) {
        const size_t e = i0 + QK_ACC_RUN < n ? i0 + QK_ACC_RUN : n;
        qk_vd s0 = {0}, s1 = {0};
        size_t i = i0;
        for (; i + 2 * QK_VW <= e; i += 2 * QK_VW) {
            const qk_vd x = qk_ld(a + 2 * i), y = qk_ld(a + 2 * i + QK_VD);
            s0 += x * x;
            s1 += y * y;
        }
        if (i < e) {
            const qk_vd x = qk_ld(a + 2 * i);
            s0 += x * x;
        }
        s0 += s1;
        for (int l = 0; l < QK_VW; l++)
            out[l] += (double)s0[2 * l] + (double)s0[2 * l + 1];
    }
}

static double sumsq(const qk_real *a, size_t n)
{
    const size_t nv = n - n % QK_VW;
    double lanes[QK_VW] = {0};
    sumsq_lanes(a, nv, lanes);
    double s = 0.0;
    for (int l = 0; l < QK_VW; l++)
        s += lanes[l];
    for (size_t i = nv; i < n; i++)
        s += (double)a[2 * i] * a[2 * i] + (double)a[2 * i + 1] * a[2 * i + 1];
    return s;
}

/* ---- block norms ------------------------------------------------------- */

int qgt_kern_block_norms(const qk_real *state, size_t len, size_t block, double *out,
                         int nthreads)
{
    if (!state || !out || block == 0 || len % block || nthreads < 1)
        return QGT_KERN_ERR_BAD_ARG;
    const int64_t nb = (int64_t)(len / block);
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t b = 0; b < nb; b++)
        out[b] = sumsq(state + 2 * (size_t)b * block, block);
    return QGT_KERN_OK;
}

/* ---- marginal probabilities ------------------------------------------- */

/* The histogram index of local element i is pext(i, local marginal bits),
 * looked up one byte of i at a time.  Elements that agree on all marginal
 * bits at or above QK_LVW share a vector accumulator (hv); lanes are split
 * by their own low bits only when the histogram is folded at the end. */
int qgt_kern_marginal(const qk_real *state, int L, uint64_t rank_base, const int32_t *bits,
                      int nb, double *out, int nthreads)
{
    if (!state || !out || L < 0 || L > 62 || nb < 0 || nb > QGT_KERN_MAX_MARGINAL ||
        nthreads < 1 || (nb && !bits))
        return QGT_KERN_ERR_BAD_ARG;
    if (rank_base & qk_lowmask(L))
        return QGT_KERN_ERR_BAD_ARG;
    uint64_t seen = 0;
    uint32_t ridx = 0;      /* contribution of rank bits: constant here */
    uint32_t tab[8][256];   /* byte k of i -> its part of the index */
    uint32_t lowpart[QK_VW]; /* lane -> its part of the index */
    int lowest = L;          /* lowest local marginal bit >= QK_LVW */
    memset(tab, 0, sizeof tab);
    for (int l = 0; l < QK_VW; l++)
        lowpart[l] = 0;
    for (int j = 0; j < nb; j++) {
        const int b = bits[j];
        if (b < 0 || b > 63 || (seen >> b) & 1)
            return QGT_KERN_ERR_BAD_ARG;
        seen |= (uint64_t)1 << b;
        if (b >= L) {
            ridx |= (uint32_t)((rank_base >> b) & 1) << j;
        } else if (L >= QK_LVW && b < QK_LVW) {
            for (int l = 0; l < QK_VW; l++)
                lowpart[l] |= (uint32_t)((l >> b) & 1) << j;
        } else {
            for (int v = 0; v < 256; v++)
                tab[b / 8][v] |= (uint32_t)((v >> (b % 8)) & 1) << j;
            if (b < lowest)
                lowest = b;
        }
    }
    const size_t nout = (size_t)1 << nb;
    const size_t n = (size_t)1 << L;
    for (size_t k = 0; k < nout; k++)
        out[k] = 0.0;
    if (L < QK_LVW) {
        /* tiny slice: plain loop */
        for (size_t i = 0; i < n; i++) {
            uint32_t idx = ridx;
            for (int j = 0; j < nb; j++)
                if (bits[j] < L)
                    idx |= (uint32_t)((i >> bits[j]) & 1) << j;
            out[idx] += (double)state[2 * i] * state[2 * i] +
                        (double)state[2 * i + 1] * state[2 * i + 1];
        }
        return QGT_KERN_OK;
    }
    const size_t runlen = (size_t)1 << lowest; /* amplitudes sharing one hv entry */
    const int64_t nruns = (int64_t)(n / runlen);
    int nth = nthreads;
    if (nth > QK_MAXTH)
        nth = QK_MAXTH;
    double *hv = malloc((size_t)nth * nout * QK_VW * sizeof(double));
    if (!hv)
        return QGT_KERN_ERR_NOMEM;
    /* zeroed here: the runtime may grant fewer threads than asked for */
    memset(hv, 0, (size_t)nth * nout * QK_VW * sizeof(double));
#pragma omp parallel num_threads(nth)
    {
        double *h = hv + (size_t)QK_TID * nout * QK_VW;
#pragma omp for schedule(static)
        for (int64_t q = 0; q < nruns; q++) {
            const uint64_t i = (uint64_t)q * runlen;
            uint32_t idx = 0;
            for (int k = 0; k < 8 && (i >> (8 * k)); k++)
                idx |= tab[k][(i >> (8 * k)) & 255];
            sumsq_lanes(state + 2 * i, runlen, h + (size_t)idx * QK_VW);
        }
    }
    /* fold: threads in order, then each lane to its own low-bit index */
    for (int t = 0; t < nth; t++) {
        const double *h = hv + (size_t)t * nout * QK_VW;
        for (size_t k = 0; k < nout; k++)
            for (int l = 0; l < QK_VW; l++)
                out[k | lowpart[l] | ridx] += h[k * QK_VW + l];
    }
    free(hv);
    return QGT_KERN_OK;
}

/* ---- Pauli expectation ------------------------------------------------- */

/* sum_i conj(a_i) (-1)^popcount((i ^ x) & z) a_{i ^ x} over the slice, with i
 * global.  The slice is walked in aligned chunks of C = 2^c amplitudes where
 * x has no bit in [QK_LVW, c): the partner chunk is then contiguous and the
 * partner of a vector is one vector, lanes xor-ed by x's low bits.  The sign
 * is a per-chunk parity times a table over the position in the chunk. */
QK_INLINE void pauli_chunks(const qk_real *a, int c, int64_t nchunks, uint64_t x, uint64_t z,
                            uint64_t rank_base, const qk_real *tab, int xlo, double *re,
                            double *im, int nthreads)
{
    const size_t C = (size_t)1 << c;
    double pr[QK_MAXTH], pi[QK_MAXTH];
    int nth = 1;
    (void)nthreads; /* unused when built without OpenMP */
#pragma omp parallel num_threads(nthreads)
    {
        double s1 = 0.0, s2 = 0.0;
#pragma omp for schedule(static)
        for (int64_t k = 0; k < nchunks; k++) {
            const uint64_t i0 = (uint64_t)k * C;
            const uint64_t j0 = (i0 ^ x) & ~(uint64_t)(C - 1);
            const double cs =
                (__builtin_popcountll((rank_base | j0) & z) & 1) ? -1.0 : 1.0;
            qk_vd b1 = {0}, b2 = {0};
            for (size_t v = 0; v < C; v += QK_VW) {
                const qk_vd A = qk_ld(a + 2 * (i0 + v));
                const qk_vd B = qk_perm(qk_ld(a + 2 * (j0 + v)), xlo);
                const qk_vd T = qk_ld(tab + 2 * v);
                const qk_vd TA = T * A;
                b1 += TA * B;
                b2 += TA * qk_sw(B);
            }
            /* conj(a) b = (ar br + ai bi) + i (ar bi - ai br) */
            s1 += cs * qk_hsum(b1);
            s2 += cs * qk_hdiff(b2);
        }
        const int t = QK_TID;
        if (t < QK_MAXTH) {
            pr[t] = s1;
            pi[t] = s2;
        }
#pragma omp single
        nth = QK_NTH;
    }
    double sr = 0.0, si = 0.0;
    for (int t = 0; t < nth && t < QK_MAXTH; t++) {
        sr += pr[t];
        si += pi[t];
    }
    *re = sr;
    *im = si;
}

int qgt_kern_pauli_expect(const qk_real *state, int L, uint64_t rank_base, uint64_t xmask,
                          uint64_t zmask, int nthreads, double *out_re, double *out_im)
{
    if (!state || !out_re || !out_im || L < 0 || L > 62 || nthreads < 1 ||
        nthreads > QK_MAXTH)
        return QGT_KERN_ERR_BAD_ARG;
    if (rank_base & qk_lowmask(L))
        return QGT_KERN_ERR_BAD_ARG;
    if (xmask & ~qk_lowmask(L))
        return QGT_KERN_ERR_XMASK_RANK;
    const size_t n = (size_t)1 << L;
    if (L < QK_LVW) {
        double sr = 0.0, si = 0.0;
        for (size_t i = 0; i < n; i++) {
            const size_t j = i ^ xmask;
            const double s =
                (__builtin_popcountll((rank_base | j) & zmask) & 1) ? -1.0 : 1.0;
            const double ar = state[2 * i], ai = state[2 * i + 1];
            const double br = state[2 * j], bi = state[2 * j + 1];
            sr += s * (ar * br + ai * bi);
            si += s * (ar * bi - ai * br);
        }
        *out_re = sr;
        *out_im = si;
        return QGT_KERN_OK;
    }
    int c = L < 10 ? L : 10;
    const uint64_t xhi = xmask >> QK_LVW;
    if (xhi) {
        const int lim = QK_LVW + __builtin_ctzll(xhi);
        if (lim < c)
            c = lim;
    }
    const size_t C = (size_t)1 << c;
    qk_real *tab = aligned_alloc(64, 2 * C * sizeof(qk_real) < 64 ? 64 : 2 * C * sizeof(qk_real));
    if (!tab)
        return QGT_KERN_ERR_NOMEM;
    const uint64_t xc = xmask & (C - 1), zc = zmask & (C - 1);
    for (size_t m = 0; m < C; m++)
        tab[2 * m] = tab[2 * m + 1] = (__builtin_popcountll((m ^ xc) & zc) & 1) ? -1.0 : 1.0;
    const int64_t nchunks = (int64_t)(n >> c);
    const int xlo = (int)(xmask & (QK_VW - 1));
    /* one instance per lane pattern, so each shuffle is a constant */
#define QK_PAULI_CASE(S)                                                                     \
    case S:                                                                                  \
        pauli_chunks(state, c, nchunks, xmask, zmask, rank_base, tab, S, out_re, out_im,     \
                     nthreads);                                                              \
        break;
    switch (xlo) {
#if QK_VW >= 2
        QK_PAULI_CASE(1)
#endif
#if QK_VW >= 4
        QK_PAULI_CASE(2)
        QK_PAULI_CASE(3)
#endif
#if QK_VW >= 8
        QK_PAULI_CASE(4)
        QK_PAULI_CASE(5)
        QK_PAULI_CASE(6)
        QK_PAULI_CASE(7)
#endif
    default:
        pauli_chunks(state, c, nchunks, xmask, zmask, rank_base, tab, 0, out_re, out_im,
                     nthreads);
        break;
    }
#undef QK_PAULI_CASE
    free(tab);
    return QGT_KERN_OK;
}

/* ---- sampling ---------------------------------------------------------- */

/* Running sum in index order, 64 amplitudes at a time; a block is walked
 * element by element only when the next target falls inside it, so the
 * first index whose running sum exceeds t always carries weight. */
int qgt_kern_sample_sorted(const qk_real *state, size_t len, const double *targets, size_t ns,
                           int64_t *out_idx)
{
    if (!state || (ns && (!targets || !out_idx)))
        return QGT_KERN_ERR_BAD_ARG;
    for (size_t k = 0; k < ns; k++)
        if (!(targets[k] >= 0.0) || (k && targets[k] < targets[k - 1]))
            return QGT_KERN_ERR_UNSORTED;
    if (ns == 0)
        return QGT_KERN_OK;
    enum { B = 64 };
    double cum = 0.0;
    size_t k = 0;
    for (size_t i0 = 0; i0 < len && k < ns; i0 += B) {
        const size_t n = len - i0 < B ? len - i0 : B;
        const double s = sumsq(state + 2 * i0, n);
        if (cum + s <= targets[k]) {
            cum += s;
            continue;
        }
        for (size_t i = i0; i < i0 + n && k < ns; i++) {
            cum += (double)state[2 * i] * state[2 * i] + (double)state[2 * i + 1] * state[2 * i + 1];
            while (k < ns && cum > targets[k])
                out_idx[k++] = (int64_t)i;
        }
    }
    if (k < ns) {
        /* rounding pushed t past the end: clamp to the last weighted index */
        size_t last = len;
        while (last > 0) {
            const size_t i = last - 1;
            if (state[2 * i] != 0.0 || state[2 * i + 1] != 0.0)
                break;
            last--;
        }
        if (last == 0)
            return QGT_KERN_ERR_ZERO_NORM;
        for (; k < ns; k++)
            out_idx[k] = (int64_t)(last - 1);
    }
    return QGT_KERN_OK;
}
