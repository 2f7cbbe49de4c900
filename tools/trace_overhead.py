"""What `qgt run --trace` costs: the same run with and without tracing, alternating,
the median of each, on 2 ranks.

usage: python tools/trace_overhead.py [--repeat 5] [--ranks 2] -- CIRCUIT [qgt run options]
e.g.   python tools/trace_overhead.py --repeat 5 -- qft:26 --set storage=ssd \
           --set memory_limit=64MiB

Each run holds /tmp/qgt-bench.lock (flock), so no other benchmark shares the cores. The
figure compared is the result's timings.run (all plan steps; tracing's own end-of-run
gather and write are reported apart, as metadata.trace.write_seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)


def run(ranks: int, argv: list[str], out: str, trace: str | None) -> dict:
    cmd = ["flock", "/tmp/qgt-bench.lock", os.path.join(BIN, "mpiexec"), "-n", str(ranks),
           os.path.join(BIN, "qgt"), "run", *argv, "--quiet", "--output", out]
    if trace:
        cmd += ["--trace", trace]
    subprocess.run(cmd, check=True)
    with open(out) as f:
        return json.load(f)


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
    p.add_argument("argv", nargs=argparse.REMAINDER)
    a = p.parse_args()
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    off, on, write, events = [], [], [], 0
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.repeat):
            off.append(run(a.ranks, argv, f"{d}/off{i}.json", None)["timings"]["run"])
            res = run(a.ranks, argv, f"{d}/on{i}.json", f"{d}/t{i}.json")
            on.append(res["timings"]["run"])
            write.append(res["metadata"]["trace"]["write_seconds"])
            events = res["metadata"]["trace"]["events"]
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"untraced run: median {m_off:.3f} s  {[round(x, 3) for x in off]}")
    print(f"traced run:   median {m_on:.3f} s  {[round(x, 3) for x in on]}")
    print(f"overhead of the medians: {100 * (m_on / m_off - 1):+.2f} %; of the minima "
          f"(least disturbed by other load): {100 * (min(on) / min(off) - 1):+.2f} %")
    print(f"{events} events; gathering and writing the trace after the run: median "
          f"{statistics.median(write):.3f} s")
    per_span = span_cost()
    print(f"one span costs {per_span * 1e6:.2f} us here: {events} x that = "
          f"{100 * events * per_span / a.ranks / min(off):.2f} % of the fastest untraced run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
