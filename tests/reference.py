"""A deliberately simple dense simulator of ``qgt.ops.Circuit``, the yardstick for tests.

Called by the tests (``from reference import simulate_reference``).  It is meant to be
obviously correct, not fast: the whole 2^n state is one numpy array (n <= 14), every
operation is applied on its own in program order, nothing is fused or reordered.

The state is held as an n-dimensional (2, 2, ..., 2) tensor in C order, so qubit q (bit q
of the index, Qiskit's order) is axis n-1-q.
"""

from __future__ import annotations

import numpy as np

from qgt.ops import Circuit, Gate, Measure, Reset, Swap

MAX_QUBITS = 14


def simulate_reference(circ: Circuit, rng=None) -> tuple[np.ndarray, int]:
    """Run ``circ`` from |0...0>; return (final state, classical bits as an int, clbit c =
    bit c).  Measure and Reset draw from ``rng`` (a numpy Generator or a seed)."""
    n = circ.n_qubits
    if n > MAX_QUBITS:
        raise ValueError(f"reference simulator is limited to {MAX_QUBITS} qubits, got {n}")
    rng = np.random.default_rng(rng)
    psi = np.zeros((2,) * n, dtype=complex)
    psi[(0,) * n] = 1.0
    clbits = 0
    for op in circ.ops:
        cond = getattr(op, "condition", None)
        if cond is not None and not _holds(cond, clbits):
            continue
        if isinstance(op, Gate):
            psi = _apply_gate(psi, op)
        elif isinstance(op, Swap):
            psi = np.swapaxes(psi, _axis(n, op.a), _axis(n, op.b))
        elif isinstance(op, Measure):
            outcome, psi = _measure(psi, op.qubit, rng)
            clbits = (clbits & ~(1 << op.clbit)) | (outcome << op.clbit)
        elif isinstance(op, Reset):
            outcome, psi = _measure(psi, op.qubit, rng)
            if outcome:
                psi = np.flip(psi, axis=_axis(n, op.qubit))
        else:
            raise TypeError(f"reference simulator does not know {op!r}")
    state = psi.reshape(-1) * np.exp(1j * circ.global_phase)
    return state, clbits


def _axis(n: int, qubit: int) -> int:
    return n - 1 - qubit


def _holds(cond, clbits: int) -> bool:
    got = sum(((clbits >> c) & 1) << i for i, c in enumerate(cond.clbits))
    return got == cond.value


def _apply_gate(psi: np.ndarray, g: Gate) -> np.ndarray:
    n = psi.ndim
    k = len(g.targets)
    matrix = np.diag(g.matrix) if g.diagonal else np.asarray(g.matrix)
    # matrix index has targets[0] as its least significant bit, so in C order its axes
    # run targets[k-1] ... targets[0], outputs first and then inputs
    tensor = matrix.reshape((2,) * (2 * k))
    axes = [_axis(n, t) for t in reversed(g.targets)]
    out = np.tensordot(tensor, psi, axes=(list(range(k, 2 * k)), axes))
    out = np.moveaxis(out, list(range(k)), axes)
    if not g.controls:
        return out
    # controls: keep the new amplitudes only where every control reads its control value
    mask = np.ones(psi.shape, dtype=bool)
    for c, v in zip(g.controls, g.ctrl_values, strict=True):
        index = [slice(None)] * n
        index[_axis(n, c)] = 1 - v
        mask[tuple(index)] = False
    return np.where(mask, out, psi)


def _measure(psi: np.ndarray, qubit: int, rng) -> tuple[int, np.ndarray]:
    axis = _axis(psi.ndim, qubit)
    p1 = float(np.sum(np.abs(np.take(psi, 1, axis=axis)) ** 2))
    outcome = int(rng.random() < p1)
    psi = psi.copy()
    index = [slice(None)] * psi.ndim
    index[axis] = 1 - outcome
    psi[tuple(index)] = 0.0
    psi /= np.sqrt(p1 if outcome else 1.0 - p1)
    return outcome, psi
