"""The peers qgt is compared with, on the same circuit and threads: Qiskit Aer's
statevector method and a plain numpy state-vector loop (one tensordot per gate).

Called by ``qgt.bench.runner``; each returns wall seconds for final state + shots.
"""

from __future__ import annotations

import time

import numpy as np


def time_aer(qc, shots: int, threads: int) -> float:
    """Aer, statevector method, default fusion, ``threads`` threads; the circuit is
    transpiled to Aer's basis first (not timed), as a user would."""
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="statevector", max_parallel_threads=threads)
    meas = qc.copy()
    if not meas.num_clbits:
        meas.measure_all()
    meas = meas.remove_final_measurements(inplace=False)
    meas.save_statevector()
    meas.measure_all()
    tqc = transpile(meas, sim, optimization_level=0)
    t = time.perf_counter()
    result = sim.run(tqc, shots=shots, seed_simulator=1).result()
    elapsed = time.perf_counter() - t
    if not result.success:
        raise RuntimeError(f"Aer failed: {result.status}")
    return elapsed


def time_numpy(circ, shots: int) -> float:
    """A plain numpy loop over the lowered gates (the 'no cleverness' baseline)."""
    from qgt.ops import Gate, Swap

    n = circ.n_qubits
    t = time.perf_counter()
    psi = np.zeros((2,) * n, dtype=complex)
    psi[(0,) * n] = 1
    for op in circ.ops:
        if isinstance(op, Swap):
            psi = np.swapaxes(psi, n - 1 - op.a, n - 1 - op.b)
            continue
        if not isinstance(op, Gate):
            continue
        qubits = op.targets + op.controls
        k = len(op.targets)
        m = np.diag(op.matrix) if op.diagonal else op.matrix
        full = np.eye(1 << len(qubits), dtype=complex)
        ctrl = sum(v << (k + i) for i, v in enumerate(op.ctrl_values or (1,) * len(op.controls)))
        idx = [ctrl | j for j in range(1 << k)]
        full[np.ix_(idx, idx)] = m
        axes = [n - 1 - q for q in reversed(qubits)]
        g = full.reshape((2,) * (2 * len(qubits)))
        psi = np.tensordot(g, psi, axes=(list(range(len(qubits), 2 * len(qubits))), axes))
        psi = np.moveaxis(psi, list(range(len(qubits))), axes)
    probs = np.abs(psi.reshape(-1)) ** 2
    np.random.default_rng(1).choice(len(probs), size=shots, p=probs / probs.sum())
    return time.perf_counter() - t
