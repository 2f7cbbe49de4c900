"""Built-in circuit generators (``qft:N``, ``ghz:N``, ``qpe:N``, ...) as qiskit circuits.

Called by ``qgt.frontend.load`` when a circuit spec names a built-in, and by tests and the
benchmark directly.  Arguments are already parsed and range-checked by the caller; these
functions only build circuits.  Every generator is deterministic for a given argument list.

Bit order is Qiskit's throughout (qubit 0 is the least significant bit).
"""

from __future__ import annotations

import math

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit.random import random_circuit

# Default eigenphase of the QPE built-in, as a fraction of a turn: not dyadic, so the
# counting register ends in a spread distribution peaked at round(0.1234 * 2^t), as in real use.
QPE_PHASE = 0.1234
TROTTER_DT = 0.1
RANDOM_SEED = 0
QAOA_SEED = 0


def qft(n: int, *, inverse: bool = False, swaps: bool = True) -> QuantumCircuit:
    """The quantum Fourier transform on ``n`` qubits, equal to ``qiskit.circuit.library.QFTGate``.

    Built from h and cp by hand rather than taken from the library so that every cp stays a
    native diagonal gate (the library synthesises it differently between Qiskit versions).
    """
    qc = QuantumCircuit(n, name=f"{'i' if inverse else ''}qft{n}")
    # most significant qubit first; the final swaps reverse the output order
    for j in reversed(range(n)):
        qc.h(j)
        for k in reversed(range(j)):
            qc.cp(math.pi / 2 ** (j - k), k, j)
    if swaps:
        for i in range(n // 2):
            qc.swap(i, n - 1 - i)
    return qc.inverse() if inverse else qc


def ghz(n: int, *, measure: bool = True) -> QuantumCircuit:
    """(|0...0> + |1...1>)/sqrt(2) on ``n`` qubits: h then a cx chain, measured by default."""
    qc = QuantumCircuit(n, name=f"ghz{n}")
    qc.h(0)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    if measure:
        qc.measure_all()
    return qc


def random_gates(
    n: int, depth: int, seed: int = RANDOM_SEED, *, measure: bool = True
) -> QuantumCircuit:
    """Qiskit's ``random_circuit`` (gates of 1 to 3 qubits), measured at the end by default."""
    qc = random_circuit(n, depth, seed=seed, measure=False)
    qc.name = f"random{n}x{depth}s{seed}"
    if measure:
        qc.measure_all()
    return qc


def qpe(n: int, phase: float = QPE_PHASE, *, measure: bool = True) -> QuantumCircuit:
    """Textbook phase estimation of U = p(2*pi*phase) on n-1 counting qubits.

    Qubits 0..n-2 count, qubit n-1 holds the eigenstate |1> of U.  Counting qubit j controls
    U^(2^j); after the inverse QFT the counting register reads about round(phase * 2^(n-1)).
    """
    t = n - 1
    count = QuantumRegister(t, "count")
    eigen = QuantumRegister(1, "eigen")
    qc = QuantumCircuit(count, eigen, name=f"qpe{n}")
    qc.x(eigen[0])
    qc.h(count)
    for j in range(t):
        # phase * 2^j is exact in binary floating point and so is its remainder mod 1: the
        # angle stays accurate for 40+ counting qubits, where 2*pi*phase*2^j would not.
        turns = math.fmod(phase * 2.0**j, 1.0)
        qc.cp(2 * math.pi * turns, count[j], eigen[0])
    qc.compose(qft(t, inverse=True), qubits=count, inplace=True)
    if measure:
        creg = ClassicalRegister(t, "c")
        qc.add_register(creg)
        qc.measure(count, creg)
    return qc


def trotter(n: int, steps: int, dt: float = TROTTER_DT) -> QuantumCircuit:
    """First-order Trotter evolution of the open transverse-field Ising chain from |0...0>.

    H = -J sum_i Z_i Z_{i+1} - h sum_i X_i with J = h = 1, for ``steps`` steps of ``dt``:
    exp(-i H dt) ~ prod exp(+i J dt ZZ) prod exp(+i h dt X), and rzz(a) = exp(-i a/2 ZZ),
    rx(a) = exp(-i a/2 X), hence the angles -2 J dt and -2 h dt.
    """
    coupling, field = 1.0, 1.0
    qc = QuantumCircuit(n, name=f"tfim{n}x{steps}")
    for _ in range(steps):
        for i in range(n - 1):
            qc.rzz(-2 * coupling * dt, i, i + 1)
        for i in range(n):
            qc.rx(-2 * field * dt, i)
    return qc


def qaoa(n: int, layers: int, seed: int = QAOA_SEED) -> QuantumCircuit:
    """MaxCut-style QAOA on a ring of ``n`` qubits with random angles from ``seed``.

    h on every qubit, then per layer an rzz(2*gamma) on every ring edge and an rx(2*beta)
    mixer on every qubit; gamma and beta are drawn uniformly from [0, pi).
    """
    rng = np.random.default_rng(seed)
    if n >= 3:
        edges = [(i, (i + 1) % n) for i in range(n)]
    elif n == 2:
        edges = [(0, 1)]  # a ring of two would put the same edge in twice
    else:
        edges = []
    qc = QuantumCircuit(n, name=f"qaoa{n}x{layers}")
    qc.h(range(n))
    for _ in range(layers):
        gamma, beta = rng.uniform(0, math.pi, size=2)
        for a, b in edges:
            qc.rzz(2 * gamma, a, b)
        qc.rx(2 * beta, range(n))
    return qc
