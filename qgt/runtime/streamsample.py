"""Samples drawn while the last out-of-core sweep has each page group in RAM.

Used by ``qgt.runtime.ooc.OocEngine`` when one rank holds the whole state on the SSD
tier in double precision and only samples read the final state (``qgt.api`` says so
before the run): the last sweep then hands each group to this sampler and writes
nothing back, so a run that only wants counts does not write the whole state to disk
and read it again.

The shots are the sorted uniforms ``Engine.sample`` would draw, laid along the
cumulative distribution in the order the sweep visits amplitudes (groups in turn, each
in buffer order): every amplitude is visited once, so each shot lands on index i with
probability |a_i|^2.  The state's norm is taken as 1 (the circuit is unitary from a
normalised state; terminal measurements only); a shot past the last cumulative sum,
which rounding can leave (in complex128 about 1e-15 of the time, hence double precision
only), goes to the last amplitude with any weight, as ``qgt_kern_sample_sorted`` does
within a slice.
"""

from __future__ import annotations

import numpy as np

from qgt import _kern


class StreamSampler:
    """Sorted uniform targets, served group by group as the last sweep passes."""

    def __init__(self, targets: np.ndarray, page_bits: int, threads: int):
        self.targets = targets  # sorted, in [0, 1)
        self.p = page_bits
        self.threads = threads
        self.done = 0  # targets served so far
        self.cum = 0.0  # weight of the groups visited so far
        self.picked: list[np.ndarray] = []
        self.last = -1  # physical index of the last amplitude seen with weight

    def take(self, buf: np.ndarray, pages) -> None:
        """Serve the targets that fall in this group: ``buf`` holds ``pages`` (physical
        page numbers) in buffer order."""
        pa = 1 << self.p
        norms = _kern.block_norms(buf, pa, self.threads)
        starts = self.cum + np.concatenate([[0.0], np.cumsum(norms)])
        end = int(np.searchsorted(self.targets, starts[-1], side="left"))
        mine = self.targets[self.done:end]
        if len(mine):
            which = np.searchsorted(starts, mine, side="right") - 1
            for k in np.unique(which):
                sel = which == k
                page = buf[k * pa:(k + 1) * pa]
                local = _kern.sample_sorted(page, np.ascontiguousarray(mine[sel] - starts[k]))
                self.picked.append(local + (int(pages[k]) << self.p))
        self.done = end
        weighted = np.flatnonzero(norms > 0)
        if len(weighted):
            k = int(weighted[-1])
            page = buf[k * pa:(k + 1) * pa]
            tail = _kern.sample_sorted(page, np.array([2 * norms[k] + 1.0]))[0]  # past the end
            self.last = (int(pages[k]) << self.p) + int(tail)
        self.cum = float(starts[-1])

    def samples(self) -> np.ndarray:
        """Every shot's physical index (the shots past the end on the last weighted)."""
        rest = len(self.targets) - self.done
        out = self.picked + [np.full(rest, self.last, dtype=np.int64)] if rest else self.picked
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
