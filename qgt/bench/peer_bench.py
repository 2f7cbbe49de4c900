"""``qgt bench --peers aer,qsim,lightning,qulacs``: qgt against the other simulators on the
suite of ``qgt.bench.peer_suite``, side by side in one run, plus each circuit's floor.
qgt runs in both precisions (``qgt``: complex128, ``qgt-sp``: complex64); qsim computes
in single precision only, the other peers in double.

Each peer runs in its own process (``qgt.bench.peer_run``) at each of its settings (the
best counts), with ``OMP_NUM_THREADS`` set to the same thread count as qgt; peers that
are not installed are reported as such (``pip install 'qgt[peers]'``).  qgt runs as
``mpiexec -n RANKS qgt run`` like every other benchmark; its time is plan + run.

The floor has no fixed term, so the bench also prints qgt's fixed cost on this machine:
the plan + run of a circuit of one ``h`` gate on the same n qubits (planning in Python,
one kernel call).  A circuit whose floor is below half of it (GHZ: its state is two
amplitudes) cannot come within 2x of its floor.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from qgt.errors import UserError

PEER_TIMEOUT = 1800


def add_arguments(g) -> None:
    g.add_argument("--peer-circuits", default="",
                   help="comma-separated subset of qft,random,qaoa,ghz,qv,trotter")
    g.add_argument("--peer-timeout", type=int, default=PEER_TIMEOUT,
                   help="seconds before a peer's run is abandoned (default 1800)")


def _peers(text: str) -> list[str]:
    from qgt.bench.peer_run import PEERS

    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in PEERS]
    if bad:
        raise UserError(f"unknown peer(s) {bad}: choose from {','.join(PEERS)}")
    return names


def _installed(peer: str) -> bool:
    from qgt.bench.peer_run import MODULES

    return importlib.util.find_spec(MODULES[peer]) is not None


def _time_peer(peer: str, path: str, threads: int, timeout: int) -> dict:
    from qgt.bench.peer_run import SETTINGS

    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    best = None
    for setting in SETTINGS[peer]:
        cmd = [sys.executable, "-m", "qgt.bench.peer_run", peer, path, str(threads), setting]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
        if p.returncode != 0:  # (out of memory, say): recorded, the other cells still run
            err = p.stderr.strip().splitlines()[-1:] or [f"exit {p.returncode}"]
            print(f"  {peer} ({setting or 'default'}) failed: {err[0][:200]}", flush=True)
            continue
        s = json.loads(p.stdout.strip().splitlines()[-1])["seconds"]
        if best is None or s < best["seconds"]:
            best = {"seconds": s, "setting": setting or "default"}
    return best or {"seconds": None, "setting": f"failed or over {timeout} s"}


def run_peer_bench(args) -> int:
    from qiskit import qasm2

    from qgt.api import plan_for
    from qgt.bench.floor import floor_seconds, machine_rates, plan_work
    from qgt.bench.peer_suite import PEER_SUITE, build, gate_count
    from qgt.bench.runner import _time_qgt
    from qgt.config import load_config
    from qgt.frontend import load_circuit
    from qgt.precision import PRECISIONS, dtype

    peers = _peers(args.peers)
    n = args.qubits or 26
    threads = args.threads or len(os.sched_getaffinity(0))
    names = [c.strip() for c in args.peer_circuits.split(",") if c.strip()] or list(PEER_SUITE)
    if args.output:  # a bad output path fails now, not after an hour of runs
        try:
            _write(args.output, n, threads, args.ranks, {}, [])
        except OSError as e:
            raise UserError(f"cannot write --output {args.output}: {e}") from None
    missing = [p for p in peers if not _installed(p)]
    if missing:
        print(f"not installed (pip install 'qgt[peers]'): {', '.join(missing)}")
    peers = [p for p in peers if p not in missing]
    print(f"qgt bench --peers: n={n}, {threads} threads each, qgt on {args.ranks} rank(s); "
          "seconds of simulation to the final state, no sampling (qgt leaves its qubit "
          "layout permuted, as for samples and expectation values)", flush=True)
    rates = {prec: machine_rates(n, threads, dtype=dtype(prec)) for prec in PRECISIONS}
    for prec, r in rates.items():
        print(f"this machine, {prec}: one memory pass {r['pass_s'] * 1e3:.1f} ms, kernel "
              f"peak {r['peak_cmadd_per_s'] / 1e9:.2f} G complex multiply-adds/s", flush=True)
    cfgs = {prec: load_config(overrides={"precision": prec}) for prec in PRECISIONS}
    fixed = _fixed_cost(n, args.ranks, threads, args.repeat)
    print("qgt's fixed cost, plan + run of one h gate on the same qubits: "
          + ", ".join(f"{prec} {s * 1e3:.2f} ms" for prec, s in fixed.items()), flush=True)
    rates = {prec: dict(r, fixed_s=fixed[prec]) for prec, r in rates.items()}
    rows = []
    head = (f"{'circuit':8s} {'gates':>5s} {'qgt':>7s} {'qgt-sp':>7s}"
            + "".join(f" {p:>9s}" for p in peers))
    print(head + f" {'best/qgt':>8s} {'best/sp':>7s} {'floor':>7s} {'/floor':>6s} "
          f"{'floor-sp':>8s} {'/floor':>6s}")
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            qc = build(name, n)
            path = str(Path(d) / f"{name}.qasm")
            Path(path).write_text(qasm2.dumps(qc))
            row = {"circuit": name, "gates": gate_count(qc), "peers": {}}
            for prec, key in (("double", "qgt"), ("single", "qgt_single")):
                q = [_time_qgt(path, args.ranks, threads, 0, {"QGT_PRECISION": prec})
                     for _ in range(args.repeat)]
                plan = plan_for(load_circuit(path), cfgs[prec], args.ranks, threads=threads,
                                restore=False)
                row[key] = {"seconds": statistics.median(r["seconds"] for r in q),
                            "plan": q[0]["plan"],
                            **floor_seconds(plan_work(plan), rates[prec])}
            tq, ts = row["qgt"]["seconds"], row["qgt_single"]["seconds"]
            for p in peers:
                row["peers"][p] = _time_peer(p, path, threads, args.peer_timeout)
            times = [v["seconds"] for v in row["peers"].values() if v["seconds"]]
            row["best_peer_over_qgt"] = min(times) / tq if times else None
            row["best_peer_over_qgt_single"] = min(times) / ts if times else None
            cells = "".join(f" {_sec(v['seconds'], 9)}" if v["seconds"] else f" {'-':>9s}"
                            for v in row["peers"].values())
            ratio = (f"{row['best_peer_over_qgt']:8.2f} {row['best_peer_over_qgt_single']:7.2f}"
                     if times else f"{'-':>8s} {'-':>7s}")
            fd, fs = row["qgt"]["floor_s"], row["qgt_single"]["floor_s"]
            print(f"{name:8s} {row['gates']:5d} {_sec(tq, 7)} {_sec(ts, 7)}{cells} {ratio} "
                  f"{_sec(fd, 7)} {tq / fd:6.2f} {_sec(fs, 8)} {ts / fs:6.2f}", flush=True)
            rows.append(row)
            if args.output:  # after every row: a failure later loses nothing measured
                _write(args.output, n, threads, args.ranks, rates, rows)
    for key, what in (("best_peer_over_qgt", "double"), ("best_peer_over_qgt_single", "single")):
        ratios = [r[key] for r in rows if r[key]]
        if ratios:
            print(f"best peer / qgt ({what}): median {statistics.median(ratios):.2f}, "
                  f"min {min(ratios):.2f}")
    return 0


def _sec(seconds: float, width: int) -> str:
    """Seconds to two decimals, or to five below 0.1 s (GHZ's milliseconds and its
    floor of tens of microseconds would print as 0.00)."""
    return f"{seconds:{width}.2f}" if seconds >= 0.1 else f"{seconds:{width}.5f}"


def _fixed_cost(n: int, ranks: int, threads: int, repeat: int) -> dict:
    """Median plan + run seconds of one h gate on n qubits, per precision."""
    from qgt.bench.runner import _time_qgt
    from qgt.precision import PRECISIONS

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "one_gate.qasm"
        path.write_text(f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\nh q[0];\n')
        return {prec: statistics.median(
            _time_qgt(str(path), ranks, threads, 0, {"QGT_PRECISION": prec})["seconds"]
            for _ in range(max(3, repeat))) for prec in PRECISIONS}


def _write(path: str, n: int, threads: int, ranks: int, rates: dict, rows: list) -> None:
    Path(path).write_text(json.dumps({"n": n, "threads": threads, "ranks": ranks,
                                      "machine": rates, "rows": rows}, indent=2))
