/* qgt_kern_compile.c -- validates an op list and compiles it for one working set.
 *
 * Called through qgt_kern_compile() by qgt/_kern.pyx (OpList caches one
 * compiled program per wmap).  Each op is classified once here so the per-unit
 * loop in qgt_kern_sweep.c only dispatches:
 *   - a dense matrix that is diagonal becomes a DIAG (phases never move data);
 *   - an exact X, or SWAPBITS on two high bits, moves runs (QK_MOVE);
 *     SWAPBITS of a low and a high bit is a lane blend (QK_LSWAP);
 *   - dense 1- and 2-qubit ops on high bits get register-resident kernels,
 *     with half-cost variants for real matrices (h, ry, real blocks) and for
 *     1-qubit ones with a real diagonal and an imaginary off-diagonal (rx);
 *   - targets below QK_LVW live inside one vector, so 1- and 2-qubit ops on
 *     them get lane-varying coefficients and partners from lane shuffles;
 *     bigger ops first swap those bits with free high bits (compile_expand);
 *   - controls split three ways: outside W (tested once per unit), high
 *     buffer bits (pinned bits of the run enumeration, so skipped amplitudes
 *     are never read), low buffer bits (lane masks).
 * Diagonal tables are expanded per value of the targets outside W, so a
 * unit only looks up its sub-diagonal and skips entries that are exactly 1:
 * cp, cz and mcp touch only the amplitudes whose phase changes.
 */
#include "qgt_kern_impl.h"

static void *qk_alloc(size_t bytes)
{
    size_t n = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, n ? n : 64);
}

static void op_free(qk_op *op)
{
    void *ptrs[] = {op->cr, op->ci, op->rstart, op->tcol, op->vcr, op->vci,
                    op->fr, op->fi, op->ones,   op->anyact, op->mat};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        free(ptrs[i]);
}

void qgt_kern_prog_free(qgt_kern_prog *prog)
{
    if (!prog)
        return;
    for (size_t i = 0; i < prog->nops; i++)
        op_free(&prog->ops[i]);
    free(prog->ops);
    free(prog->first);
    free(prog);
}

static int is_one(double re, double im)
{
    return re == 1.0 && im == 0.0;
}

/* lane l of a vector: does it satisfy the controls on low buffer bits? */
static int lane_ok(uint64_t lcm, uint64_t lcv, int l)
{
    return ((uint64_t)l & lcm) == lcv;
}

/* Compile a diagonal: d has 2^nt entries, targets given as buffer bit (or -1
 * with a physical bit for those outside W). */
static int compile_diag(qk_op *op, int nt, const int *tpos, const int *tphys, const double *d,
                        uint64_t lcm, uint64_t lcv)
{
    int hidx[QGT_KERN_MAX_TARGETS], lidx[QGT_KERN_MAX_TARGETS], oidx[QGT_KERN_MAX_TARGETS];
    op->kind = QK_DIAG;
    op->kh = op->kl = op->no = 0;
    for (int j = 0; j < nt; j++) {
        if (tpos[j] < 0) {
            oidx[op->no] = j;
            op->obit[op->no++] = tphys[j];
        } else if (tpos[j] >= QK_LVW) {
            hidx[op->kh] = j;
            op->hb[op->kh++] = tpos[j];
            op->ubits |= (uint64_t)1 << tpos[j];
        } else {
            lidx[op->kl] = j;
            op->lb[op->kl++] = tpos[j];
        }
    }
    const size_t nent = (size_t)1 << (op->no + op->kh);
    const size_t noi = (size_t)1 << op->no;
    op->fr = qk_alloc(nent * sizeof(qk_vd));
    op->fi = qk_alloc(nent * sizeof(qk_vd));
    op->ones = calloc(nent, 1);
    op->anyact = calloc(noi, 1);
    if (!op->fr || !op->fi || !op->ones || !op->anyact)
        return QGT_KERN_ERR_NOMEM;
    for (size_t e = 0; e < nent; e++) {
        size_t oi = e >> op->kh, h = e & (((size_t)1 << op->kh) - 1);
        int base_idx = 0;
        for (int k = 0; k < op->no; k++)
            base_idx |= (int)((oi >> k) & 1) << oidx[k];
        for (int k = 0; k < op->kh; k++)
            base_idx |= (int)((h >> k) & 1) << hidx[k];
        int all_one = 1;
        qk_vd fr, fi;
        for (int l = 0; l < QK_VW; l++) {
            double re = 1.0, im = 0.0;
            if (lane_ok(lcm, lcv, l)) {
                int idx = base_idx;
                for (int k = 0; k < op->kl; k++)
                    idx |= ((l >> op->lb[k]) & 1) << lidx[k];
                re = d[2 * idx];
                im = d[2 * idx + 1];
            }
            all_one &= is_one(re, im);
            fr[2 * l] = fr[2 * l + 1] = re;
            fi[2 * l] = -im;
            fi[2 * l + 1] = im;
        }
        op->fr[e] = fr;
        op->fi[e] = fi;
        op->ones[e] = (unsigned char)all_one;
        if (!all_one)
            op->anyact[oi] = 1;
    }
    int act = 0;
    for (size_t oi = 0; oi < noi; oi++)
        act |= op->anyact[oi];
    if (!act)
        op->kind = QK_NOP;
    return QGT_KERN_OK;
}

/* uniform coefficients: dense rows for D1H/D2H, sparse rows for DGU */
static int compile_uniform(qk_op *op, int nt, const double *m)
{
    const int dim = 1 << nt;
    int nnz = 0;
    for (int i = 0; i < dim * dim; i++)
        nnz += (m[2 * i] != 0.0 || m[2 * i + 1] != 0.0);
    if (nt == 1)
        op->kind = QK_D1H;
    else if (nt == 2 && nnz > 8)
        op->kind = QK_D2H;
    else
        op->kind = QK_DGU;
    const int dense = op->kind != QK_DGU;
    const int nterm = dense ? dim * dim : nnz;
    op->cr = qk_alloc((size_t)(nterm ? nterm : 1) * sizeof(qk_real));
    op->ci = qk_alloc((size_t)(nterm ? nterm : 1) * sizeof(qk_real));
    op->rstart = malloc((size_t)(dim + 1) * sizeof(int));
    op->tcol = malloc((size_t)(nterm ? nterm : 1) * sizeof(int));
    if (!op->cr || !op->ci || !op->rstart || !op->tcol)
        return QGT_KERN_ERR_NOMEM;
    int t = 0;
    for (int r = 0; r < dim; r++) {
        op->rstart[r] = t;
        for (int c = 0; c < dim; c++) {
            double re = m[2 * (r * dim + c)], im = m[2 * (r * dim + c) + 1];
            if (!dense && re == 0.0 && im == 0.0)
                continue;
            op->cr[t] = re;
            op->ci[t] = im;
            op->tcol[t++] = c;
        }
    }
    op->rstart[dim] = t;
    op->real = 1;
    for (int i = 0; i < t; i++)
        op->real &= op->ci[i] == 0.0;
    op->xrot = nt == 1 && !op->real && op->ci[0] == 0.0 && op->ci[3] == 0.0 &&
               op->cr[1] == 0.0 && op->cr[2] == 0.0;
    op->dense = t == dim * dim;
    return QGT_KERN_OK;
}

/* lane-varying coefficients for ops with targets inside a vector (DGL).
 * Output lane l of high row rh gets the sum over (ch, si) of coef * lane
 * l ^ s(si) of input ch; low controls are folded in (identity on failing
 * lanes).  All terms are stored, zeros included, so the kernel's loops have
 * fixed trip counts. */
static int compile_lanes(qk_op *op, int nt, const int *tpos, const double *m, uint64_t lcm,
                         uint64_t lcv)
{
    int hidx[QGT_KERN_MAX_TARGETS], lidx[QGT_KERN_MAX_TARGETS];
    const int dim = 1 << nt;
    op->kh = op->kl = 0;
    op->s1 = 0;
    for (int j = 0; j < nt; j++) {
        if (tpos[j] >= QK_LVW) {
            hidx[op->kh] = j;
            op->hb[op->kh++] = tpos[j];
            op->ubits |= (uint64_t)1 << tpos[j];
        } else {
            lidx[op->kl] = j;
            op->lb[op->kl++] = tpos[j];
            op->s1 |= 1 << tpos[j];
        }
    }
    op->kind = QK_DGL;
    const int nh = 1 << op->kh, np = 1 << op->kl;
    const size_t nterm = (size_t)nh * nh * np;
    op->vcr = qk_alloc(nterm * sizeof(qk_vd));
    op->vci = qk_alloc(nterm * sizeof(qk_vd));
    if (!op->vcr || !op->vci)
        return QGT_KERN_ERR_NOMEM;
    op->real = 1;
    size_t t = 0;
    for (int rh = 0; rh < nh; rh++) {
        for (int ch = 0; ch < nh; ch++) {
            for (int si = 0; si < np; si++, t++) {
                /* lane xor pattern: pdep(si, low target lanes) */
                const int s = (int)qk_pdep((uint64_t)si, (uint64_t)op->s1);
                qk_vd cr, ci;
                for (int l = 0; l < QK_VW; l++) {
                    double re, im = 0.0;
                    if (!lane_ok(lcm, lcv, l)) {
                        re = (rh == ch && s == 0) ? 1.0 : 0.0;
                    } else {
                        int row = 0, col = 0;
                        for (int k = 0; k < op->kh; k++) {
                            row |= ((rh >> k) & 1) << hidx[k];
                            col |= ((ch >> k) & 1) << hidx[k];
                        }
                        for (int k = 0; k < op->kl; k++) {
                            row |= ((l >> op->lb[k]) & 1) << lidx[k];
                            col |= (((l ^ s) >> op->lb[k]) & 1) << lidx[k];
                        }
                        re = m[2 * (row * dim + col)];
                        im = m[2 * (row * dim + col) + 1];
                    }
                    op->real &= im == 0.0;
                    cr[2 * l] = cr[2 * l + 1] = re;
                    ci[2 * l] = -im;
                    ci[2 * l + 1] = im;
                }
                op->vcr[t] = cr;
                op->vci[t] = ci;
            }
        }
    }
    return QGT_KERN_OK;
}

static int is_diagonal(int nt, const double *m)
{
    const int dim = 1 << nt;
    for (int r = 0; r < dim; r++)
        for (int c = 0; c < dim; c++)
            if (r != c && (m[2 * (r * dim + c)] != 0.0 || m[2 * (r * dim + c) + 1] != 0.0))
                return 0;
    return 1;
}

static int is_x(const double *m)
{
    static const double x[8] = {0, 0, 1, 0, 1, 0, 0, 0};
    for (int i = 0; i < 8; i++)
        if (m[i] != x[i])
            return 0;
    return 1;
}

/* exchange low buffer bit a with high buffer bit b, under low controls */
static int compile_lswap(qk_op *op, int a, int b, uint64_t lcm, uint64_t lcv)
{
    op->kind = QK_LSWAP;
    op->kl = op->kh = 1;
    op->lb[0] = a;
    op->hb[0] = b;
    op->ubits |= (uint64_t)1 << b;
    for (int l = 0; l < QK_VW; l++) {
        const int ok = lane_ok(lcm, lcv, l), bit = (l >> a) & 1;
        op->lmask[2 * l] = op->lmask[2 * l + 1] = (ok && bit) ? -1LL : 0;
        op->lmask2[2 * l] = op->lmask2[2 * l + 1] = (ok && !bit) ? -1LL : 0;
    }
    return QGT_KERN_OK;
}

static int compile_one(const qgt_kern_op *src, const int *pos, int w, qk_op *op)
{
    static const double swapm[32] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
                                     0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    const int kind = src->kind, nt = src->nt;
    if (kind == QGT_KERN_DENSE) {
        if (nt < 1 || nt > QGT_KERN_MAX_TARGETS)
            return QGT_KERN_ERR_BAD_OP;
    } else if (kind == QGT_KERN_DIAG) {
        if (nt < 0 || nt > QGT_KERN_MAX_TARGETS)
            return QGT_KERN_ERR_BAD_OP;
    } else if (kind == QGT_KERN_SWAPBITS) {
        if (nt != 2)
            return QGT_KERN_ERR_BAD_OP;
    } else {
        return QGT_KERN_ERR_BAD_OP;
    }
    if (kind != QGT_KERN_SWAPBITS && !src->mat)
        return QGT_KERN_ERR_BAD_OP;
    if (src->ctrl_val & ~src->ctrl_mask)
        return QGT_KERN_ERR_BAD_OP;
    uint64_t tmask = 0;
    int tpos[QGT_KERN_MAX_TARGETS] = {-1, -1, -1, -1, -1, -1};
    int tphys[QGT_KERN_MAX_TARGETS] = {-1, -1, -1, -1, -1, -1};
    for (int j = 0; j < nt; j++) {
        const int b = src->targets[j];
        if (b < 0 || b > 63 || (tmask >> b) & 1)
            return QGT_KERN_ERR_BAD_OP;
        tmask |= (uint64_t)1 << b;
        tphys[j] = b;
        tpos[j] = pos[b];
        if (kind != QGT_KERN_DIAG && tpos[j] < 0)
            return QGT_KERN_ERR_TARGET_OUTSIDE;
    }
    if (tmask & src->ctrl_mask)
        return QGT_KERN_ERR_BAD_OP;

    /* split controls: outside W / high buffer bits / low buffer bits */
    uint64_t lcm = 0, lcv = 0;
    for (int b = 0; b < 64; b++) {
        if (!((src->ctrl_mask >> b) & 1))
            continue;
        const uint64_t v = (src->ctrl_val >> b) & 1;
        if (pos[b] < 0) {
            op->ocm |= (uint64_t)1 << b;
            op->ocv |= v << b;
            continue;
        }
        const int pb = pos[b];
        op->icm |= (uint64_t)1 << pb;
        op->icv |= v << pb;
        if (pb >= QK_LVW) {
            op->fm |= (uint64_t)1 << pb;
            op->fv |= v << pb;
        } else {
            lcm |= (uint64_t)1 << pb;
            lcv |= v << pb;
        }
    }
    op->ubits = op->fm;
    if (lcm) {
        op->lsel = 1;
        for (int l = 0; l < QK_VW; l++)
            op->lmask[2 * l] = op->lmask[2 * l + 1] = lane_ok(lcm, lcv, l) ? -1LL : 0;
    }

    const double *m = (kind == QGT_KERN_SWAPBITS) ? swapm : src->mat;
    const int dense = kind != QGT_KERN_DIAG;

    if (w < QK_LVW) {
        /* the buffer is narrower than one vector: plain scalar code */
        const size_t ent = dense ? (size_t)1 << (2 * nt) : (size_t)1 << nt;
        op->kind = QK_SCALAR;
        op->nt = nt;
        op->diag = !dense;
        memcpy(op->tpos, tpos, sizeof tpos);
        memcpy(op->tphys, tphys, sizeof tphys);
        op->mat = malloc(ent * 2 * sizeof(qk_real));
        if (!op->mat)
            return QGT_KERN_ERR_NOMEM;
        for (size_t e = 0; e < 2 * ent; e++)
            op->mat[e] = (qk_real)m[e];
        return QGT_KERN_OK;
    }

    if (!dense)
        return compile_diag(op, nt, tpos, tphys, m, lcm, lcv);
    if (is_diagonal(nt, m)) {
        double d[2 << QGT_KERN_MAX_TARGETS];
        const int dim = 1 << nt;
        for (int r = 0; r < dim; r++) {
            d[2 * r] = m[2 * (r * dim + r)];
            d[2 * r + 1] = m[2 * (r * dim + r) + 1];
        }
        return compile_diag(op, nt, tpos, tphys, d, lcm, lcv);
    }
    int nlow = 0;
    for (int j = 0; j < nt; j++)
        nlow += tpos[j] < QK_LVW;
    if (kind == QGT_KERN_SWAPBITS && nlow == 1)
        return compile_lswap(op, tpos[0] < QK_LVW ? tpos[0] : tpos[1],
                             tpos[0] < QK_LVW ? tpos[1] : tpos[0], lcm, lcv);
    if (nlow)
        return compile_lanes(op, nt, tpos, m, lcm, lcv);
    op->kh = nt;
    for (int j = 0; j < nt; j++) {
        op->hb[j] = tpos[j];
        op->ubits |= (uint64_t)1 << tpos[j];
    }
    if ((nt == 1 && is_x(m)) || kind == QGT_KERN_SWAPBITS) {
        /* X: i (bit t = 0) <-> i + 2^t.  swap(a < b): i (a=1, b=0) <-> i - 2^a + 2^b */
        const int a = nt == 1 ? tpos[0] : (tpos[0] < tpos[1] ? tpos[0] : tpos[1]);
        const int b = nt == 1 ? a : (tpos[0] < tpos[1] ? tpos[1] : tpos[0]);
        op->kind = QK_MOVE;
        op->mfm = ((uint64_t)1 << a) | ((uint64_t)1 << b);
        op->mfv = nt == 1 ? 0 : (uint64_t)1 << a;
        op->moff = nt == 1 ? (size_t)1 << a : ((size_t)1 << b) - ((size_t)1 << a);
        return QGT_KERN_OK;
    }
    return compile_uniform(op, nt, m);
}

/* Dense ops of 3+ qubits with targets inside a vector run as
 *     lswap(low_j, f_j) ... ; op on f_j instead of low_j ; lswap(...) again
 * with f_j free high buffer bits: two cheap permutation passes buy the
 * lane-uniform kernel (lane-varying coefficient tables grow as 4^k). */
static int compile_expand(const qgt_kern_op *src, const int *pos, const int32_t *wmap, int w,
                          qk_op *out, size_t *nout)
{
    *nout = 1;
    if (src->kind != QGT_KERN_DENSE || src->nt < 3 || src->nt > QGT_KERN_MAX_TARGETS ||
        w < QK_LVW || !src->mat)
        return compile_one(src, pos, w, &out[0]);
    if (is_diagonal(src->nt, src->mat))
        return compile_one(src, pos, w, &out[0]);
    uint64_t used = 0;
    int low[QGT_KERN_MAX_TARGETS], nlow = 0;
    for (int j = 0; j < src->nt; j++) {
        const int b = src->targets[j];
        if (b < 0 || b > 63 || pos[b] < 0 || (used >> pos[b]) & 1)
            return compile_one(src, pos, w, &out[0]); /* reports the error */
        used |= (uint64_t)1 << pos[b];
        if (pos[b] < QK_LVW)
            low[nlow++] = j;
    }
    for (int j = 0; j < src->nt; j++)
        if ((src->ctrl_mask >> src->targets[j]) & 1)
            return compile_one(src, pos, w, &out[0]); /* control on a target */
    for (int b = 0; b < 64; b++)
        if ((src->ctrl_mask >> b) & 1 && pos[b] >= 0)
            used |= (uint64_t)1 << pos[b];
    uint64_t avail = qk_lowmask(w) & ~qk_lowmask(QK_LVW) & ~used;
    if (nlow == 0 || __builtin_popcountll(avail) < nlow)
        return compile_one(src, pos, w, &out[0]);
    qgt_kern_op moved = *src;
    int fb[QGT_KERN_MAX_TARGETS];
    for (int k = 0; k < nlow; k++) {
        fb[k] = 63 - __builtin_clzll(avail);
        avail &= ~((uint64_t)1 << fb[k]);
        moved.targets[low[k]] = wmap[fb[k]];
    }
    size_t n = 0;
    for (int k = 0; k < nlow; k++, n++) {
        int rc = compile_lswap(&out[n], pos[src->targets[low[k]]], fb[k], 0, 0);
        if (rc != QGT_KERN_OK)
            return rc;
    }
    int rc = compile_one(&moved, pos, w, &out[n++]);
    if (rc != QGT_KERN_OK)
        return rc;
    for (int k = 0; k < nlow; k++, n++) {
        rc = compile_lswap(&out[n], pos[src->targets[low[k]]], fb[k], 0, 0);
        if (rc != QGT_KERN_OK)
            return rc;
    }
    /* the swaps skip the units the op skips (they would cancel there) */
    for (size_t k = 0; k < n; k++) {
        out[k].ocm = out[nlow].ocm;
        out[k].ocv = out[nlow].ocv;
    }
    *nout = n;
    return QGT_KERN_OK;
}

int qgt_kern_compile(const qgt_kern_op *ops, size_t nops, int w, const int32_t *wmap,
                     qgt_kern_prog **out)
{
    if (!out || (nops && !ops) || (w && !wmap))
        return QGT_KERN_ERR_BAD_ARG;
    *out = NULL;
    if (w < 0 || w > 62)
        return QGT_KERN_ERR_BAD_WMAP;
    int pos[64];
    for (int b = 0; b < 64; b++)
        pos[b] = -1;
    for (int j = 0; j < w; j++) {
        if (wmap[j] < 0 || wmap[j] > 62 || (j && wmap[j] <= wmap[j - 1]))
            return QGT_KERN_ERR_BAD_WMAP;
        pos[wmap[j]] = j;
    }
    qgt_kern_prog *p = calloc(1, sizeof *p);
    if (!p)
        return QGT_KERN_ERR_NOMEM;
    p->w = w;
    for (int j = 0; j < w; j++) {
        p->wmap[j] = wmap[j];
        p->wmask |= (uint64_t)1 << wmap[j];
    }
    /* an op may expand into 1 + 2 * QK_LVW compiled ops (compile_expand) */
    const size_t cap = (nops ? nops : 1) * (1 + 2 * QK_LVW);
    p->ops = aligned_alloc(64, cap * sizeof(qk_op));
    if (!p->ops) {
        free(p);
        return QGT_KERN_ERR_NOMEM;
    }
    memset(p->ops, 0, cap * sizeof(qk_op));
    p->first = malloc((nops + 1) * sizeof(size_t));
    if (!p->first) {
        free(p->ops);
        free(p);
        return QGT_KERN_ERR_NOMEM;
    }
    p->nsrc = nops;
    for (size_t i = 0; i < nops; i++) {
        size_t n = 0;
        p->first[i] = p->nops;
        int rc = compile_expand(&ops[i], pos, wmap, w, &p->ops[p->nops], &n);
        p->nops += n;
        if (rc != QGT_KERN_OK) {
            p->nops = cap; /* zeroed slots free as no-ops */
            qgt_kern_prog_free(p);
            return rc;
        }
    }
    p->first[nops] = p->nops;
    *out = p;
    return QGT_KERN_OK;
}

const char *qgt_kern_build_info(void)
{
#if defined(_OPENMP)
#define QK_OMP "openmp"
#else
#define QK_OMP "no openmp"
#endif
    return QK_ISA ", " QK_OMP;
}
