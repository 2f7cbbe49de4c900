/* qgt_kern_scalar.c -- plain scalar kernel for buffers narrower than a vector.
 *
 * Called by qk_apply_op when the working set has fewer than QK_LVW bits
 * (tiny states only: one or two qubits per rank).  Deliberately simple: every
 * op kind goes through one gather-multiply-scatter loop.
 */
#include "qgt_kern_impl.h"

void qk_scalar(const qk_op *op, qk_real *buf, int w, uint64_t base, uint64_t fm, uint64_t fv)
{
    const size_t n = (size_t)1 << w;
    const uint64_t cm = op->icm | fm, cv = op->icv | fv;
    const int nt = op->nt, dim = 1 << nt;
    const qk_real *m = op->mat;
    if (op->diag) {
        for (size_t i = 0; i < n; i++) {
            if ((i & cm) != cv)
                continue;
            int idx = 0;
            for (int j = 0; j < nt; j++) {
                const uint64_t src = op->tpos[j] >= 0 ? (uint64_t)i : base;
                const int bit = op->tpos[j] >= 0 ? op->tpos[j] : op->tphys[j];
                idx |= (int)((src >> bit) & 1) << j;
            }
            const double re = buf[2 * i], im = buf[2 * i + 1];
            const double dr = m[2 * idx], di = m[2 * idx + 1];
            buf[2 * i] = dr * re - di * im;
            buf[2 * i + 1] = dr * im + di * re;
        }
        return;
    }
    uint64_t tmask = 0;
    size_t off[1 << QGT_KERN_MAX_TARGETS];
    for (int j = 0; j < nt; j++)
        tmask |= (uint64_t)1 << op->tpos[j];
    for (int c = 0; c < dim; c++) {
        off[c] = 0;
        for (int j = 0; j < nt; j++)
            off[c] |= (size_t)((c >> j) & 1) << op->tpos[j];
    }
    double in[2 << QGT_KERN_MAX_TARGETS];
    for (size_t i = 0; i < n; i++) {
        if ((i & tmask) || (i & cm) != cv)
            continue;
        for (int c = 0; c < dim; c++) {
            in[2 * c] = buf[2 * (i + off[c])];
            in[2 * c + 1] = buf[2 * (i + off[c]) + 1];
        }
        for (int r = 0; r < dim; r++) {
            double re = 0.0, im = 0.0;
            for (int c = 0; c < dim; c++) {
                const double mr = m[2 * (r * dim + c)], mi = m[2 * (r * dim + c) + 1];
                re += mr * in[2 * c] - mi * in[2 * c + 1];
                im += mr * in[2 * c + 1] + mi * in[2 * c];
            }
            buf[2 * (i + off[r])] = re;
            buf[2 * (i + off[r]) + 1] = im;
        }
    }
}
