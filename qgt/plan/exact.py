"""The exact minimum of global swaps for a small circuit: an ILP in the style of Atlas
(Xu et al., SC'24), solved with HiGHS through ``scipy.optimize.milp``.

Called by ``qgt plan`` (and the planner tests) to show how far the planner's count is
from the optimum.  The model, for K stages (K - 1 global swaps):

    A[q, k] = 1   qubit q is local during stage k        sum_q A[q, k] = L
    F[i, k] = 1   item i has run by the end of stage k   F[i, k-1] <= F[i, k], F[i, K-1] = 1
    running i in stage k needs its moving qubits local:   F[i, k] - F[i, k-1] <= A[q, k]
    an item runs no earlier than its predecessors:        F[i, k] <= F[j, k]

Diagonal gates and measurements have no moving qubit (they run anywhere) but still
order the gates around them.  The initial layout is free (|0...0> is the same in every
layout) and the final one too (the plan is one that does not restore logical order).
SWAP gates are relabellings: the qubits after them are renamed, which is exact.
The smallest feasible K is found by trying K = 1, 2, ...
"""

from __future__ import annotations

import numpy as np

from qgt.ops import Gate, Measure, Swap

MAX_QUBITS = 16
MAX_ITEMS = 400


def _relabelled(items) -> tuple[list, dict]:
    """(moving qubits, all qubits) per non-SWAP item, SWAPs folded into the names; and
    the final names."""
    name = {}
    out = []
    for it in items:
        if isinstance(it, Swap):
            a, b = name.get(it.a, it.a), name.get(it.b, it.b)
            name[it.a], name[it.b] = b, a
            continue
        qs = (it.qubit,) if isinstance(it, Measure) else it.qubits
        moving = it.moving_targets if isinstance(it, Gate) else ()
        out.append((tuple(name.get(q, q) for q in moving), tuple(name.get(q, q) for q in qs)))
    return out, name


def _feasible(gates, n: int, L: int, K: int, time_limit: float) -> bool | None:
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import lil_matrix

    m = len(gates)
    nv = n * K + m * K
    a = lambda q, k: q * K + k  # noqa: E731
    f = lambda i, k: n * K + i * K + k  # noqa: E731
    rows: list[tuple[dict, float, float]] = []
    for k in range(K):
        rows.append(({a(q, k): 1.0 for q in range(n)}, L, L))
    last: dict[int, int] = {}
    for i, (moving, qs) in enumerate(gates):
        for k in range(K):
            if k:
                rows.append(({f(i, k - 1): 1.0, f(i, k): -1.0}, -np.inf, 0))
            for q in moving:
                row = {f(i, k): 1.0, a(q, k): -1.0}
                if k:
                    row[f(i, k - 1)] = -1.0
                rows.append((row, -np.inf, 0))
        for j in {last[q] for q in qs if q in last}:
            for k in range(K):
                rows.append(({f(i, k): 1.0, f(j, k): -1.0}, -np.inf, 0))
        for q in qs:
            last[q] = i
    mat = lil_matrix((len(rows), nv))
    lo, hi = np.empty(len(rows)), np.empty(len(rows))
    for r, (coef, lb, ub) in enumerate(rows):
        for c, v in coef.items():
            mat[r, c] = v
        lo[r], hi[r] = lb, ub
    lower = np.zeros(nv)
    for i in range(m):
        lower[f(i, K - 1)] = 1  # every item has run by the end
    res = milp(np.zeros(nv), constraints=LinearConstraint(mat.tocsr(), lo, hi),
               integrality=np.ones(nv), bounds=Bounds(lower, np.ones(nv)),
               options={"time_limit": time_limit})
    if res.status == 0:
        return True
    if res.status == 2:  # infeasible
        return False
    return None  # the time limit: unknown


def exact_global_swaps(items, n: int, g: int, upto: int, observables_x=(),
                       time_limit: float = 20.0):
    """The minimum number of global swaps of any schedule of ``items`` (then the X/Y
    qubits of the observables, local together) with ``g`` rank bits, if it is at most
    ``upto``, the instance is small and HiGHS settles it within ``time_limit`` seconds
    in all; otherwise None.  Classical conditions are not modelled, so with mid-circuit
    measurements the figure is a lower bound."""
    import time

    deadline = time.monotonic() + time_limit
    if g == 0:
        return 0
    if n > MAX_QUBITS or len(items) > MAX_ITEMS:
        return None
    gates, name = _relabelled(items)
    if observables_x:
        gates.append((tuple(sorted({name.get(q, q) for q in observables_x})), tuple(range(n))))
    for K in range(1, upto + 2):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ok = _feasible(gates, n, n - g, K, left)
        if ok is None:
            return None
        if ok:
            return K - 1
    return None
