"""Layout: where each logical qubit currently lives among the physical index bits.

Used by the planner, which replays every relabelling (SWAP gates, global swaps) at
plan time so the runtime only ever sees physical bits.

    physical bit:  n-1 ........ L | L-1 ............ 0
    tier:          rank bits (g)  | local bits (page + offset)

A physical index is ``(rank << L) | local_index``.
"""

from __future__ import annotations


class Layout:
    """A bijection logical qubit <-> physical bit, starting as the identity."""

    def __init__(self, n_qubits: int, local_bits: int):
        self.n = n_qubits
        self.L = local_bits
        self.phys = list(range(n_qubits))  # logical -> physical
        self.logical = list(range(n_qubits))  # physical -> logical

    @classmethod
    def from_phys(cls, phys: tuple[int, ...], local_bits: int) -> Layout:
        lay = cls(len(phys), local_bits)
        lay.phys = list(phys)
        for q, p in enumerate(phys):
            lay.logical[p] = q
        return lay

    def copy(self) -> Layout:
        other = Layout(self.n, self.L)
        other.phys = list(self.phys)
        other.logical = list(self.logical)
        return other

    def is_local(self, q: int) -> bool:
        return self.phys[q] < self.L

    def swap_logical(self, a: int, b: int) -> None:
        """Relabel: logical qubits a and b trade physical bits (a SWAP gate, free)."""
        pa, pb = self.phys[a], self.phys[b]
        self.phys[a], self.phys[b] = pb, pa
        self.logical[pa], self.logical[pb] = b, a

    def swap_physical(self, pa: int, pb: int) -> None:
        """Data moved so that physical bits pa and pb traded contents."""
        self.swap_logical(self.logical[pa], self.logical[pb])

    def is_identity(self) -> bool:
        return self.phys == list(range(self.n))

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(self.phys)
