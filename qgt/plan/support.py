"""How sparse a circuit's state can get: an upper bound on its non-zero amplitudes.

Called by ``qgt.api.plan_for`` (rank 0, before choosing the tier) and recorded in the
plan's decisions.  The capacity preflight (``qgt.runtime.capacity``) uses the bound to
size the scratch space and the page index of a sparse out-of-core run, and to refuse a
dense state that no scratch directory can hold (a 60-qubit QFT) before anything is
allocated.  Pure Python, no MPI.

The bound: the state starts as one basis state.  A gate whose matrix has exactly one
non-zero per column (X, CX, SWAP, Toffoli: a permuted, phased identity) and every
diagonal gate keep the number of non-zero amplitudes; any other gate on k moving
qubits multiplies it by at most 2^k; a measurement or reset never increases it.  So
a GHZ state has at most 2 non-zero amplitudes, whatever n.
"""

from __future__ import annotations

from qgt.ops import Circuit, Gate
from qgt.plan.matrices import classify
from qgt.plan.paulis import parse_pauli


def support_log2(circ: Circuit) -> int:
    """log2 of an upper bound on the non-zero amplitudes of any state the circuit
    reaches (at most n)."""
    bits = 0
    for op in circ.ops:
        if isinstance(op, Gate) and not op.diagonal and not classify(op.matrix).monomial:
            bits += len(op.moving_targets)
            if bits >= circ.n_qubits:
                return circ.n_qubits
    return bits


def widest(circ: Circuit, observables=()) -> int:
    """The most moving qubits of one gate or observable (what a page group must hold
    beyond its in-page bits)."""
    w = [len(op.moving_targets) for op in circ.ops if isinstance(op, Gate)]
    w += [len(parse_pauli(o, circ.n_qubits)[0]) for o in observables]
    return max(w + [1])
