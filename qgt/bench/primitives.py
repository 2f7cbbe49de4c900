"""``qgt bench --primitives``: qgt's Qiskit primitives against Aer's, same threads, one run.

- VQE: a hardware-efficient ansatz (RY layers and CZ chains, ``--reps``) on ``--vqe-qubits``
  qubits, a ``--terms``-term Pauli Hamiltonian, ``--evaluations`` EstimatorV2 calls of one
  parameter set each (an optimiser's loop).  Also the share of qgt's wall time spent
  outside the kernels and MPI (planning, binding, Python).
- Sampler: a parameterised QAOA ring on ``--sampler-qubits`` qubits, ``--sets`` parameter
  sets in one PUB, ``--shots`` each.

Both check that qgt and Aer agree (exact values to 1e-8; sampled QAOA energies within
sampling error) before printing times and the Aer/qgt ratio.
"""

from __future__ import annotations

import time

import numpy as np


def add_arguments(g) -> None:
    g.add_argument("--vqe-qubits", type=int, default=20)
    g.add_argument("--reps", type=int, default=4)
    g.add_argument("--terms", type=int, default=200)
    g.add_argument("--evaluations", type=int, default=100)
    g.add_argument("--sampler-qubits", type=int, default=26)
    g.add_argument("--sets", type=int, default=50)
    g.add_argument("--only", choices=("vqe", "sampler"), help="run one of the two")


def hamiltonian(n: int, terms: int, seed: int = 7):
    """Local terms on a ring (XX, YY, ZZ; next-nearest; fields; 3- and 4-body), as in
    spin-model and molecular Hamiltonians: many terms, far fewer X/Y patterns."""
    from qiskit.quantum_info import SparsePauliOp

    rng = np.random.default_rng(seed)
    shapes = [("ZZ", 1), ("XX", 1), ("YY", 1), ("Z", 0), ("X", 0), ("ZZ", 2), ("XX", 2),
              ("YY", 2), ("ZZZZ", 1), ("XZX", 1), ("ZXXZ", 1), ("YZY", 1)]
    labels: list[str] = []
    k = 0
    while len(labels) < terms:
        paulis, stride = shapes[(k // n) % len(shapes)]
        i = k % n
        chars = ["I"] * n
        for j, p in enumerate(paulis):
            chars[n - 1 - (i + j * max(1, stride)) % n] = p
        lab = "".join(chars)
        if lab not in labels:
            labels.append(lab)
        k += 1
    return SparsePauliOp(labels, rng.normal(size=terms))


def ansatz(n: int, reps: int):
    from qiskit.circuit.library import n_local

    return n_local(n, "ry", "cz", entanglement="linear", reps=reps)


def qaoa(n: int, layers: int = 2):
    """MaxCut QAOA on a ring: H layer, then per layer rzz(2 gamma) on every edge and
    rx(2 beta) on every qubit; parameters gamma_l, beta_l."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.quantum_info import SparsePauliOp

    edges = [(i, (i + 1) % n) for i in range(n)]
    cost = SparsePauliOp(["".join("Z" if q in e else "I" for q in reversed(range(n)))
                          for e in edges])
    gamma, beta = ParameterVector("gamma", layers), ParameterVector("beta", layers)
    qc = QuantumCircuit(n, name=f"qaoa{n}")
    qc.h(range(n))
    for layer in range(layers):
        for a, b in edges:
            qc.rzz(2 * gamma[layer], a, b)
        for q in range(n):
            qc.rx(2 * beta[layer], q)
    qc.measure_all()
    return qc, cost


def _vqe(args, threads: int) -> dict:
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    from qgt.qiskit import EstimatorV2

    qc, H = ansatz(args.vqe_qubits, args.reps), hamiltonian(args.vqe_qubits, args.terms)
    rng = np.random.default_rng(1)
    points = rng.uniform(-np.pi, np.pi, size=(args.evaluations, qc.num_parameters))
    ours = EstimatorV2(threads=threads)
    aer = AerEstimator(options={"backend_options": {"max_parallel_threads": threads}})
    out = {}
    for name, est in (("qgt", ours), ("aer", aer)):
        t = time.perf_counter()
        vals, inside = [], 0.0
        for v in points:
            res = est.run([(qc, H, v)]).result()[0]
            vals.append(float(res.data.evs))
            tm = res.metadata.get("timings", {})
            inside += sum(tm.get(k, 0.0) for k in ("compute", "communication", "reductions"))
        out[name] = {"seconds": time.perf_counter() - t, "evs": vals, "kernel_seconds": inside}
    err = float(np.max(np.abs(np.array(out["qgt"]["evs"]) - np.array(out["aer"]["evs"]))))
    if err > 1e-8:
        raise RuntimeError(f"qgt and Aer disagree on the VQE energies by {err}")
    q = out["qgt"]
    return {"qgt_s": q["seconds"], "aer_s": out["aer"]["seconds"],
            "ratio": out["aer"]["seconds"] / q["seconds"], "max_abs_diff": err,
            "overhead_share": 1 - q["kernel_seconds"] / q["seconds"],
            "per_eval_ms": 1000 * q["seconds"] / len(points),
            "patterns": len({str(p).replace("Z", "I").replace("Y", "X") for p in H.paulis})}


def _sampler(args, threads: int) -> dict:
    from qiskit_aer.primitives import SamplerV2 as AerSampler

    from qgt.qiskit import SamplerV2

    qc, cost = qaoa(args.sampler_qubits)
    rng = np.random.default_rng(2)
    sets = rng.uniform(0, np.pi, size=(args.sets, qc.num_parameters))
    out = {}
    for name, s in (("qgt", SamplerV2(seed=1, threads=threads)),
                    ("aer", AerSampler(seed=1, options={"backend_options":
                                                        {"max_parallel_threads": threads}}))):
        t = time.perf_counter()
        res = s.run([(qc, sets)], shots=args.shots).result()[0]
        out[name] = {"seconds": time.perf_counter() - t, "bits": res.data.meas}
    energy = {}
    for name in out:  # the QAOA cost from the samples: agrees within sampling error
        ba = out[name]["bits"]
        energy[name] = np.array([ba[i].expectation_values(cost) for i in range(args.sets)])
    gap = float(np.max(np.abs(energy["qgt"] - energy["aer"])))
    bound = 8 * args.sampler_qubits / np.sqrt(args.shots)
    if gap > bound:
        raise RuntimeError(f"qgt and Aer QAOA energies differ by {gap} (> {bound})")
    return {"qgt_s": out["qgt"]["seconds"], "aer_s": out["aer"]["seconds"],
            "ratio": out["aer"]["seconds"] / out["qgt"]["seconds"], "max_energy_gap": gap}


def run_primitives_bench(args) -> int:
    import json
    import os

    threads = args.threads or len(os.sched_getaffinity(0))
    rows = {}
    print(f"qgt bench --primitives: {threads} threads for qgt and Aer", flush=True)
    if args.only != "sampler":
        _print_vqe(args, rows.setdefault("vqe", _vqe(args, threads)))
    if args.only != "vqe":
        _print_sampler(args, rows.setdefault("sampler", _sampler(args, threads)))
    if args.output:
        with open(args.output, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


def _print_vqe(args, v: dict) -> None:
    print(f"VQE  {args.vqe_qubits} qubits, {args.reps} reps, {args.terms} terms "
          f"({v['patterns']} X/Y patterns), {args.evaluations} EstimatorV2 calls: qgt "
          f"{v['qgt_s']:.2f} s ({v['per_eval_ms']:.1f} ms/eval, "
          f"{100 * v['overhead_share']:.1f} % outside kernels), Aer {v['aer_s']:.2f} s, "
          f"Aer/qgt {v['ratio']:.2f}x", flush=True)


def _print_sampler(args, s: dict) -> None:
    print(f"Sampler QAOA {args.sampler_qubits} qubits, {args.sets} sets x {args.shots} shots "
          f"in one PUB: qgt {s['qgt_s']:.2f} s, Aer {s['aer_s']:.2f} s, "
          f"Aer/qgt {s['ratio']:.2f}x", flush=True)
