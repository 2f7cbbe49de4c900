"""A sweep that only permutes amplitudes on high bits runs as block moves.

Used by ``qgt.runtime.engine.Engine`` for an in-RAM sweep, and by the bench floor
(``qgt.bench.floor``) to count what such a sweep touches.  When every op of a sweep is
a permutation (X, CX, CCX, SWAP, a fused CX chain, a bit swap) and no op's target or
local control is below bit b, the sweep maps each block of 2^b contiguous amplitudes
onto another block whole:

    index    L-1 ........ b | b-1 ...... 0
             block number j | offset       ->   block pi(j), same offset

So it is a memcpy of every block that moves (``qgt_kern_permute_blocks``), not a gather
of strided runs; blocks the permutation fixes are not touched at all, and blocks the
planner knows are zero (``Sweep.zero_mask``, ``Sweep.zero_wbits``) are neither read nor
written: a block whose new content is one of them is cleared if it may hold anything.
A GHZ chain's second sweep, which the gather path runs as a 3x pass over strided
16-amplitude runs, copies one block and clears another.
"""

from __future__ import annotations

import numpy as np

from qgt.errors import InternalError
from qgt.plan.fuser import moves_only
from qgt.plan.steps import SWAPBITS

MIN_BLOCK_BYTES = 4096  # below this the block moves are short copies: the sweep is better


def _low_bit(ops, L: int) -> int | None:
    """The lowest bit any op targets or controls locally; None if an op is not a
    permutation."""
    low = L
    for op in ops:
        if not moves_only(op):
            return None
        local_ctrl = op.ctrl_mask & ((1 << L) - 1)
        if max(op.targets) >= L:  # a node-shared bit: the window's sweep, not this slice's
            return None
        low = min(low, *op.targets)
        if local_ctrl:
            low = min(low, (local_ctrl & -local_ctrl).bit_length() - 1)
    return low


def _apply(full: np.ndarray, op) -> None:
    """Move the global indices ``full`` as ``op`` moves amplitudes (in place)."""
    sel = (full & op.ctrl_mask) == op.ctrl_val
    if op.kind == SWAPBITS:
        a, c = op.targets
        x = ((full >> a) ^ (full >> c)) & 1 & sel
        full ^= (x << a) | (x << c)
        return
    if len(op.targets) == 1:  # a 2x2 permutation: X (CX, MCX), or the identity
        if op.matrix[0][0] == 0:
            full ^= sel.astype(np.int64) << op.targets[0]
        return
    sub = np.zeros(len(full), dtype=np.int64)
    for i, t in enumerate(op.targets):
        sub |= ((full >> t) & 1) << i
    to = np.argmax(np.asarray(op.matrix) != 0, axis=0)  # column c's 1 is in row to[c]
    delta = sub ^ to[sub]
    move = np.zeros(len(full), dtype=np.int64)
    for i, t in enumerate(op.targets):
        move |= ((delta >> i) & 1) << t
    full ^= np.where(sel, move, 0)


def block_permutation(ops, L: int, base: int, zero_mask: int, itemsize: int):
    """``(src, live)`` when ``ops`` run as block moves on a slice of 2^L amplitudes
    whose first global index is ``base``: the slice cut into ``len(src)`` blocks, new
    block j is old block src[j], and ``live[j]`` is 0 for a block known to be zero.
    None when they do not (an op that does arithmetic, or blocks below
    ``MIN_BLOCK_BYTES``)."""
    b = _low_bit(ops, L) if ops else None
    if b is None or (itemsize << b) < MIN_BLOCK_BYTES:
        return None
    blocks = np.arange(1 << (L - b), dtype=np.int64)
    full = (blocks << b) | base
    live = (full & zero_mask) == 0  # (a slice whose rank bits read 1 there: none)
    for op in ops:
        _apply(full, op)
    dst = (full & ((1 << L) - 1)) >> b
    # (a bincount, not np.unique: unique's first call costs milliseconds of set-up)
    if np.any(full >> L != base >> L) or np.bincount(dst, minlength=len(dst)).max() > 1:
        raise InternalError("a block move left the slice or was not a permutation")
    src = np.empty_like(blocks)
    src[dst] = blocks
    return src, live.astype(np.uint8)


def moved_fraction(src: np.ndarray, live: np.ndarray) -> float:
    """The part of the slice a block permutation must read and write: the blocks that
    move where the old or the new content may be non-zero (what the kernel copies, or
    clears when only the old content may be)."""
    moves = src != np.arange(len(src))
    return float(np.count_nonzero(moves & (live.astype(bool) | live[src].astype(bool)))) \
        / len(src)
