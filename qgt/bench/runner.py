"""Run the suite: qgt as a real ``mpiexec`` job per circuit (its own timings, without
interpreter start-up), then Aer and numpy in this process, and print times and ratios.

Numbers from shared machines are noisy: always compare ratios from one run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from qgt.bench.peers import time_aer, time_numpy
from qgt.bench.suite import suite_specs
from qgt.errors import UserError

NUMPY_MAX_QUBITS = 22  # above this the per-gate numpy loop takes minutes per circuit


def _time_qgt(spec: str, ranks: int, threads: int, shots: int, env_extra=None) -> dict:
    binary = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        env = dict(os.environ, **(env_extra or {}))
        if threads:
            env["QGT_THREADS"] = str(max(1, threads // ranks))
        cmd = [str(binary / "mpiexec"), "-n", str(ranks), str(binary / "qgt"), "run", spec,
               "--shots", str(shots), "--seed", "1", "--output", str(out), "--quiet"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
        if p.returncode != 0:
            raise UserError(f"qgt failed on {spec}: {p.stderr.strip()[-2000:]}")
        res = json.loads(out.read_text())
    t = res["timings"]
    return {"seconds": t["plan"] + t["run"], "plan": res["plan"], "timings": t,
            "peak_memory_per_rank": res["peak_memory_per_rank"]}


def run_bench(args) -> int:
    from qgt.frontend import load_circuit, load_qiskit

    threads = args.threads or len(os.sched_getaffinity(0))
    args.qubits = args.qubits or 22
    rows = []
    print(f"qgt bench: n={args.qubits}, qgt on {args.ranks} rank(s), {threads} thread(s) in "
          f"all, {args.shots} shots, median of {args.repeat}", flush=True)
    header = f"{'circuit':10s} {'gates':>6s} {'qgt s':>8s} {'Aer s':>8s} {'Aer/qgt':>8s}"
    with_numpy = args.qubits <= NUMPY_MAX_QUBITS
    header += f" {'numpy s':>8s} {'np/qgt':>7s}" if with_numpy else ""
    print(header)
    for name, spec in suite_specs(args.qubits, args.circuits).items():
        qc = load_qiskit(spec)
        q = [_time_qgt(spec, args.ranks, threads, args.shots) for _ in range(args.repeat)]
        tq = statistics.median(r["seconds"] for r in q)
        ta = statistics.median(time_aer(qc, args.shots, threads) for _ in range(args.repeat))
        row = {"circuit": name, "spec": spec, "gates": q[0]["plan"]["gates"], "qgt_s": tq,
               "aer_s": ta, "aer_over_qgt": ta / tq, "qgt_plan": q[0]["plan"],
               "qgt_timings": q[0]["timings"]}
        line = f"{name:10s} {row['gates']:6d} {tq:8.3f} {ta:8.3f} {ta / tq:8.2f}"
        if with_numpy:
            tn = time_numpy(load_circuit(spec), args.shots)
            row.update(numpy_s=tn, numpy_over_qgt=tn / tq)
            line += f" {tn:8.2f} {tn / tq:7.1f}"
        print(line, flush=True)
        rows.append(row)
    ratios = [r["aer_over_qgt"] for r in rows]
    print(f"median Aer/qgt: {statistics.median(ratios):.2f}   min: {min(ratios):.2f}")
    if args.output:
        Path(args.output).write_text(json.dumps({"n": args.qubits, "ranks": args.ranks,
                                                 "threads": threads, "rows": rows}, indent=2))
    return 0
