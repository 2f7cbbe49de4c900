"""Rebinding a plan: new matrices for some plan items, the same schedule.

Called by the session's plan cache (``qgt.session.cache``) when a parameterised circuit
is run with new parameter values.  The schedule (sweeps, global swaps, working sets,
fusion groups) depends only on the circuit's structure, so only the ops whose ``src``
names a changed item are rebuilt:

    item 7 (ry(theta) on q3) --+
                               +--> fused op "ry+ry" on (p2, p5) = M(item 9) @ M(item 7)
    item 9 (ry(phi) on q6) ----+

    new theta: rebuild that fused op from its sources; every other op keeps its matrix.

Out of core, each outer sweep's inner plan holds one inner op per outer op (no fusion
there); an inner op's ``src`` is the index of its outer op in the sweep, so it takes the
rebuilt outer matrix.  Pure Python, no MPI: every rank rebinds its own copy.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qgt.plan.fusion import compose
from qgt.plan.steps import DENSE, PhysOp, Plan, Sweep


def _with_matrix(op: PhysOp, m) -> PhysOp:
    """``op`` with another matrix (dataclasses.replace, without its per-call field scan:
    rebinding makes one per parametric op and binding)."""
    return PhysOp(op.kind, op.targets, m, op.ctrl_mask, op.ctrl_val, op.condition, op.name,
                  op.src)


def _rebuilt(op: PhysOp, matrices: dict[int, np.ndarray]) -> PhysOp:
    if not any(i in matrices for i, _ in op.src):
        return op
    if len(op.src) == 1:
        (i, _), = op.src
        m = matrices[i]
        if op.kind == DENSE and m.ndim == 1:  # a value made the gate diagonal: keep its slot
            m = np.diag(m)
        return _with_matrix(op, m)
    if op.ctrl_mask:
        raise ValueError(f"op {op.name} has several sources but is not a fused block")
    lost = [i for i, _ in op.src if i not in matrices]
    if lost:
        raise ValueError(f"fused op {op.name} lost the matrix of item {lost[0]}")
    m = compose(op.kind, [(matrices[i], own) for i, own in op.src], op.targets)
    return _with_matrix(op, m)


def _inner(step: Sweep, outer: tuple[PhysOp, ...], changed: set[int]) -> Sweep:
    ops = tuple(_with_matrix(op, outer[op.src[0][0]].matrix)
                if op.src and op.src[0][0] in changed else op for op in step.ops)
    return dataclasses.replace(step, ops=ops)


def rebind(plan: Plan, matrices: dict[int, np.ndarray]) -> Plan:
    """A copy of ``plan`` whose ops built from the items in ``matrices`` (item index ->
    new matrix: dense 2^k x 2^k, or a diagonal) carry the new values.  ``matrices`` must
    hold every item that every fused op with a changed source was built from."""
    steps = []
    for s in plan.steps:
        if isinstance(s, Sweep) and any(i in matrices for op in s.ops for i, _ in op.src):
            ops = tuple(_rebuilt(op, matrices) for op in s.ops)
            changed = {j for j, (a, b) in enumerate(zip(s.ops, ops)) if a is not b}
            inner = tuple(_inner(i, ops, changed) for i in s.inner)
            s = dataclasses.replace(s, ops=ops, inner=inner)
        steps.append(s)
    return dataclasses.replace(plan, steps=steps)


def fused_sources(plan: Plan) -> set[int]:
    """Every item that shares a fused op with another item (rebinding one of them needs
    the matrices of all of them)."""
    out: set[int] = set()
    for s in plan.steps:
        if isinstance(s, Sweep):
            for op in s.ops:
                if len(op.src) > 1:
                    out.update(i for i, _ in op.src)
    return out
