"""Plan steps: the data the planner produces and the runtime executes.

Everything here is in physical bits (see ``layout.py``).  A plan is printable,
picklable (rank 0 plans and broadcasts it) and hashable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from qgt.ops import Condition

DENSE, DIAG, SWAPBITS = "dense", "diag", "swapbits"


@dataclass(frozen=True)
class PhysOp:
    """A gate in physical bits: ``kind`` is dense, diag or swapbits."""

    kind: str
    targets: tuple[int, ...]
    matrix: np.ndarray
    ctrl_mask: int = 0
    ctrl_val: int = 0
    condition: Condition | None = None
    name: str = ""
    # where the matrix came from: (plan item, its physical targets) per gate, in the order
    # they were multiplied; rebinding a parameter rebuilds the ops whose items it touches
    src: tuple = ()


@dataclass(frozen=True)
class Sweep:
    """One pass over the rank's slice; every dense target is in ``wbits``.

    The slice is cut into units of 2^len(wbits) amplitudes that share every bit
    outside ``wbits``; each unit is gathered into a cache-sized buffer, all ``ops``
    are applied there, and it is written back once.
    """

    wbits: tuple[int, ...]
    ops: tuple[PhysOp, ...]
    items: tuple[int, ...] = ()  # the circuit items this sweep completes
    inner: tuple = ()  # out of core: sweeps over the page-group buffer (virtual bits)
    vmap: tuple[int, ...] = ()  # out of core: physical bit -> virtual bit
    # physical bits outside wbits that still hold |0> (no non-diagonal op has touched
    # them since |0...0>): amplitudes where one of them reads 1 are zero, stay zero,
    # and are not swept
    zero_mask: int = 0
    # the bits of wbits that hold |0> as the sweep starts (a sweep that only moves
    # whole blocks skips those that are zero: qgt.runtime.blockperm)
    zero_wbits: int = 0


@dataclass(frozen=True)
class GlobalSwap:
    """Exchange local bits with rank bits: ``pairs`` of (local bit, rank bit).

    Swapping k pairs at once moves (1 - 2^-k) of the slice to 2^k - 1 partners.
    """

    pairs: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class MeasureStep:
    """Measure physical bits into classical bits (joint marginal, then collapse)."""

    bits: tuple[int, ...]
    clbits: tuple[int, ...]
    logical: tuple[int, ...]
    items: tuple[int, ...] = ()


@dataclass(frozen=True)
class ExpectStep:
    """Pauli expectation values of the terms that share one X/Y pattern ``xmask``, in
    physical masks, evaluated in one pass; ``indices`` are the observables' positions."""

    indices: tuple[int, ...]
    xmask: int
    zmasks: tuple[int, ...]
    nys: tuple[int, ...]
    wbits: tuple[int, ...] = ()  # out of core: a page group holding the X/Y bits


@dataclass
class Plan:
    n_qubits: int
    rank_bits: int
    block_qubits: int
    page_qubits: int
    steps: list = field(default_factory=list)
    n_clbits: int = 0  # the user's; resets measure into hidden bits above these
    final_layout: tuple[int, ...] = ()
    terminal: tuple[tuple[int, int], ...] = ()  # (qubit, clbit) sampled from the final state
    trajectories: bool = False  # mid-circuit collapse: every shot reruns the plan
    lower_bound_exchanges: int = 0
    decisions: dict = field(default_factory=dict)
    n_items: int = 0  # lowered circuit items (a checkpoint records which are done)
    layouts: list = field(default_factory=list)  # logical->physical after each step
    page_floor: int = 0  # out of core: the in-page bits (never exchanged); 0 in RAM
    precision: str = "double"  # amplitudes in complex128, or complex64 ("single")
    shared_bits: int = 0  # low rank bits of one node's shared window (swept in place)

    @property
    def local_bits(self) -> int:
        """The bits of one rank's slice."""
        return self.n_qubits - self.rank_bits

    @property
    def exchange_bits(self) -> int:
        """The rank bits that only a global swap reaches (the others are shared)."""
        return self.rank_bits - self.shared_bits

    def counts(self) -> dict:
        c = {"sweeps": 0, "global_swaps": 0, "swapped_bits": 0, "measure_steps": 0, "ops": 0}
        for s in self.steps:
            if isinstance(s, Sweep):
                c["sweeps"] += 1
                c["ops"] += len(s.ops)
            elif isinstance(s, GlobalSwap):
                c["global_swaps"] += 1
                c["swapped_bits"] += len(s.pairs)
            elif isinstance(s, MeasureStep):
                c["measure_steps"] += 1
        return c

    def digest(self) -> str:
        """A hash of the plan's structure and matrices (checkpoints and caches key on it)."""
        h = hashlib.sha256()
        shape = (self.n_qubits, self.rank_bits, self.block_qubits, self.page_qubits)
        h.update(repr(shape).encode())
        if self.precision != "double":
            h.update(self.precision.encode())
        if self.shared_bits:
            h.update(f"shared{self.shared_bits}".encode())
        for s in self.steps:
            if isinstance(s, Sweep):
                h.update(repr(("S", s.wbits) + ((s.zero_mask,) if s.zero_mask else ())).encode())
                for op in s.ops:
                    h.update(repr((op.kind, op.targets, op.ctrl_mask, op.ctrl_val,
                                   op.condition)).encode())
                    h.update(np.ascontiguousarray(op.matrix).tobytes())
            else:
                h.update(repr(s).encode())
        return h.hexdigest()[:16]
