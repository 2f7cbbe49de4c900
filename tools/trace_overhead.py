"""What `qgt run --trace` costs: the same run with and without tracing, alternating,
the median of each, on 2 ranks.

usage: python tools/trace_overhead.py [--repeat 5] [--ranks 2] -- CIRCUIT [qgt run options]
e.g.   python tools/trace_overhead.py --repeat 5 -- qft:26 --set storage=ssd \
           --set memory_limit=64MiB

Each run holds /tmp/qgt-bench.lock (flock), so no other benchmark shares the cores (or,
with --no-lock, the caller holds it around the whole comparison). The
figure compared is the result's timings.run (all plan steps; tracing's own end-of-run
gather and write are reported apart, as metadata.trace.write_seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)


LOCK = ["flock", "/tmp/qgt-bench.lock"]


def run(ranks: int, argv: list[str], out: str, trace: str | None) -> dict:
    cmd = LOCK + [os.path.join(BIN, "mpiexec"), "-n", str(ranks),
                  os.path.join(BIN, "qgt"), "run", *argv, "--quiet", "--output", out]
    if trace:
        cmd += ["--trace", trace]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out) as f:
        res = json.load(f)
    # CPU seconds of the whole job (mpiexec reaps its proxies, they reap the ranks): what
    # tracing adds is CPU work, and CPU time is far less disturbed by other load than wall
    res["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return res


def span_cost(n: int = 200_000) -> float:
    """Seconds per traced span (enter, exit, one list append), best of three."""
    from qgt.obs import trace

    tr = trace.Tracer(0)
    best = float("inf")
    for _ in range(3):
        trace._current, tr.events = tr, []
        t = time.perf_counter()
        for _ in range(n):
            with trace.span("read group", "disk", {"pages": 4}):
                pass
        best = min(best, (time.perf_counter() - t) / n)
    trace._current = None
    return best


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--no-lock", action="store_true",
                   help="the caller holds /tmp/qgt-bench.lock for the whole comparison "
                   "(flock /tmp/qgt-bench.lock python tools/trace_overhead.py --no-lock ...)")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    a = p.parse_args()
    if a.no_lock:
        LOCK.clear()
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    off, on, write, events, cpu_off, cpu_on = [], [], [], 0, [], []
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.repeat):
            res = run(a.ranks, argv, f"{d}/off{i}.json", None)
            off.append(res["timings"]["run"])
            cpu_off.append(res["cpu_seconds"])
            res = run(a.ranks, argv, f"{d}/on{i}.json", f"{d}/t{i}.json")
            on.append(res["timings"]["run"])
            cpu_on.append(res["cpu_seconds"])
            write.append(res["metadata"]["trace"]["write_seconds"])
            events = res["metadata"]["trace"]["events"]
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"untraced run: median {m_off:.3f} s  {[round(x, 3) for x in off]}")
    print(f"traced run:   median {m_on:.3f} s  {[round(x, 3) for x in on]}")
    print(f"overhead of the medians: {100 * (m_on / m_off - 1):+.2f} %; of the minima "
          f"(least disturbed by other load): {100 * (min(on) / min(off) - 1):+.2f} %")
    c_off, c_on = statistics.median(cpu_off), statistics.median(cpu_on)
    print(f"CPU seconds of the job (all ranks and threads): untraced median {c_off:.3f} "
          f"{[round(x, 2) for x in cpu_off]}, traced median {c_on:.3f} "
          f"{[round(x, 2) for x in cpu_on]}: {100 * (c_on / c_off - 1):+.2f} %")
    print(f"{events} events; gathering and writing the trace after the run: median "
          f"{statistics.median(write):.3f} s")
    per_span = span_cost()
    print(f"one span costs {per_span * 1e6:.2f} us here: {events} x that = "
          f"{100 * events * per_span / a.ranks / min(off):.2f} % of the fastest untraced run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
