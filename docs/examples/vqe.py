"""Worked example (docs/qiskit.md): a VQE for the ground energy of a 5-qubit transverse-field
Ising chain, on qgt's EstimatorV2 and, unchanged, on Qiskit Aer's.

    python docs/examples/vqe.py                  # one process
    mpiexec -n 2 python docs/examples/vqe.py     # SPMD: every rank runs this script
    python docs/examples/vqe.py --ranks 2        # launcher mode: qgt starts 2 MPI ranks

The energy comes from one PUB per step; its gradient (parameter shift) from one PUB whose
(2P, P) array of shifted parameter values qgt runs on one cached plan.
"""

import argparse
import time

import numpy as np
from qiskit.circuit.library import real_amplitudes
from qiskit.quantum_info import SparsePauliOp
from scipy.optimize import minimize

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--ranks", type=int, default=None,
                    help="launch this many qgt worker ranks (launcher mode)")
args = parser.parse_args()

N, FIELD = 5, 0.8
hamiltonian = SparsePauliOp.from_sparse_list(
    [("ZZ", [i, i + 1], -1.0) for i in range(N - 1)] + [("X", [i], -FIELD) for i in range(N)],
    num_qubits=N)
ansatz = real_amplitudes(N, reps=5, entanglement="linear")
P = ansatz.num_parameters


def vqe(estimator):
    """The same code for any BaseEstimatorV2."""

    def energy(x):
        return float(estimator.run([(ansatz, hamiltonian, x)]).result()[0].data.evs)

    def gradient(x):  # d/dx_k E = (E(x + pi/2 e_k) - E(x - pi/2 e_k)) / 2
        shifts = np.pi / 2 * np.eye(P)
        evs = estimator.run([(ansatz, hamiltonian, np.vstack([x + shifts, x - shifts]))]
                            ).result()[0].data.evs
        return (evs[:P] - evs[P:]) / 2

    return minimize(energy, np.full(P, 0.3), jac=gradient, method="BFGS", options={"gtol": 1e-6})


# ---- qgt: the only lines that differ from the Aer run below ---------------------------
from qgt.qiskit import EstimatorV2, QgtBackend  # noqa: E402

# threads=1: a 5-qubit state is too small to share between threads (Aer, too, only
# parallelises from 14 qubits on); every other setting is qgt's default
backend = QgtBackend(ranks=args.ranks, threads=1) if args.ranks else QgtBackend(threads=1)
estimator = EstimatorV2(backend=backend)
# ---------------------------------------------------------------------------------------
t = time.perf_counter()
ours = vqe(estimator)
t_qgt = time.perf_counter() - t
last = estimator.run([(ansatz, hamiltonian, ours.x)]).result()[0]  # for its metadata

from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2  # noqa: E402

t = time.perf_counter()
theirs = vqe(AerEstimatorV2())
t_aer = time.perf_counter() - t

exact = np.linalg.eigvalsh(hamiltonian.to_matrix())[0]
if backend.session.rank == 0:  # under mpiexec every rank has the same numbers
    cache = last.metadata["plan_cache"]
    print(f"mode {backend.session.mode}, {backend.session.size} rank(s); {P} parameters")
    print(f"exact ground energy   {exact:.10f}")
    print(f"qgt VQE energy        {ours.fun:.10f}  ({ours.nit} iterations, {t_qgt:.1f} s)")
    print(f"Aer VQE energy        {theirs.fun:.10f}  ({theirs.nit} iterations, {t_aer:.1f} s)")
    print(f"|qgt - Aer| energy    {abs(ours.fun - theirs.fun):.1e}, "
          f"parameters {np.abs(ours.x - theirs.x).max():.1e}")
    print(f"plan cache: {cache['planner_calls']} planner call(s), {cache['hits']} hits "
          f"({ours.nfev + 1} energy and {ours.njev} gradient jobs: "
          f"{ours.nfev + 1 + 2 * P * ours.njev} value sets), "
          f"{cache['plan_seconds'] * 1e3:.0f} ms planning, "
          f"{cache['bind_seconds'] * 1e3:.0f} ms rebinding")
backend.close()
