"""Gate fusion inside one sweep: merge runs of gates into dense blocks.

Called by the planner on each sweep's ops.  Inside a cache-resident unit the cost
of a gate is arithmetic, so fusing only pays when it removes work: consecutive gates
on the same small set of qubits (a rotation sandwich, a 1-qubit gate next to the
2-qubit gate on its qubit) collapse into one matrix.  Diagonals are kept separate
(they only touch the amplitudes whose phase is not one).
"""

from __future__ import annotations

import numpy as np

from qgt.plan.steps import DENSE, PhysOp


def embed(m: np.ndarray, own: tuple[int, ...], targets: tuple[int, ...]) -> np.ndarray:
    """The matrix ``m`` (or a diagonal, as a vector) on bits ``own``, as a matrix on the
    ordered ``targets`` (a superset of ``own``)."""
    if np.ndim(m) == 1:
        m = np.diag(m)
    if tuple(own) == tuple(targets):  # a rotation chain on one qubit: nothing to place
        return np.asarray(m, dtype=complex)
    k = len(targets)
    dim = 1 << k
    pos = [targets.index(t) for t in own]
    full = np.zeros((dim, dim), dtype=complex)
    rest_mask = sum(1 << j for j in range(k)) & ~sum(1 << p for p in pos)
    sub = 1 << len(pos)
    for base in range(dim):
        if base & ~rest_mask:
            continue
        idx = [base | sum(((s >> i) & 1) << pos[i] for i in range(len(pos))) for s in range(sub)]
        full[np.ix_(idx, idx)] = m
    return full


def _fusable(op: PhysOp) -> bool:
    return op.kind == DENSE and op.ctrl_mask == 0 and op.condition is None


def fuse(ops: list[PhysOp], max_qubits: int, wbits: set[int]) -> list[PhysOp]:
    """Merge each uncontrolled dense gate into the previous one when together they act
    on at most ``max(2, width of the larger)`` qubits and nothing in between touches
    their qubits."""
    if max_qubits < 2:
        return list(ops)
    out: list[PhysOp] = []
    for op in ops:
        if out and _fusable(op):
            # find the last op touching op's qubits
            j = len(out) - 1
            mine = set(op.targets)
            while j >= 0:
                other = out[j]
                touched = set(other.targets) | {b for b in range(64) if other.ctrl_mask >> b & 1}
                if touched & mine:
                    break
                j -= 1
            if j >= 0 and _fusable(out[j]):
                prev = out[j]
                union = tuple(sorted(set(prev.targets) | mine))
                if len(union) <= max(2, len(prev.targets), len(op.targets)) and len(union) <= \
                        max_qubits:
                    mat = embed(op.matrix, op.targets, union) @ embed(prev.matrix, prev.targets,
                                                                      union)
                    out[j] = PhysOp(DENSE, union, mat, name=f"{prev.name}+{op.name}",
                                    src=prev.src + op.src)
                    continue
        out.append(op)
    return out
