"""The internal form every circuit is lowered to; read by the planner and runtime.

Callers: ``qgt.frontend`` produces these, ``qgt.plan`` schedules them,
``qgt.runtime`` executes them.  Nothing here imports qiskit, MPI or h5py.

Bit order is Qiskit's: logical qubit q is bit q of the amplitude index, and a
matrix on targets (t0, t1, ...) is indexed with t0 as its least significant bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Condition:
    """Apply only if the classical bits ``clbits`` (LSB first) read ``value``."""

    clbits: tuple[int, ...]
    value: int


@dataclass(frozen=True)
class Gate:
    """A matrix on ``targets`` with optional ``controls`` at ``ctrl_values``.

    ``matrix`` is 2^k x 2^k (dense) or, when ``diagonal``, the 2^k diagonal.
    Diagonal gates never move data; controls never move data.
    """

    name: str
    targets: tuple[int, ...]
    matrix: np.ndarray
    diagonal: bool = False
    controls: tuple[int, ...] = ()
    ctrl_values: tuple[int, ...] = ()
    condition: Condition | None = None

    @property
    def qubits(self) -> tuple[int, ...]:
        return self.targets + self.controls

    @property
    def moving_targets(self) -> tuple[int, ...]:
        """Targets that must be in the working set (empty for diagonals)."""
        return () if self.diagonal else self.targets


@dataclass(frozen=True)
class Swap:
    """A SWAP of two qubits: executed as a relabelling of the layout, no data moved."""

    a: int
    b: int
    condition: Condition | None = None

    @property
    def qubits(self) -> tuple[int, ...]:
        return (self.a, self.b)


@dataclass(frozen=True)
class Measure:
    """Measure ``qubit`` into classical bit ``clbit`` (collapses the state)."""

    qubit: int
    clbit: int


@dataclass(frozen=True)
class Reset:
    """Reset ``qubit`` to |0>."""

    qubit: int


@dataclass
class Circuit:
    """A lowered circuit: ``ops`` in program order on ``n_qubits`` and ``n_clbits``."""

    n_qubits: int
    n_clbits: int
    ops: list = field(default_factory=list)
    name: str = "circuit"
    global_phase: float = 0.0

    def terminal_measurements(self) -> tuple[list[Measure], list]:
        """Split trailing measurements (nothing acts on the qubit or clbit afterwards)
        from the rest, so they can be sampled from the final state with shots."""
        body = list(self.ops)
        tail: list[Measure] = []
        touched_q: set[int] = set()
        touched_c: set[int] = set()
        i = len(body) - 1
        while i >= 0:
            op = body[i]
            if isinstance(op, Measure):
                if op.qubit in touched_q or op.clbit in touched_c:
                    break
                tail.append(op)
                del body[i]
                touched_c.add(op.clbit)
            else:
                # a gate after a measurement (in reverse order: before) only matters
                # if it touches a measured qubit later; measures commute with gates
                # on other qubits, so keep scanning past them
                qs = set(op.qubits) if not isinstance(op, Reset) else {op.qubit}
                cond = getattr(op, "condition", None)
                if cond is not None or qs & {m.qubit for m in tail}:
                    break
                touched_q |= qs
            i -= 1
        tail.reverse()
        return tail, body

    def has_mid_circuit_collapse(self) -> bool:
        _, body = self.terminal_measurements()
        return any(isinstance(op, (Measure, Reset)) for op in body) or any(
            getattr(op, "condition", None) is not None for op in body
        )
