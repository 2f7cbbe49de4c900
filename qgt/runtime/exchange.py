"""Global swaps: exchange local bits with rank bits between ranks, chunk by chunk.

Called by the engine for each GlobalSwap step.  For k swapped pairs (local bit p_i,
rank bit r_i), the rank whose rank bits read u keeps the part of its slice whose local
bits read u, and trades the part reading v with rank v, which stores it as its part u:

    rank u, part v  <-->  rank v, part u          (2^k - 1 partners, XOR schedule)

A part is a strided view of the slice; it is packed into a bounded send buffer,
exchanged with non-blocking MPI while the next chunk is packed, and unpacked in
place.  RAM used: two pairs of chunk buffers, never a second copy of the slice.
"""

from __future__ import annotations

import numpy as np

from qgt.obs import trace


def split_view(state: np.ndarray, L: int, bits: list[int]) -> tuple[np.ndarray, list[int]]:
    """View the slice with a size-2 axis for each bit in ``bits``; return the view and,
    for each bit (in the order given), the index of its axis."""
    shape: list[int] = []
    axis_of: dict[int, int] = {}
    hi = L
    for b in sorted(bits, reverse=True):
        if hi - b - 1 > 0:
            shape.append(1 << (hi - b - 1))
        axis_of[b] = len(shape)
        shape.append(2)
        hi = b
    if hi > 0:
        shape.append(1 << hi)
    return state.reshape(shape), [axis_of[b] for b in bits]


def part(view: np.ndarray, axes: list[int], value: int) -> np.ndarray:
    """The strided sub-view whose selected bits read ``value`` (bit i <-> axes[i]).
    Selected axes keep length 1 (a slice, not an index), so a part of one amplitude
    (every bit of a tiny slice swapped) is still a view, not a copied scalar."""
    idx: list = [slice(None)] * view.ndim
    for i, ax in enumerate(axes):
        b = (value >> i) & 1
        idx[ax] = slice(b, b + 1)
    return view[tuple(idx)]


def chunks(view: np.ndarray, max_elems: int):
    """Split a strided view into sub-views of at most ``max_elems`` elements."""
    if view.size <= max_elems or view.ndim == 0:
        yield view
        return
    inner = view.size // view.shape[0]
    if inner <= max_elems:
        step = max(1, max_elems // inner)
        for s in range(0, view.shape[0], step):
            yield view[s:s + step]
    else:
        for s in range(view.shape[0]):
            yield from chunks(view[s], max_elems)


class Exchanger:
    """Owns the exchange buffers (allocated once: first touches are slow) and runs swaps."""

    def __init__(self, comm, chunk_bytes: int, dtype=np.complex128):
        self.comm = comm
        self.amp = np.dtype(dtype).itemsize  # 16, or 8 in single precision
        self.chunk = max(1, chunk_bytes // self.amp)
        self.bufs = [(np.empty(self.chunk, dtype), np.empty(self.chunk, dtype))
                     for _ in range(2)]
        self.bytes_sent = 0

    @property
    def buffer_bytes(self) -> int:
        return 4 * self.chunk * self.amp

    def global_swap(self, state: np.ndarray, L: int, pairs) -> None:
        rank = self.comm.rank
        local_bits = [p for p, _ in pairs]
        rank_bits = [r - L for _, r in pairs]
        u = sum(((rank >> rb) & 1) << i for i, rb in enumerate(rank_bits))
        view, axes = split_view(state, L, local_bits)
        for j in range(1, 1 << len(pairs)):
            partner = rank
            for i, rb in enumerate(rank_bits):
                if (j >> i) & 1:
                    partner ^= 1 << rb
            self._stream(part(view, axes, u ^ j), partner)

    def _stream(self, region: np.ndarray, partner: int) -> None:
        pending = None
        for i, ch in enumerate(chunks(region, self.chunk)):
            sbuf, rbuf = self.bufs[i % 2]
            m = ch.size
            with trace.span("pack", "memory", {"bytes": m * self.amp}):
                np.copyto(sbuf[:m].reshape(ch.shape), ch)
            reqs = self.comm.isendrecv(sbuf[:m], rbuf[:m], partner)
            if pending is not None:
                self._finish(*pending)
            pending = (reqs, rbuf[:m], ch)
            self.bytes_sent += m * self.amp
        if pending is not None:
            self._finish(*pending)

    def _finish(self, reqs, rbuf: np.ndarray, dest: np.ndarray) -> None:
        with trace.span("MPI wait", "network", {"bytes": rbuf.nbytes}):
            self.comm.wait(reqs)
        with trace.span("unpack", "memory", {"bytes": rbuf.nbytes}):
            np.copyto(dest, rbuf.reshape(dest.shape))
