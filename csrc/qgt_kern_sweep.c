/* qgt_kern_sweep.c -- the cache-blocked pass over a slice, and apply_block.
 *
 * Called through qgt_kern_sweep / qgt_kern_apply_block by qgt/_kern.pyx.
 *
 * The slice is cut into units: the 2^w amplitudes that share every local bit
 * outside W.  A unit is gathered into a thread-private 64-byte aligned buffer
 * in runs: when wmap starts with 0..r-1 each run is 2^r contiguous
 * amplitudes.  When W is exactly {0..w-1} a unit is already contiguous and is
 * worked on in place, with no copy.
 *
 *   slice:  [ unit 0 | unit 1 | ... ]          W = {0..w-1}: in place
 *   slice:  [a0 a1 .. b0 b1 .. a2 a3 .. b2 ..]  W = {0, 1, 4, ..}: runs of 4
 *           gather a* -> buffer, apply ops, scatter back
 *
 * Units whose ops all skip (controls or phases outside W rule them out) are
 * not touched.  Threads share out units; when there are fewer units than
 * threads (w close to L) they instead share each op inside the one unit,
 * by pinning extra free high bits (qk_apply_op's xfm/xfv).
 *
 * qgt_kern_sweep_ex sweeps one part of the slice (the units whose fixed bits
 * read fix_val), and can share the pass with other processes working on the
 * same state (a node's shared window): each takes chunks of units from one
 * counter in shared memory, so the processes split the units as threads do.
 */
#include "qgt_kern_impl.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* the op's kernel with its pinned bits fm/fv given in full */
static void apply_pinned(const qk_op *op, qk_real *buf, int w, uint64_t base, uint64_t fm,
                         uint64_t fv, uint64_t xfm, uint64_t xfv)
{
    switch (op->kind) {
    case QK_DIAG:
        qk_diag(op, buf, w, fm, fv, qk_oi(op, base));
        break;
    case QK_MOVE:
        qk_move(op, buf, w, fm, fv);
        break;
    case QK_LSWAP:
        qk_lswap(op, buf, w, fm, fv);
        break;
    case QK_D1H:
        qk_d1h(op, buf, w, fm, fv);
        break;
    case QK_D2H:
        qk_d2h(op, buf, w, fm, fv);
        break;
    case QK_DGU:
        qk_dgu(op, buf, w, fm, fv);
        break;
    case QK_DGL:
        qk_dgl(op, buf, w, fm, fv);
        break;
    case QK_SCALAR:
        qk_scalar(op, buf, w, base, xfm, xfv);
        break;
    default:
        break;
    }
}

void qk_apply_op(const qk_op *op, qk_real *buf, int w, uint64_t base, uint64_t xfm,
                 uint64_t xfv)
{
    apply_pinned(op, buf, w, base, op->fm | xfm, op->fv | xfv, xfm, xfv);
}

static int unit_active(const qgt_kern_prog *p, uint64_t base)
{
    for (size_t k = 0; k < p->nops; k++)
        if (qk_active(&p->ops[k], base))
            return 1;
    return 0;
}

/* L1 tiles: a run of two or more ops whose targets fit one tile of 2^QK_TILE_BITS
 * amplitudes (16 KiB) is applied tile by tile, so the run costs one trip through L2
 * instead of one per op: with AVX-512 a one-qubit op on a unit in L2 runs at about
 * three quarters of its rate in L1.  A tile is every bit below some bit lo plus up
 * to QK_TILE_HIGH of the run's targets above it, so ops on high buffer bits take
 * part too; the tile is reached by pinning the other bits (as threads split a
 * unit), in at most 2^QK_TILE_HIGH contiguous runs:
 *
 *     buffer bits   15 14 13 12 11 10 9 8 7 6 5 ... 0     run targets {14, 3, 5}
 *     tile          .  T  .  .  .  .  . T T T T ... T     lo = 9, one high bit
 *                                                          (complex128; lo = 10 in f32)
 *
 * A control on a pinned bit selects tiles, as a control outside W selects units. */
#ifdef QK_SINGLE
#define QK_TILE_BITS 11
#else
#define QK_TILE_BITS 10
#endif
#define QK_TILE_HIGH 3

/* the high buffer bits an op's targets occupy (its pinned bits less its controls);
 * lane targets are inside every tile, targets outside W are read from base */
static inline uint64_t op_targets(const qk_op *op)
{
    return op->ubits & ~op->fm;
}

/* The tile's bits for targets S, or 0 when S fits no tile. */
static uint64_t tile_bits(uint64_t S, int w)
{
    for (int h = 0; h <= QK_TILE_HIGH; h++) {
        const int lo = QK_TILE_BITS - h;
        const uint64_t above = S & ~qk_lowmask(lo);
        if (__builtin_popcountll(above) <= h)
            return (qk_lowmask(lo) | above) & qk_lowmask(w);
    }
    return 0;
}

static void run_tiles(const qgt_kern_prog *p, size_t k0, size_t k1, qk_real *buf,
                      uint64_t base, uint64_t tile)
{
    const uint64_t pinned = qk_lowmask(p->w) & ~tile;
    const uint64_t ntiles = (uint64_t)1 << __builtin_popcountll(pinned);
    for (uint64_t t = 0; t < ntiles; t++) {
        const uint64_t xv = qk_pdep(t, pinned);
        for (size_t k = k0; k < k1; k++) {
            const qk_op *op = &p->ops[k];
            if (((xv ^ op->fv) & op->fm & pinned) || !qk_active(op, base))
                continue;
            apply_pinned(op, buf, p->w, base, op->fm | pinned, (op->fv & ~pinned) | xv, 0, 0);
        }
    }
}

void qk_run_unit(const qgt_kern_prog *p, qk_real *buf, uint64_t base)
{
    const int tiles = p->w > QK_TILE_BITS;
    size_t k = 0;
    while (k < p->nops) {
        uint64_t S = 0, tile = 0;
        size_t e = k;
        while (tiles && e < p->nops && p->ops[e].kind != QK_SCALAR) {
            const uint64_t ot = op_targets(&p->ops[e]), t = tile_bits(S | ot, p->w);
            if (!t)
                break;
            S |= ot;
            tile = t;
            e++;
        }
        if (e - k >= 2) {
            run_tiles(p, k, e, buf, base, tile);
            k = e;
            continue;
        }
        if (qk_active(&p->ops[k], base))
            qk_apply_op(&p->ops[k], buf, p->w, base, 0, 0);
        k++;
    }
}

/* n amplitudes, copied with plain vector moves */
static inline void copy_run(qk_real *dst, const qk_real *src, size_t n)
{
    size_t i = 0;
    for (; i + 4 * QK_VW <= n; i += 4 * QK_VW) {
        const qk_vd a = qk_ld(src + 2 * i), b = qk_ld(src + 2 * i + QK_VD),
                    c = qk_ld(src + 2 * i + 2 * QK_VD), d = qk_ld(src + 2 * i + 3 * QK_VD);
        qk_st(dst + 2 * i, a);
        qk_st(dst + 2 * i + QK_VD, b);
        qk_st(dst + 2 * i + 2 * QK_VD, c);
        qk_st(dst + 2 * i + 3 * QK_VD, d);
    }
    for (; i < n; i++) {
        dst[2 * i] = src[2 * i];
        dst[2 * i + 1] = src[2 * i + 1];
    }
}

/* whi: physical bits of W above the contiguous low run of r bits.  Runs sit
 * far apart, and hardware prefetchers do not follow a stream across pages,
 * so short runs about QK_PF_BYTES ahead are prefetched while one is copied. */
#define QK_PF_BYTES 8192

static inline void prefetch_run(const qk_real *p, size_t n)
{
    for (size_t k = 0; k < 2 * n; k += 8)
        __builtin_prefetch(p + k, 0, 1);
}

void qk_gather(qk_real *buf, const qk_real *state, uint64_t bl, uint64_t whi, int r)
{
    const size_t rl = (size_t)1 << r;
    /* runs longer than a page are left to the hardware prefetcher */
    const size_t amp = 2 * sizeof(qk_real);
    const size_t ahead = amp * rl > 4096 ? 0 : QK_PF_BYTES / (amp * rl);
    uint64_t f = 0, g = 0;
    for (size_t k = 0; k < ahead && (k == 0 || g); k++)
        g = QK_NEXT(g, whi);
    do {
        if (g) {
            prefetch_run(state + 2 * (bl | g), rl);
            g = QK_NEXT(g, whi);
        }
        copy_run(buf, state + 2 * (bl | f), rl);
        buf += 2 * rl;
        f = QK_NEXT(f, whi);
    } while (f);
}

void qk_scatter(const qk_real *buf, qk_real *state, uint64_t bl, uint64_t whi, int r)
{
    const size_t rl = (size_t)1 << r;
    uint64_t f = 0;
    do {
        copy_run(state + 2 * (bl | f), buf, rl);
        buf += 2 * rl;
        f = QK_NEXT(f, whi);
    } while (f);
}

static int ceil_log2(int n)
{
    int s = 0;
    while ((1 << s) < n)
        s++;
    return s;
}

/* One unit, its ops shared by nthreads: each op is cut into 2^s pieces by
 * pinning the s highest buffer bits it leaves free. */
static void run_unit_split(const qgt_kern_prog *p, qk_real *buf, uint64_t base, int nthreads)
{
    const int w = p->w;
    int want = ceil_log2(nthreads);
    if ((1 << want) != nthreads)
        want += 2; /* more pieces than threads evens out the remainder */
#pragma omp parallel num_threads(nthreads)
    for (size_t k = 0; k < p->nops; k++) {
        const qk_op *op = &p->ops[k];
        if (!qk_active(op, base))
            continue;
        uint64_t avail = qk_lowmask(w) & ~qk_lowmask(QK_LVW) & ~op->ubits;
        uint64_t split = 0;
        for (int s = 0; s < want && avail; s++) {
            const uint64_t top = (uint64_t)1 << (63 - __builtin_clzll(avail));
            split |= top;
            avail &= ~top;
        }
        const int64_t npieces = (int64_t)1 << __builtin_popcountll(split);
#pragma omp for schedule(static)
        for (int64_t piece = 0; piece < npieces; piece++)
            qk_apply_op(op, buf, w, base, split, qk_pdep((uint64_t)piece, split));
    }
}

/* One unit of a sweep: in place, or gathered, worked on and scattered back. */
static inline void sweep_unit(const qgt_kern_prog *p, qk_real *state, qk_real *buf,
                              uint64_t om, uint64_t fv, uint64_t rank_base, int64_t u,
                              int inplace, uint64_t whi, int r)
{
    const uint64_t bl = qk_pdep((uint64_t)u, om) | fv, base = rank_base | bl;
    if (!unit_active(p, base))
        return;
    if (inplace) {
        qk_run_unit(p, state + 2 * bl, base);
    } else {
        qk_gather(buf, state, bl, whi, r);
        qk_run_unit(p, buf, base);
        qk_scatter(buf, state, bl, whi, r);
    }
}

int qgt_kern_sweep_ex(qk_real *state, int L, uint64_t rank_base, const qgt_kern_prog *p,
                      int nthreads, uint64_t fix_mask, uint64_t fix_val, int64_t *next)
{
    if (!state || !p || L < 0 || L > 62 || nthreads < 1)
        return QGT_KERN_ERR_BAD_ARG;
    if (rank_base & qk_lowmask(L))
        return QGT_KERN_ERR_BAD_ARG;
    const int w = p->w;
    if (w > L || (w && p->wmap[w - 1] >= L))
        return QGT_KERN_ERR_BAD_WMAP;
    if ((fix_mask & ~qk_lowmask(L)) || (fix_mask & p->wmask) || (fix_val & ~fix_mask))
        return QGT_KERN_ERR_BAD_ARG;
    if (p->nops == 0)
        return QGT_KERN_OK;
    /* local bits outside W that vary from unit to unit (fixed bits pick a part) */
    const uint64_t om = qk_lowmask(L) & ~p->wmask & ~fix_mask;
    const int64_t nunits = (int64_t)1 << (L - w - __builtin_popcountll(fix_mask));

    int r = 0;
    while (r < w && p->wmap[r] == r)
        r++;
    /* A state that is not 64-byte aligned (numpy's default is 16) makes every
     * vector access straddle two cache lines, which halves the throughput of
     * a multi-op sweep: copying each unit into an aligned buffer is cheaper. */
    const int aligned = ((uintptr_t)state & 63) == 0;
    const int inplace = r == w && (aligned || p->nops < 2);
    const uint64_t whi = p->wmask & ~qk_lowmask(r);
    const size_t bytes = (2 * sizeof(qk_real)) << w;
    int err = QGT_KERN_OK;

    if (!next && nunits < nthreads && w >= QK_LVW + 1) {
        qk_real *buf = inplace ? NULL : aligned_alloc(64, bytes);
        if (!inplace && !buf)
            return QGT_KERN_ERR_NOMEM;
        for (int64_t u = 0; u < nunits; u++) {
            const uint64_t bl = qk_pdep((uint64_t)u, om) | fix_val, base = rank_base | bl;
            if (!unit_active(p, base))
                continue;
            qk_real *b = inplace ? state + 2 * bl : buf;
            if (!inplace)
                qk_gather(b, state, bl, whi, r);
            run_unit_split(p, b, base, nthreads);
            if (!inplace)
                qk_scatter(b, state, bl, whi, r);
        }
        free(buf);
        return QGT_KERN_OK;
    }

    /* dynamic chunks of ~16k amplitudes: skipped units would unbalance a
     * static split (a control on an outside bit idles half the threads) */
    const int64_t chunk = w >= 14 ? 1 : (int64_t)1 << (14 - w);
#pragma omp parallel num_threads(nthreads)
    {
        qk_real *buf = NULL;
        int ok = 1;
        if (!inplace) {
            buf = aligned_alloc(64, bytes);
            if (!buf) {
                ok = 0;
#pragma omp atomic write
                err = QGT_KERN_ERR_NOMEM;
            }
        }
        if (next) {
            /* chunks handed out by a counter the caller shares with other
             * processes working on the same state (a node's shared window) */
            for (;;) {
                const int64_t u0 = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED) * chunk;
                if (u0 >= nunits)
                    break;
                const int64_t u1 = u0 + chunk < nunits ? u0 + chunk : nunits;
                for (int64_t u = u0; ok && u < u1; u++)
                    sweep_unit(p, state, buf, om, fix_val, rank_base, u, inplace, whi, r);
            }
        } else {
#pragma omp for schedule(dynamic, chunk)
            for (int64_t u = 0; u < nunits; u++)
                if (ok)
                    sweep_unit(p, state, buf, om, fix_val, rank_base, u, inplace, whi, r);
        }
        free(buf);
    }
    return err;
}

int qgt_kern_sweep(qk_real *state, int L, uint64_t rank_base, const qgt_kern_prog *p,
                   int nthreads)
{
    return qgt_kern_sweep_ex(state, L, rank_base, p, nthreads, 0, 0, NULL);
}

int qgt_kern_apply_block(qk_real *buf, uint64_t base, const qgt_kern_prog *p)
{
    if (!buf || !p)
        return QGT_KERN_ERR_BAD_ARG;
    if (base & p->wmask)
        return QGT_KERN_ERR_BAD_BASE;
    qk_run_unit(p, buf, base);
    return QGT_KERN_OK;
}
