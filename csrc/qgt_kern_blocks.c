/* qgt_kern_blocks.c -- move whole blocks of a slice: a permutation sweep.
 *
 * Called by qgt/_kern.pyx permute_blocks, for a sweep whose ops only permute
 * amplitudes (X, CX, CCX, SWAP, bit swaps) on bits at or above b
 * (qgt/runtime/blockperm.py).  Such a sweep maps block j of 2^b contiguous
 * amplitudes to another block whole, so it is a memcpy of each block that
 * moves, not a gather of strided runs.  Precision does not matter (bytes), so
 * there is one build of this file.
 *
 *   new block j = old block src[j]          cycles j -> src[j] -> ... -> j
 *
 * Each cycle is rotated in place, in pieces of at most 1 MiB; cycles and pieces
 * are independent, so threads take them in turn.  Blocks marked not live are all
 * zero (known by the planner): a cycle of them is skipped, and inside a cycle a
 * block whose new content is such a block is cleared, or left alone if it was not
 * live either.  A cycle with a dead block starts its rotation there, since its
 * old content (zero) need not be kept: no scratch copy.  Only a cycle of live
 * blocks goes through a piece-sized scratch buffer, allocated by the thread that
 * first needs one.  So a GHZ chain's cycle of blocks with one live block costs
 * one copy and one clear, and nothing else: the scratch copy, with the page
 * faults of a fresh 512 KiB malloc in each call, took 0.3 of GHZ-26's 0.37 ms of
 * block moves.
 */
#include <stdlib.h>
#include <string.h>

#include "qgt_kern.h"

#define QK_PIECE_BYTES ((size_t)1 << 20) /* block_bytes is a power of two times 8 or 16 */

int qgt_kern_permute_blocks(void *state, int64_t nblocks, size_t block_bytes,
                            const int64_t *src, const uint8_t *live, int nthreads)
{
    if (nblocks < 1 || block_bytes == 0 || nthreads < 1)
        return QGT_KERN_ERR_BAD_ARG;
    for (int64_t j = 0; j < nblocks; j++)
        if (src[j] < 0 || src[j] >= nblocks)
            return QGT_KERN_ERR_BAD_ARG;
    uint8_t *seen = calloc((size_t)nblocks, 1);
    int64_t *lead = malloc((size_t)nblocks * sizeof *lead);
    if (!seen || !lead) {
        free(seen);
        free(lead);
        return QGT_KERN_ERR_NOMEM;
    }
    int64_t nl = 0;
    int bad = 0;
    for (int64_t s = 0; s < nblocks && !bad; s++) {
        if (seen[s])
            continue;
        int any = 0;
        int64_t len = 0, j = s, start = s;
        do {
            if (seen[j]) { /* src is not a permutation: j is on another cycle */
                bad = 1;
                break;
            }
            seen[j] = 1;
            any |= live[j];
            if (!live[j] && live[start])
                start = j; /* a dead block: the rotation starts there */
            len++;
            j = src[j];
        } while (j != s);
        if (len > 1 && any)
            lead[nl++] = start;
    }
    free(seen);
    if (bad) {
        free(lead);
        return QGT_KERN_ERR_BAD_ARG;
    }
    /* a cycle is rotated piece by piece (QK_PIECE_BYTES at a time): scratch stays
     * small even for blocks of half the slice, and threads share a long cycle */
    size_t piece = block_bytes < QK_PIECE_BYTES ? block_bytes : QK_PIECE_BYTES;
    if (block_bytes % piece)
        piece = block_bytes;
    const int64_t np_ = (int64_t)(block_bytes / piece), work = nl * np_;
    char *base = state;
    int nomem = 0;
#pragma omp parallel num_threads(nthreads < work ? nthreads : (work > 0 ? (int)work : 1))
    {
        char *tmp = NULL; /* scratch for a cycle of live blocks only */
#pragma omp for schedule(dynamic, 1)
        for (int64_t k = 0; k < work; k++) {
            const int64_t s = lead[k / np_];
            const size_t off = (size_t)(k % np_) * piece;
            int64_t j = s;
            if (live[s]) { /* a cycle of live blocks: keep the first one aside */
                if (!tmp && !(tmp = malloc(piece))) {
#pragma omp atomic write
                    nomem = 1;
                    continue;
                }
                memcpy(tmp, base + (size_t)s * block_bytes + off, piece);
            }
            while (src[j] != s) {
                char *to = base + (size_t)j * block_bytes + off;
                if (live[src[j]])
                    memcpy(to, base + (size_t)src[j] * block_bytes + off, piece);
                else if (live[j])
                    memset(to, 0, piece);
                j = src[j];
            }
            char *to = base + (size_t)j * block_bytes + off;
            if (live[s])
                memcpy(to, tmp, piece);
            else if (live[j])
                memset(to, 0, piece);
        }
        free(tmp);
    }
    free(lead);
    return nomem ? QGT_KERN_ERR_NOMEM : QGT_KERN_OK;
}
