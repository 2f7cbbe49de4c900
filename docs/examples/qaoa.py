"""Worked example (docs/qiskit.md): QAOA (p = 2) for MaxCut on the 8-node Moebius ladder,
on qgt's EstimatorV2 and QgtBackend and, unchanged, on Qiskit Aer's.

    python docs/examples/qaoa.py                  # one process
    mpiexec -n 2 python docs/examples/qaoa.py     # SPMD: every rank runs this script
    python docs/examples/qaoa.py --ranks 2        # launcher mode: qgt starts 2 MPI ranks

The angles are optimised on exact expectation values (EstimatorV2, precision 0); the
final circuit then runs on the backend with ``save_statevector`` (exact probabilities)
and 2000 seeded shots (counts).
"""

import argparse
import itertools
import time

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp
from scipy.optimize import minimize

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--ranks", type=int, default=None,
                    help="launch this many qgt worker ranks (launcher mode)")
args = parser.parse_args()

N, LAYERS = 8, 2
EDGES = [(i, (i + 1) % N) for i in range(N)] + [(i, i + N // 2) for i in range(N // 2)]
# cut(z) = sum_(ij) (1 - Z_i Z_j) / 2, so maximising the cut minimises H = sum Z_i Z_j / 2
cost = SparsePauliOp.from_sparse_list([("ZZ", [i, j], 0.5) for i, j in EDGES], num_qubits=N)
gamma, beta = ParameterVector("gamma", LAYERS), ParameterVector("beta", LAYERS)
ansatz = QuantumCircuit(N, name="qaoa")
ansatz.h(range(N))
for layer in range(LAYERS):
    for i, j in EDGES:
        ansatz.rzz(2 * gamma[layer], i, j)
    ansatz.rx(2 * beta[layer], range(N))


def cut(bits: str) -> int:  # bits as qiskit prints them: qubit 0 is the rightmost
    return sum(bits[N - 1 - i] != bits[N - 1 - j] for i, j in EDGES)


best = max(cut("".join(b)) for b in itertools.product("01", repeat=N))


def qaoa(estimator, backend):
    """The same code for any BaseEstimatorV2 and BackendV2."""
    res = minimize(lambda x: float(estimator.run([(ansatz, cost, x)]).result()[0].data.evs),
                   np.array([0.4, 0.8, 0.6, 0.3]), method="COBYLA",
                   options={"rhobeg": 0.2, "tol": 1e-6, "maxiter": 1000})
    qc = ansatz.assign_parameters(res.x)
    qc.save_statevector()  # the final state, before the measurements
    qc.measure_all()
    result = backend.run(transpile(qc, backend), shots=2000, seed_simulator=7).result()
    return res, result


# ---- qgt: the only lines that differ from the Aer run below ---------------------------
from qgt.qiskit import EstimatorV2, QgtBackend  # noqa: E402

# threads=1: an 8-qubit state is too small to share between threads
backend = QgtBackend(ranks=args.ranks, threads=1) if args.ranks else QgtBackend(threads=1)
estimator = EstimatorV2(backend=backend)
# ---------------------------------------------------------------------------------------
t = time.perf_counter()
ours, our_result = qaoa(estimator, backend)
t_qgt = time.perf_counter() - t

from qiskit_aer import AerSimulator  # noqa: E402
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2  # noqa: E402

t = time.perf_counter()
theirs, their_result = qaoa(AerEstimatorV2(), AerSimulator())
t_aer = time.perf_counter() - t

same = estimator.run([(ansatz, cost, theirs.x)]).result()[0]  # qgt at Aer's optimum
if backend.session.rank == 0:  # under mpiexec every rank has the same numbers
    state, ref = our_result.get_statevector(), their_result.get_statevector()
    probs = state.probabilities_dict()
    p_best = sum(p for bits, p in probs.items() if cut(bits) == best)
    counts = our_result.get_counts()
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:4]
    meta = our_result.results[0].metadata
    print(f"mode {backend.session.mode}, {backend.session.size} rank(s); "
          f"{len(EDGES)} edges, maximum cut {best}")
    print(f"qgt expected cut {len(EDGES) / 2 - ours.fun:.8f}  ({ours.nfev} evaluations, "
          f"{t_qgt:.1f} s)")
    print(f"Aer expected cut {len(EDGES) / 2 - theirs.fun:.8f}  ({theirs.nfev} evaluations, "
          f"{t_aer:.1f} s)")
    print(f"|qgt - Aer| angles {np.abs(ours.x - theirs.x).max():.1e}, final states "
          f"{np.abs(state.data - ref.data).max():.1e} (COBYLA's tolerance); at Aer's angles "
          f"the energies differ by {abs(float(same.data.evs) - theirs.fun):.0e}")
    print(f"P(maximum cut) = {p_best:.4f}; top counts of 2000 shots: "
          + ", ".join(f"{b} (cut {cut(b)}) x{c}" for b, c in top))
    their_top = sorted(their_result.get_counts().items(), key=lambda kv: -kv[1])[:4]
    print("Aer's top counts:           " + ", ".join(f"{b} (cut {cut(b)}) x{c}"
                                                    for b, c in their_top))
    print(f"plan cache after the run: {meta['plan_cache']['planner_calls']} planner "
          f"call(s), {meta['plan_cache']['hits']} hits")
backend.close()
