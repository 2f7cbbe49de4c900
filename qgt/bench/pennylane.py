"""``qgt bench --pennylane``: qgt.qubit against lightning.qubit, same threads, one run.

Each measurement runs in its own process (``python -m qgt.bench.pennylane CASE DEVICE``),
so peak resident memory is the device's own; the parent prints the figures side by side
and the lightning/qgt ratios, after checking that the two agree.

- ``gradient``: the adjoint gradient of a hardware-efficient circuit (``--pl-qubits``
  qubits, ``--pl-layers`` layers of RY on every wire then a CNOT chain: one parameter per
  wire per layer) for a ``--pl-terms``-term Pauli Hamiltonian.  Time of one
  ``qml.jacobian`` after a warm-up evaluation, and peak RSS.
- ``classifier``: the classifier of docs/pennylane.md (docs/pennylane_classifier.py's
  model), trained for 5 epochs of Adam with adjoint gradients: circuits per second and the
  total training time.
- ``ooc``: the adjoint gradient of a ``--ooc-qubits``-qubit circuit on qgt's SSD tier with
  a ``--ooc-memory`` limit (Lightning cannot hold it with its copies): time, bytes read and
  written, and passes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

CASES = ("gradient", "classifier")


def add_arguments(g) -> None:
    g.add_argument("--pl-qubits", type=int, default=24)
    g.add_argument("--pl-layers", type=int, default=6)
    g.add_argument("--pl-terms", type=int, default=50)
    g.add_argument("--pl-only", choices=CASES + ("ooc",), help="run one case")
    g.add_argument("--ooc-qubits", type=int, default=30)
    g.add_argument("--ooc-memory", default="4GiB")
    g.add_argument("--pl-repeat", type=int, default=3,
                   help="classifier: this many qgt/lightning pairs, alternating, each in "
                        "its own process; the median pair ratio is reported (default 3)")


# ---- the workloads (run inside the measuring process) -------------------------------
def hamiltonian(n: int, terms: int, seed: int = 11):
    """``terms`` distinct Pauli words of weight 1-4 on random wires, random coefficients."""
    import pennylane as qml

    rng = np.random.default_rng(seed)
    ops, seen = [], set()
    paulis = {"X": qml.X, "Y": qml.Y, "Z": qml.Z}
    while len(ops) < terms:
        wires = tuple(sorted(rng.choice(n, size=int(rng.integers(1, 5)), replace=False)))
        word = tuple(rng.choice(list(paulis)) for _ in wires)
        if (wires, word) in seen:
            continue
        seen.add((wires, word))
        ops.append(qml.prod(*[paulis[p](int(w)) for p, w in zip(word, wires)]))
    return qml.Hamiltonian(rng.normal(size=terms), ops)


def hea(weights, n: int) -> None:
    import pennylane as qml

    for layer in range(weights.shape[0]):
        for w in range(n):
            qml.RY(weights[layer, w], wires=w)
        for w in range(n - 1):
            qml.CNOT(wires=[w, w + 1])


def _device(name: str, wires: int, threads: int, **kw):
    import pennylane as qml

    if name == "qgt.qubit":
        return qml.device(name, wires=wires, threads=threads, **kw)
    return qml.device(name, wires=wires)


def _gradient(device: str, n: int, layers: int, terms: int, threads: int, **kw) -> dict:
    import pennylane as qml
    from pennylane import numpy as pnp

    H = hamiltonian(n, terms)
    dev = _device(device, n, threads, **kw)

    @qml.qnode(dev, diff_method="adjoint")
    def energy(weights):
        qml.Hadamard(0)
        hea(weights, n)
        return qml.expval(H)

    rng = np.random.default_rng(5)
    weights = pnp.array(rng.uniform(-np.pi, np.pi, size=(layers, n)), requires_grad=True)
    t = time.perf_counter()  # a plain evaluation first (imports, plan, allocation)
    value = float(energy(pnp.array(weights, requires_grad=False)))
    forward = time.perf_counter() - t
    t = time.perf_counter()
    with qml.Tracker(dev) as tracker:
        grad = qml.jacobian(energy)(weights)
    seconds = time.perf_counter() - t
    out = {"value": value, "grad": np.asarray(grad).ravel().tolist(), "seconds": seconds,
           "forward_seconds": forward}
    for key in ("passes", "bytes_read", "bytes_written"):  # qgt.qubit's tracker figures
        if key in tracker.totals:
            out[key] = tracker.totals[key]
    return out


def _classifier(device: str, threads: int) -> dict:
    """docs/pennylane_classifier.py's ``train`` (the docs' example, run as written)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "pennylane_classifier.py"
    if not path.is_file():
        raise RuntimeError(f"the classifier case runs {path}: use a source checkout")
    spec = importlib.util.spec_from_file_location("pennylane_classifier", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.train(device, quiet=True, **({"threads": threads}
                                                if device == "qgt.qubit" else {}))
    out["circuits_per_s"] = out["circuits"] / out["seconds"]
    return out


def _ooc(n: int, layers: int, memory: str, threads: int) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="qgt-bench-ooc-", dir=os.environ.get(
            "QGT_SCRATCH_DIR") or None) as tmp:
        out = _gradient("qgt.qubit", n, layers, 8, threads, memory_limit=memory,
                        storage="ssd", scratch_dir=tmp)
    return out


def _measure(case: str, device: str, args: dict) -> dict:
    threads = args["threads"]
    if case == "gradient":
        out = _gradient(device, args["qubits"], args["layers"], args["terms"], threads)
    elif case == "classifier":
        out = _classifier(device, threads)
    else:
        out = _ooc(args["qubits"], args["layers"], args["memory"], threads)
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


# ---- the parent: one process per measurement ----------------------------------------
def _spawn(case: str, device: str, params: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(params["threads"])}
    proc = subprocess.run([sys.executable, "-m", "qgt.bench.pennylane", case, device,
                           json.dumps(params)], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{case} on {device} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def run_pennylane_bench(args) -> int:
    threads = args.threads or len(os.sched_getaffinity(0))
    rows: dict = {}
    print(f"qgt bench --pennylane: {threads} threads for qgt.qubit and lightning.qubit",
          flush=True)
    if args.pl_only in (None, "gradient"):
        p = {"threads": threads, "qubits": args.pl_qubits, "layers": args.pl_layers,
             "terms": args.pl_terms}
        r = {d: _spawn("gradient", d, p) for d in ("qgt.qubit", "lightning.qubit")}
        err = float(np.max(np.abs(np.subtract(r["qgt.qubit"]["grad"],
                                              r["lightning.qubit"]["grad"]))))
        if err > 1e-8:
            raise RuntimeError(f"qgt and lightning gradients differ by {err}")
        q, lt = r["qgt.qubit"], r["lightning.qubit"]
        rows["gradient"] = {**p, "qgt": q, "lightning": lt, "max_abs_diff": err,
                            "ratio": lt["seconds"] / q["seconds"],
                            "memory_ratio": q["peak_rss"] / lt["peak_rss"]}
        print(f"adjoint gradient  {args.pl_qubits} qubits, {args.pl_layers * args.pl_qubits}"
              f" parameters, {args.pl_terms}-term Hamiltonian: qgt {q['seconds']:.2f} s "
              f"(peak RSS {_gib(q['peak_rss'])}), lightning {lt['seconds']:.2f} s "
              f"({_gib(lt['peak_rss'])}); lightning/qgt {rows['gradient']['ratio']:.2f}x, "
              f"memory qgt/lightning {rows['gradient']['memory_ratio']:.2f}, max |diff| "
              f"{err:.1e}", flush=True)
    if args.pl_only in (None, "classifier"):
        p = {"threads": threads}
        pairs = []
        for _ in range(max(1, args.pl_repeat)):  # alternating: a noisy spell hits both
            r = {d: _spawn("classifier", d, p) for d in ("qgt.qubit", "lightning.qubit")}
            gap = float(np.max(np.abs(np.subtract(r["qgt.qubit"]["losses"],
                                                  r["lightning.qubit"]["losses"]))))
            if gap > 1e-6:
                raise RuntimeError(f"qgt and lightning training losses differ by {gap}")
            pairs.append(r)
        ratios = [r["qgt.qubit"]["circuits_per_s"] / r["lightning.qubit"]["circuits_per_s"]
                  for r in pairs]
        mid = pairs[int(np.argsort(ratios)[len(ratios) // 2])]
        q, lt = mid["qgt.qubit"], mid["lightning.qubit"]
        rows["classifier"] = {"qgt": q, "lightning": lt, "ratio": float(np.median(ratios)),
                              "ratios": ratios}
        print(f"classifier  12 qubits, 72 weights, 10 inputs, 5 epochs (median of "
              f"{len(pairs)} pairs): qgt {q['seconds']:.2f} s ({q['circuits_per_s']:.0f} "
              f"circuits/s), lightning {lt['seconds']:.2f} s ({lt['circuits_per_s']:.0f} "
              f"circuits/s); qgt/lightning circuits/s {rows['classifier']['ratio']:.2f}x "
              f"(pairs: {', '.join(f'{x:.2f}' for x in ratios)})", flush=True)
    if args.pl_only == "ooc":
        p = {"threads": threads, "qubits": args.ooc_qubits, "layers": 2,
             "memory": args.ooc_memory}
        q = rows["ooc"] = _spawn("ooc", "qgt.qubit", p)
        print(f"out of core  {args.ooc_qubits} qubits, memory_limit {args.ooc_memory}, "
              f"{2 * args.ooc_qubits} parameters: {q['seconds']:.1f} s, peak RSS "
              f"{_gib(q['peak_rss'])}, read {_gib(q.get('bytes_read', 0))}, written "
              f"{_gib(q.get('bytes_written', 0))}, passes {q.get('passes', '?')}", flush=True)
    if args.output:
        with open(args.output, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))
