/* qgt_kern_diag.c -- diagonal ops (phases) on one unit buffer.
 *
 * Called by qk_apply_op (qgt_kern_sweep.c) with the sub-table for this unit's
 * values of the targets outside W (oi).  Each combination h of the high
 * inside targets pins those bits, so only the amplitudes of that combination
 * are visited; a combination whose factor vector is exactly 1 in every lane
 * is skipped without being read.  That is what makes cp, cz and mcp cost a
 * quarter (or less) of a pass, and a phase on a rank bit a per-rank scalar.
 */
#include "qgt_kern_impl.h"

void qk_diag(const qk_op *op, qk_real *buf, int w, uint64_t fm, uint64_t fv, int oi)
{
    const int kh = op->kh, nh = 1 << kh;
    uint64_t tb = 0;
    for (int j = 0; j < kh; j++)
        tb |= (uint64_t)1 << op->hb[j];
    for (int h = 0; h < nh; h++) {
        const size_t e = ((size_t)oi << kh) | (size_t)h;
        if (op->ones[e])
            continue;
        uint64_t hv = 0;
        for (int j = 0; j < kh; j++)
            hv |= (uint64_t)((h >> j) & 1) << op->hb[j];
        const qk_vd fr_ = op->fr[e], fi_ = op->fi[e];
        uint64_t fr;
        size_t R;
        qk_runs(w, fm | tb, &fr, &R);
        uint64_t f = 0;
        do {
            qk_real *p = buf + 2 * (fv | hv | f);
            for (size_t i = 0; i < 2 * R; i += QK_VD) {
                const qk_vd x = qk_ld(p + i);
                qk_st(p + i, fr_ * x + fi_ * qk_sw(x));
            }
            f = QK_NEXT(f, fr);
        } while (f);
    }
}
