"""``qgt bench --out-of-core``: qgt with the state on disk, against the disk itself, the
OS paging a memory-mapped state, and Qiskit Aer, all in one run so ratios compare.

Called by the CLI (``run_ooc_bench``); ``python -m qgt.bench.ooc`` runs it standalone.
Steps, in this order so nothing big runs at the same time as anything else:

1. the disk: ``qgt.bench.calibrate.measure`` (direct I/O), real ``dd``, and a read of
   one file concurrent with a write of another (what the engine's I/O ring does);
2. per circuit, ``mpiexec -n 1 qgt run SPEC --set storage=ssd --set memory_limit=...``
   (time, passes, bytes through the disk, throughput; QFT|0> is checked against the
   uniform state it must produce);
3. the OS-paging baseline: the circuit's gates, one pass each, on a ``numpy.memmap``
   of the state file, in a child process under a time budget, extrapolated;
4. Qiskit Aer on the same circuit (expected to refuse: the state does not fit);
5. a smaller circuit out of core with a tight memory_limit, against the same run in RAM.

The big files (state pages, the memmap file, the dd file) all live in the scratch
directory and are removed before each step ends, also when a step fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from qgt.bench import calibrate
from qgt.errors import UserError
from qgt.units import format_duration, format_size, parse_size

AMP = 16
GB = 1e9
DEFAULTS = {"qubits": 31, "memory_limit": "4GiB", "circuits": "qft,random,qaoa", "shots": 1000,
            "random_depth": 20, "paging_budget": 600.0, "small_qubits": 28,
            "small_memory_limit": "1GiB", "disk_size": "4GiB", "skip": ""}
STEPS = ("disk", "qgt", "paging", "aer", "small")
PAGE_OS = 4096  # the OS page: the unit the paging baseline moves
CHUNK_BITS = 24  # the paging baseline works on 256 MiB views: temporaries stay small


def _opt(args, name):
    v = getattr(args, name, None)
    return DEFAULTS[name] if v is None or v == "" else v


def _spec(name: str, n: int, depth: int) -> str:
    from qgt.bench.suite import SUITE, suite_specs

    if name == "random":
        return f"random:{n}:{depth}:1"
    if name not in SUITE:
        suite_specs(n, name)  # raises the suite's error message
    return SUITE[name].format(n=n)


def _measured_file(spec: str, workdir: str) -> str:
    """A circuit with no measurements (qft, trotter, qaoa) gets measure_all, written as
    OpenQASM 2, so that ``--shots`` samples it: the benchmark includes the sampling."""
    from qiskit import qasm2

    from qgt.frontend import load_qiskit, with_measurements

    qc = load_qiskit(spec)
    if any(i.operation.name == "measure" for i in qc.data):
        return spec
    path = os.path.join(workdir, spec.replace(":", "_") + "_measured.qasm")
    Path(path).write_text(qasm2.dumps(with_measurements(qc)))
    return path


def _free(d: str) -> int:
    st = os.statvfs(d)
    return st.f_bavail * st.f_frsize


def _need_space(d: str, nbytes: int, what: str) -> None:
    if _free(d) < nbytes * 1.05:
        raise UserError(f"{what} needs {format_size(nbytes)} in '{d}', which has "
                        f"{format_size(_free(d))} free")


# ---- 1. the disk ---------------------------------------------------------------------
def _dd(scratch: str, count: int) -> dict:
    """The brief's reference: ``dd bs=16M oflag=direct`` then ``iflag=direct``."""
    path = os.path.join(scratch, f"qgt-dd-{os.getpid()}")
    out = {}
    cmds = {"write": ["dd", "if=/dev/zero", f"of={path}", "bs=16M", f"count={count}",
                      "oflag=direct"],
            "read": ["dd", f"if={path}", "of=/dev/null", "bs=16M", "iflag=direct"]}
    try:
        for what, cmd in cmds.items():
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            m = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", p.stderr)
            if p.returncode or not m:
                raise UserError(f"dd failed: {p.stderr.strip()[-300:]}")
            out[f"{what}_Bps"] = int(m.group(1)) / float(m.group(2))
            out[f"{what}_command"] = " ".join(cmd)
    finally:
        Path(path).unlink(missing_ok=True)
    return out


def _mixed(scratch: str, size: int, block: int = 16 << 20) -> dict:
    """Direct-I/O read of one file while another (already written) is overwritten, one
    request in flight each, each cycling through its own buffer ring of up to 1 GiB:
    the pattern of the engine's read-ahead and write-behind into its group buffers."""
    paths = [os.path.join(scratch, f"qgt-mixed-{os.getpid()}-{i}") for i in range(2)]
    ring = max(block, min(size, calibrate.RING_MAX) // block * block)
    bufs = [calibrate._aligned(ring) for _ in range(2)]
    views = [memoryview(b) for b in bufs]
    slots = ring // block

    def piece(v, i):
        return v[(i % slots) * block:(i % slots + 1) * block]

    fds = []
    try:
        for p in paths:
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o600)
            fds.append(fd)
            for i, off in enumerate(range(0, size, block)):
                os.pwrite(fd, piece(views[0], i), off)
            os.fsync(fd)
        took = {}

        def stream(kind, fd, v):
            t = time.perf_counter()
            for i, off in enumerate(range(0, size, block)):
                if kind == "read":
                    os.preadv(fd, [piece(v, i)], off)
                else:
                    os.pwrite(fd, piece(v, i), off)
            if kind == "write":
                os.fsync(fd)
            took[kind] = time.perf_counter() - t

        t = time.perf_counter()
        th = [threading.Thread(target=stream, args=a)
              for a in (("read", fds[0], views[0]), ("write", fds[1], views[1]))]
        for x in th:
            x.start()
        for x in th:
            x.join()
        wall = time.perf_counter() - t
    finally:
        for fd in fds:
            os.close(fd)
        for p in paths:
            Path(p).unlink(missing_ok=True)
        for v, b in zip(views, bufs):
            v.release()
            b.close()
    return {"read_Bps": size / took["read"], "write_Bps": size / took["write"],
            "combined_Bps": 2 * size / wall, "bytes_each": size, "ring_bytes": ring}


def _disk_step(scratch: str, size: int) -> dict:
    _need_space(scratch, 2 * size, "the disk measurement")
    print(f"[disk] direct-I/O write+read of {format_size(size)} in {scratch} ...", flush=True)
    res = {"measure": calibrate.measure(scratch, size, 16 << 20)}
    res["dd"] = _dd(scratch, size // (16 << 20))
    res["mixed"] = _mixed(scratch, size)
    m, d, x = res["measure"], res["dd"], res["mixed"]
    print(f"[disk] measure(): write {m['disk_write_Bps'] / GB:.2f} read "
          f"{m['disk_read_Bps'] / GB:.2f} GB/s (one buffer), write "
          f"{m['disk_write_ring_Bps'] / GB:.2f} read {m['disk_read_ring_Bps'] / GB:.2f} GB/s "
          f"(1 GiB buffer ring) | dd: write {d['write_Bps'] / GB:.2f} read "
          f"{d['read_Bps'] / GB:.2f} GB/s | concurrent read+write: "
          f"{x['read_Bps'] / GB:.2f} + {x['write_Bps'] / GB:.2f} = "
          f"{x['combined_Bps'] / GB:.2f} GB/s | memory pass {m['memory_pass_Bps'] / GB:.1f} "
          "GB/s", flush=True)
    return res


# ---- 2. qgt out of core ----------------------------------------------------------------
def _run_qgt(circuit: str, sets: dict, shots: int, observables=(), timeout=7200) -> dict:
    binary = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        cmd = [str(binary / "mpiexec"), "-n", "1", str(binary / "qgt"), "run", circuit]
        for k, v in sets.items():
            cmd += ["--set", f"{k}={v}"]
        cmd += ["--shots", str(shots), "--seed", "1", "--output", str(out), "--quiet"]
        for o in observables:
            cmd += ["--observable", o]
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise UserError(f"qgt failed on {circuit}: {p.stderr.strip()[-2000:]}")
        res = json.loads(out.read_text())
    shown = [("qgt" if c == str(binary / "qgt") else "mpiexec" if c == str(binary / "mpiexec")
              else c) for c in cmd]
    return {"result": res, "wall_s": wall,
            "command": " ".join(shown).replace(f"--output {out}", "--output r.json")}


def _qft_observables(n: int, x_max: int) -> dict[str, float]:
    """Pauli strings whose value on QFT|0> (the uniform superposition |+>^n) is known
    exactly: X on any subset gives 1, any Z gives 0.  The X string spans the top and
    bottom qubits (a wrong phase anywhere lowers it); the working set caps its width."""
    k = max(1, min(x_max, n))
    xs = set(range(n - (k + 1) // 2, n)) | set(range(k // 2))
    label = "".join("X" if q in xs else "I" for q in reversed(range(n)))
    return {label: 1.0, "I" * (n - 1) + "Z": 0.0}


def _uniform_checks(counts: dict[str, int], n: int, shots: int) -> dict:
    """Chi-square sanity checks that samples of the uniform state look uniform."""
    from scipy.stats import chi2

    keys = np.array([int(k, 2) for k in counts], dtype=np.int64)
    mult = np.array(list(counts.values()))
    ones = np.array([int(((keys >> q) & 1) @ mult) for q in range(n)])
    bit_chi2 = float((((ones - shots / 2) ** 2) / (shots / 4)).sum())
    top = min(5, n)
    hist = np.bincount(keys >> (n - top), weights=mult, minlength=1 << top)
    e = shots / (1 << top)
    top_chi2 = float(((hist - e) ** 2 / e).sum())
    expected_distinct = (1 << n) * (1 - (1 - 2.0 ** -n) ** shots)
    out = {"distinct_outcomes": len(counts), "expected_distinct": expected_distinct,
           "bit_balance_chi2": bit_chi2, "bit_balance_p": float(chi2.sf(bit_chi2, n)),
           f"top{top}_bits_chi2": top_chi2,
           f"top{top}_bits_p": float(chi2.sf(top_chi2, (1 << top) - 1))}
    out["ok"] = bool(len(counts) >= expected_distinct - 5 * np.sqrt(expected_distinct + 1)
                     and out["bit_balance_p"] > 1e-3 and out[f"top{top}_bits_p"] > 1e-3)
    return out


def _io_figures(res: dict, disk: dict | None) -> dict:
    """Bytes through the disk and the rate, against what the disk does alone."""
    io = res["metadata"]["io"][0]
    r, w, t = io["read"], io["written"], res["timings"]["run"]
    state = res["state_bytes_per_rank"]
    out = {"run_s": t, "read": r, "written": w, "states_read": r / state,
           "states_written": w / state, "achieved_Bps": (r + w) / t,
           "sweeps": res["plan"]["sweeps"], "global_swaps": res["plan"]["global_swaps"],
           "passes": res["plan"]["sweeps"] + res["plan"]["global_swaps"],
           "passes_executed": res["metadata"]["passes"],
           "compute_s": res["timings"].get("compute", 0.0),
           "reductions_s": res["timings"].get("reductions", 0.0),
           "peak_rss": res["peak_memory_per_rank"][0], "buffer_bytes": io["buffer_bytes"]}
    if disk:
        m, x = disk["measure"], disk["mixed"]
        # the seconds a disk at measure()'s sequential rates would need for these bytes,
        # as a share of the run: the byte-weighted (harmonic) direct-I/O bandwidth
        busy = r / m["disk_read_Bps"] + w / m["disk_write_Bps"]
        busy_ring = r / m["disk_read_ring_Bps"] + w / m["disk_write_ring_Bps"]
        out.update(direct_io_Bps=(r + w) / busy, fraction_of_direct_io=busy / t,
                   direct_io_ring_Bps=(r + w) / busy_ring, fraction_of_ring=busy_ring / t,
                   fraction_of_concurrent=(r + w) / t / x["combined_Bps"])
    return out


def _qgt_step(names, n, depth, limit, scratch, threads, shots, workdir, disk) -> list[dict]:
    from qgt.config import load_config
    from qgt.runtime.capacity import choose_tier

    rows = []
    tier = choose_tier(load_config(overrides={"storage": "ssd", "memory_limit": limit}),
                       n, 1, 1, threads)
    for name in names:
        spec = _spec(name, n, depth)
        _need_space(scratch, AMP << n, f"{spec} out of core")
        circuit = _measured_file(spec, workdir)
        obs = _qft_observables(n, tier[1] - tier[0]) if name == "qft" else {}
        print(f"[qgt] {spec}: mpiexec -n 1 qgt run, storage=ssd, memory_limit={limit}, "
              f"{threads} threads ...", flush=True)
        sets = {"storage": "ssd", "memory_limit": limit, "scratch_dir": scratch,
                "threads": threads}
        try:
            run = _run_qgt(circuit, sets, shots, list(obs))
        except (UserError, subprocess.TimeoutExpired) as e:  # the other circuits still run
            print(f"[qgt] {spec}: FAILED: {e}", flush=True)
            rows.append({"circuit": name, "spec": spec, "error": str(e)})
            continue
        res = run["result"]
        row = {"circuit": name, "spec": spec, "command": run["command"],
               "timings": res["timings"], "plan": res["plan"], "io": res["metadata"]["io"],
               **_io_figures(res, disk)}
        if name == "qft":
            got = res["expectation_values"]
            row["observables"] = {k: {"exact": v, "got": got[k], "error": abs(got[k] - v)}
                                  for k, v in obs.items()}
            row["counts_check"] = _uniform_checks(res["counts"], n, shots)
            row["correct"] = (row["counts_check"]["ok"]
                              and all(o["error"] < 1e-9 for o in row["observables"].values()))
        else:
            row["distinct_outcomes"] = len(res["counts"])
        frac = row.get("fraction_of_direct_io")
        print(f"[qgt] {spec}: {row['run_s']:.1f} s, {row['passes']} passes, read "
              f"{row['read'] / GB:.1f} GB + wrote {row['written'] / GB:.1f} GB = "
              f"{row['achieved_Bps'] / GB:.2f} GB/s"
              + (f" = {100 * frac:.0f} % of direct I/O (one buffer), "
                 f"{100 * row['fraction_of_ring']:.0f} % (buffer ring), "
                 f"{100 * row['fraction_of_concurrent']:.0f} % of concurrent" if frac else "")
              + (f"; correct: {row['correct']}" if "correct" in row else ""), flush=True)
        rows.append(row)
    return rows


# ---- 3. the OS-paging baseline -----------------------------------------------------------
def _touch_fraction(n: int, targets, controls, ctrl_values, matrix, diagonal) -> float:
    """The share of the state's 4 KiB OS pages a gate reads and writes in the baseline:
    controls on bits above the page select a part of the pages; a diagonal gate touches
    only the amplitudes whose phase is not 1."""
    low = (PAGE_OS // AMP).bit_length() - 1  # amplitudes of one OS page: 8 bits
    frac = 2.0 ** -sum(1 for c in controls if c >= low)
    if diagonal:
        high = [i for i, t in enumerate(targets) if t >= low]
        parts = {sum(((v >> i) & 1) << j for j, i in enumerate(high))
                 for v in range(len(matrix)) if matrix[v] != 1}
        frac *= len(parts) / (1 << len(high))
    return frac


def _make_state_file(path: str, n: int) -> float:
    """A dense state file of |0...0> (zeros written with direct I/O, so none of it is in
    the page cache when the baseline starts)."""
    block = 64 << 20
    size = AMP << n
    buf = calibrate._aligned(block)
    np.frombuffer(buf, dtype=np.uint8)[:] = 0
    t = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o600)
    try:
        for off in range(0, size, block):
            os.pwrite(fd, memoryview(buf)[:min(block, size - off)], off)
        np.frombuffer(buf, dtype=np.complex128)[0] = 1.0
        os.pwrite(fd, memoryview(buf)[:PAGE_OS], 0)
        os.fsync(fd)
    finally:
        os.close(fd)
        buf.close()
    return time.perf_counter() - t


def _apply_paged(psi, n: int, op, pos: list[int], deadline: float) -> float:
    """One gate as one pass over the memmap, in 2^CHUNK_BITS-amplitude views; returns the
    fraction of the pass done before ``deadline``."""
    tq = [pos[q] for q in op.targets]
    cq = [pos[q] for q in op.controls]
    cv = op.ctrl_values or (1,) * len(cq)
    involved = set(tq) | set(cq)
    outer = [b for b in reversed(range(n)) if b not in involved][:max(0, n - CHUNK_BITS)]
    k = len(tq)
    ax = [n - 1 - t for t in reversed(tq)]  # axis of each row bit of the reshaped matrix
    m = None if op.diagonal else np.asarray(op.matrix).reshape((2,) * (2 * k))
    for c in range(1 << len(outer)):
        if time.perf_counter() > deadline:
            return c / (1 << len(outer))
        idx = [slice(None)] * n
        for i, b in enumerate(outer):
            idx[n - 1 - b] = slice((c >> i) & 1, ((c >> i) & 1) + 1)
        for b, v in zip(cq, cv):
            idx[n - 1 - b] = slice(v, v + 1)
        if op.diagonal:
            for v, phase in enumerate(op.matrix):
                if phase == 1:
                    continue
                j = list(idx)
                for i, t in enumerate(tq):
                    j[n - 1 - t] = slice((v >> i) & 1, ((v >> i) & 1) + 1)
                psi[tuple(j)] *= phase
        else:
            sub = psi[tuple(idx)]
            new = np.tensordot(m, sub, axes=(list(range(k, 2 * k)), ax))
            sub[...] = np.moveaxis(new, list(range(k)), ax)
    return 1.0


def paging_worker(spec: str, path: str, budget: float, out: str) -> None:
    """The baseline itself (run in a child process): make the state file, memory-map it,
    and apply the gates until the budget is spent."""
    from qgt.frontend import load_circuit
    from qgt.ops import Gate, Swap

    circ = load_circuit(spec)
    n = circ.n_qubits
    report = {"spec": spec, "n": n, "file_bytes": AMP << n}
    report["file_create_s"] = _make_state_file(path, n)
    try:
        psi = np.memmap(path, dtype=np.complex128, mode="r+").reshape((2,) * n)
        pos = list(range(n))  # logical qubit -> bit: a SWAP is a free relabelling
        gates, weights = [], []
        for op in circ.ops:
            if isinstance(op, Swap):
                pos[op.a], pos[op.b] = pos[op.b], pos[op.a]
            elif isinstance(op, Gate):
                ctrl = [pos[c] for c in op.controls]
                w = _touch_fraction(n, [pos[t] for t in op.targets], ctrl, op.ctrl_values,
                                    op.matrix, op.diagonal)
                gates.append((op, list(pos), w))
                weights.append(w)
        start = time.perf_counter()
        deadline = start + budget
        done = []
        for op, p, w in gates:
            t = time.perf_counter()
            f = _apply_paged(psi, n, op, p, deadline)
            done.append({"gate": op.name, "bits": [p[q] for q in op.qubits], "weight": w,
                         "fraction_done": f, "seconds": time.perf_counter() - t})
            print(f"[paging]   {op.name}{done[-1]['bits']}: {done[-1]['seconds']:.1f} s"
                  + (f" ({100 * f:.0f} % done)" if f < 1 else ""), flush=True)
            if f < 1:
                break
        gate_time = time.perf_counter() - start
        t = time.perf_counter()
        psi.flush()  # the dirty pages still to be written belong to the gates just timed
        flush_s = time.perf_counter() - t
        del psi
    finally:
        Path(path).unlink(missing_ok=True)
    measured = sum(d["fraction_done"] for d in done)
    measured_w = sum(d["weight"] * d["fraction_done"] for d in done)
    elapsed = gate_time + flush_s
    report.update(gates_total=len(gates), gates_measured=measured, measured_s=gate_time,
                  flush_s=flush_s, per_gate=done,
                  seconds_per_gate=elapsed / measured if measured else None,
                  extrapolated_total_s_naive=elapsed / measured * len(gates) if measured else None,
                  extrapolated_total_s=(elapsed / measured_w * sum(weights)
                                        if measured_w else None),
                  weight_measured=measured_w, weight_total=sum(weights))
    Path(out).write_text(json.dumps(report, indent=2))


def _cgroup_prefix(limit: str) -> tuple[list[str], str]:
    """``systemd-run --scope -p MemoryMax=...`` when it works here (then the page cache
    is charged to the limit too), else nothing and the reason."""
    if not shutil.which("systemd-run"):
        return [], "systemd-run is not installed"
    probe = ["systemd-run", "--scope", "--quiet", "-p", f"MemoryMax={parse_size(limit)}", "true"]
    try:
        p = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], f"systemd-run failed: {e}"
    if p.returncode:
        return [], "systemd-run failed: " + " / ".join(p.stderr.strip().splitlines()[-2:])
    return probe[:-1], ""


def _paging_step(spec: str, n: int, scratch: str, budget: float, limit: str) -> dict:
    _need_space(scratch, AMP << n, "the paging baseline")
    prefix, why_not = _cgroup_prefix(limit)
    path = os.path.join(scratch, f"qgt-memmap-{os.getpid()}.state")
    print(f"[paging] {spec}: numpy.memmap of a {format_size(AMP << n)} state file, one pass "
          f"per gate, {budget:.0f} s budget; "
          + (f"under {' '.join(prefix)}" if prefix else f"no memory cgroup ({why_not}): the "
             "page cache may use all RAM"), flush=True)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "paging.json")
        cmd = prefix + [sys.executable, "-m", "qgt.bench.ooc", "--paging-worker", spec, path,
                        str(budget), out]
        try:
            p = subprocess.run(cmd, text=True, timeout=budget + 3600, stdout=sys.stdout,
                               stderr=subprocess.PIPE)
        finally:
            Path(path).unlink(missing_ok=True)
        if p.returncode:
            raise UserError(f"the paging baseline failed: {p.stderr.strip()[-2000:]}")
        res = json.loads(Path(out).read_text())
    res["cgroup"] = " ".join(prefix) if prefix else None
    res["cgroup_unavailable_because"] = why_not or None
    if res["extrapolated_total_s"]:
        print(f"[paging] {_paging_summary(res)}", flush=True)
    return res


def _dur(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else format_duration(round(seconds))


def _paging_summary(p: dict) -> str:
    head = (f"{p['gates_measured']:.2f} of {p['gates_total']} gates in "
            f"{_dur(p['measured_s'] + p['flush_s'])} (final flush "
            f"{_dur(p['flush_s'])}), {p['seconds_per_gate']:.1f} s per gate")
    if p["gates_measured"] >= p["gates_total"]:
        return head + " (all gates: measured, not extrapolated)"
    return (head + f"; EXTRAPOLATED total {_dur(p['extrapolated_total_s'])} by "
            f"pages touched, {_dur(p['extrapolated_total_s_naive'])} by gate count")


# ---- 4. Qiskit Aer -------------------------------------------------------------------------
_AER = """
import json, sys, time
from qiskit import transpile
from qiskit_aer import AerSimulator
from qgt.frontend import load_qiskit, with_measurements
qc = with_measurements(load_qiskit(sys.argv[1]))
sim = AerSimulator(method="statevector", max_parallel_threads=int(sys.argv[2]))
out = {}
try:  # as a user would: transpile to the simulator's target first
    qc = transpile(qc, sim, optimization_level=0)
except Exception as e:
    out["transpile_error"] = f"{type(e).__name__}: {e}"
t = time.perf_counter()
try:  # h, cp and measure run natively: ask the simulator itself
    r = sim.run(qc, shots=1000, seed_simulator=1).result()
    out.update(success=r.success, status=r.status,
               messages=[getattr(x, "status", "") for x in r.results])
except Exception as e:
    out.update(success=False, status=f"{type(e).__name__}: {e}", messages=[])
out["seconds"] = time.perf_counter() - t
print(json.dumps(out))
"""


def _aer_step(spec: str, threads: int) -> dict:
    print(f"[aer] {spec}: AerSimulator(method='statevector') ...", flush=True)
    try:
        p = subprocess.run([sys.executable, "-c", _AER, spec, str(threads)], capture_output=True,
                           text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        return {"success": False, "status": "no answer within an hour (killed)"}
    lines = p.stdout.strip().splitlines()
    if p.returncode or not lines:
        return {"success": False, "status": f"exit {p.returncode}: {p.stderr.strip()[-500:]}"}
    res = json.loads(lines[-1])
    msg = "; ".join(m for m in res["messages"] if m) or res["status"]
    if res.get("transpile_error"):
        print(f"[aer] transpile: {res['transpile_error']}", flush=True)
    print(f"[aer] run: success={res['success']}: {msg}", flush=True)
    return res


# ---- 5. a state that fits: paging forced vs RAM ----------------------------------------------
def _small_step(names, n, depth, limit, scratch, threads, shots, workdir, disk) -> list[dict]:
    rows = []
    for name in names:
        spec = _spec(name, n, depth)
        circuit = _measured_file(spec, workdir)
        base = {"scratch_dir": scratch, "threads": threads}
        print(f"[small] {spec}: storage=ssd memory_limit={limit} vs storage=ram ...", flush=True)
        try:
            ssd = _run_qgt(circuit, base | {"storage": "ssd", "memory_limit": limit}, shots)
            ram = _run_qgt(circuit, base | {"storage": "ram"}, shots)
        except (UserError, subprocess.TimeoutExpired) as e:
            print(f"[small] {spec}: FAILED: {e}", flush=True)
            rows.append({"circuit": name, "spec": spec, "error": str(e)})
            continue
        f = _io_figures(ssd["result"], disk)
        t_ram = ram["result"]["timings"]["run"]
        row = {"circuit": name, "spec": spec, "ssd_command": ssd["command"],
               "ram_command": ram["command"], "ssd": f, "ram_run_s": t_ram,
               "ram_passes": ram["result"]["plan"]["sweeps"],
               "same_counts": ssd["result"]["counts"] == ram["result"]["counts"]}
        if disk:
            m, x = disk["measure"], disk["mixed"]
            row["io_s_sequential"] = (f["read"] / m["disk_read_Bps"]
                                      + f["written"] / m["disk_write_Bps"])
            row["io_s_ring"] = (f["read"] / m["disk_read_ring_Bps"]
                                + f["written"] / m["disk_write_ring_Bps"])
            row["io_s_concurrent"] = (f["read"] + f["written"]) / x["combined_Bps"]
        print(f"[small] {spec}: ssd {f['run_s']:.1f} s ({f['passes']} passes, "
              f"{(f['read'] + f['written']) / GB:.1f} GB moved) vs ram {t_ram:.1f} s"
              + (f"; the disk alone needs {row['io_s_sequential']:.1f} s at one-buffer rates,"
                 f" {row['io_s_ring']:.1f} s at ring rates, {row['io_s_concurrent']:.1f} s "
                 "reading and writing at once" if disk else "")
              + f"; same counts: {row['same_counts']}", flush=True)
        rows.append(row)
    return rows


# ---- the report -----------------------------------------------------------------------------
def _table(report: dict) -> str:
    lines = []
    d = report.get("disk")
    if d:
        m, dd, x = d["measure"], d["dd"], d["mixed"]
        lines += ["disk (direct I/O, 16 MiB requests)     write GB/s  read GB/s",
                  f"  {'measure(), one buffer (' + format_size(m['disk_bytes']) + ')':38s}"
                  f"{m['disk_write_Bps'] / GB:6.2f} {m['disk_read_Bps'] / GB:10.2f}",
                  f"  {'measure(), 1 GiB buffer ring':38s}"
                  f"{m['disk_write_ring_Bps'] / GB:6.2f} {m['disk_read_ring_Bps'] / GB:10.2f}",
                  f"  dd{'':36s}{dd['write_Bps'] / GB:6.2f} {dd['read_Bps'] / GB:10.2f}",
                  f"  concurrent read + write (sum {x['combined_Bps'] / GB:4.2f}){'':5s}"
                  f"{x['write_Bps'] / GB:6.2f} {x['read_Bps'] / GB:10.2f}", ""]
    rows = report.get("qgt", [])
    if rows:
        lines.append(f"{'circuit':18s} {'run s':>7s} {'passes':>6s} {'read GB':>8s} "
                     f"{'write GB':>8s} {'GB/s':>6s} {'%1buf':>6s} {'%ring':>6s} {'%conc':>6s} "
                     "correct")
        for r in rows:
            if "error" in r:
                lines.append(f"{r['spec']:18s} failed: {r['error'][:200]}")
                continue
            lines.append(f"{r['spec']:18s} {r['run_s']:7.1f} {r['passes']:6d} "
                         f"{r['read'] / GB:8.1f} {r['written'] / GB:8.1f} "
                         f"{r['achieved_Bps'] / GB:6.2f} "
                         f"{100 * r.get('fraction_of_direct_io', float('nan')):5.0f}% "
                         f"{100 * r.get('fraction_of_ring', float('nan')):5.0f}% "
                         f"{100 * r.get('fraction_of_concurrent', float('nan')):5.0f}% "
                         f"{r.get('correct', '-')}")
    p = report.get("paging")
    if p and p.get("extrapolated_total_s"):
        lines += ["", f"OS paging ({p['spec']}, numpy.memmap): {_paging_summary(p)}"]
    a = report.get("aer")
    if a:
        msg = "; ".join(m for m in a.get("messages", []) if m) or a["status"]
        lines += ["", f"Aer statevector: {'ran' if a['success'] else 'refused'}: {msg[:300]}"]
        if a.get("transpile_error"):
            lines.append(f"  (transpile to its target: {a['transpile_error'][:200]})")
    for r in report.get("small", []):
        if "error" in r:
            lines.append(f"{r['spec']}: failed: {r['error'][:200]}")
            continue
        lines.append(f"{r['spec']}: ssd {r['ssd']['run_s']:.1f} s vs ram {r['ram_run_s']:.1f} s, "
                     f"{(r['ssd']['read'] + r['ssd']['written']) / GB:.1f} GB moved")
    return "\n".join(lines)


def run_ooc_bench(args) -> int:
    """``qgt bench --out-of-core``: every step in one run; prints a table and writes the
    JSON report to ``--output``.  Optional attributes of ``args`` (see ``DEFAULTS``):
    qubits, memory_limit, circuits, scratch_dir, output, threads, shots, random_depth,
    paging_budget, small_qubits, small_memory_limit, disk_size, skip (comma list of
    disk,qgt,paging,aer,small)."""
    n = int(_opt(args, "qubits"))
    limit = str(_opt(args, "memory_limit"))
    names = [s.strip() for s in str(_opt(args, "circuits")).split(",") if s.strip()]
    scratch = os.path.abspath(getattr(args, "scratch_dir", None) or calibrate._default_scratch())
    threads = int(getattr(args, "threads", 0) or len(os.sched_getaffinity(0)))
    shots, depth = int(_opt(args, "shots")), int(_opt(args, "random_depth"))
    skip = {s.strip() for s in str(_opt(args, "skip")).split(",") if s.strip()}
    if skip - set(STEPS):
        raise UserError(f"--skip takes {','.join(STEPS)}, got {','.join(sorted(skip))}")
    if not os.path.isdir(scratch):
        raise UserError(f"scratch directory '{scratch}' does not exist")
    parse_size(limit)
    report = {"n": n, "memory_limit": limit, "scratch_dir": scratch, "threads": threads,
              "shots": shots, "host": os.uname().nodename, "cpus": os.cpu_count(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    print(f"qgt bench --out-of-core: n={n}, {names}, memory_limit={limit}, 1 rank x "
          f"{threads} threads, scratch {scratch} ({format_size(_free(scratch))} free)",
          flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        disk = None
        if "disk" not in skip:
            disk = report["disk"] = _disk_step(scratch, parse_size(_opt(args, "disk_size")))
        if "qgt" not in skip:
            report["qgt"] = _qgt_step(names, n, depth, limit, scratch, threads, shots,
                                      workdir, disk)
        first = _spec(names[0], n, depth)
        if "paging" not in skip:
            report["paging"] = _paging_step(first, n, scratch, float(_opt(args, "paging_budget")),
                                            limit)
            q = {r["spec"]: r for r in report.get("qgt", [])}.get(first)
            if q and "run_s" in q and report["paging"].get("extrapolated_total_s"):
                report["paging"]["over_qgt"] = report["paging"]["extrapolated_total_s"] / q["run_s"]
        if "aer" not in skip:
            report["aer"] = _aer_step(first, threads)
        if "small" not in skip:
            report["small"] = _small_step(names, int(_opt(args, "small_qubits")), depth,
                                          str(_opt(args, "small_memory_limit")), scratch,
                                          threads, shots, workdir, disk)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print()
    print(_table(report))
    out = getattr(args, "output", None)
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
        print(f"report: {out}")
    return 0


def add_arguments(p) -> None:
    """The options of ``qgt bench --out-of-core`` beyond --qubits/--circuits/--output."""
    p.add_argument("--memory-limit", default=None, help="qgt memory_limit (default 4GiB)")
    p.add_argument("--scratch-dir", default=None,
                   help="scratch directory (default $TMPDIR, else /tmp)")
    p.add_argument("--random-depth", type=int, default=None, help="depth of random:N:D:1 (20)")
    p.add_argument("--paging-budget", type=float, default=None,
                   help="seconds for the OS-paging baseline (default 600)")
    p.add_argument("--small-qubits", type=int, default=None,
                   help="n of the paging-vs-RAM comparison (default 28)")
    p.add_argument("--small-memory-limit", default=None, help="its memory_limit (default 1GiB)")
    p.add_argument("--disk-size", default=None, help="disk test file size (default 4GiB)")
    p.add_argument("--skip", default=None, help=f"steps to leave out: {','.join(STEPS)}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--paging-worker":
        paging_worker(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
        raise SystemExit(0)
    import argparse

    _p = argparse.ArgumentParser(prog="python -m qgt.bench.ooc")
    _p.add_argument("--qubits", type=int, default=None)
    _p.add_argument("--circuits", default=None)
    _p.add_argument("--threads", type=int, default=0)
    _p.add_argument("--shots", type=int, default=None)
    _p.add_argument("--output", default=None)
    add_arguments(_p)
    raise SystemExit(run_ooc_bench(_p.parse_args()))
