"""Per-rank trace events in the Chrome trace-event format (opens in Perfetto and
chrome://tracing): sweeps, pack/unpack, MPI sends and waits, page reads and writes,
checkpoint writes, reductions.

Called by ``qgt.api`` (``start`` before the first step, ``finish`` after the last: the
ranks' events are gathered and rank 0 writes one JSON file) and by the engines, the
exchanger and the checkpoint policy through ``span``.  One tracer per process (a
simulation runs one at a time); when tracing is off ``span`` returns a shared no-op,
so an untraced run pays one attribute test per span.

Event layout: ``pid`` is the rank, ``tid`` the thread (the main thread runs the kernels
and MPI, ``qgt-io_0``/``qgt-io_1`` the page I/O), ``cat`` the resource the span
occupies (compute, memory, network, disk, checkpoint, reduction, step), timestamps in
microseconds from a barrier that all ranks leave together.
"""

from __future__ import annotations

import json
import threading
import time

CATEGORIES = ("step", "compute", "memory", "network", "wait", "disk", "checkpoint",
              "reduction")


class _NoSpan:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_SPAN = _NoSpan()


class _Span:
    __slots__ = ("tracer", "name", "cat", "args", "t0")

    def __init__(self, tracer, name, cat, args):
        self.tracer, self.name, self.cat, self.args = tracer, name, cat, args

    def __enter__(self):
        self.t0 = time.perf_counter_ns()
        return self

    def __exit__(self, *exc):
        self.tracer.add(self.name, self.cat, self.t0, time.perf_counter_ns(), self.args)
        return False


class Tracer:
    """Collects this rank's events in memory (a list append per span)."""

    def __init__(self, rank: int):
        self.rank = rank
        self.events: list[tuple] = []
        self.origin = time.perf_counter_ns()
        self.threads: dict[int, str] = {}

    def span(self, name: str, cat: str, args: dict | None = None):
        return _Span(self, name, cat, args)

    def add(self, name: str, cat: str, t0_ns: int, t1_ns: int, args: dict | None = None):
        tid = threading.get_ident()
        if tid not in self.threads:
            t = threading.current_thread()
            self.threads[tid] = "main" if t is threading.main_thread() else t.name
        self.events.append((name, cat, t0_ns, t1_ns, tid, args))

    def to_events(self) -> list[dict]:
        """Chrome trace 'complete' events (ph X) plus thread and process names."""
        out = [{"ph": "M", "name": "process_name", "pid": self.rank, "tid": 0,
                "args": {"name": f"rank {self.rank}"}}]
        order = sorted(self.threads, key=lambda t: (self.threads[t] != "main", self.threads[t]))
        for k, tid in enumerate(order):
            out.append({"ph": "M", "name": "thread_name", "pid": self.rank, "tid": tid,
                        "args": {"name": self.threads[tid]}})
            out.append({"ph": "M", "name": "thread_sort_index", "pid": self.rank, "tid": tid,
                        "args": {"sort_index": k}})
        for name, cat, t0, t1, tid, args in self.events:
            ev = {"ph": "X", "name": name, "cat": cat, "pid": self.rank, "tid": tid,
                  "ts": (t0 - self.origin) / 1000.0, "dur": (t1 - t0) / 1000.0}
            if args:
                ev["args"] = args
            out.append(ev)
        return out


_current: Tracer | None = None


def span(name: str, cat: str, args: dict | None = None):
    """A context manager timing one event of this rank, or a no-op when not tracing."""
    tr = _current
    if tr is None:
        return _NO_SPAN
    return _Span(tr, name, cat, args)


def active() -> bool:
    return _current is not None


def start(comm) -> Tracer:
    """Begin tracing on every rank: a barrier, then each rank's clock origin."""
    global _current
    comm.barrier()
    _current = Tracer(comm.rank)
    return _current


def finish(comm, path: str | None, metadata: dict | None = None) -> int:
    """Stop tracing; gather every rank's events and write ``path`` from rank 0.
    Returns the number of events written (0 on other ranks).  Each rank encodes its own
    events as JSON text (in parallel), so rank 0 only joins strings."""
    global _current
    tr, _current = _current, None
    if tr is None:
        return 0
    events = tr.to_events()
    text = json.dumps(events, separators=(",", ":"))[1:-1]  # the C encoder, on every rank
    gathered = comm.gather((len(events), text))
    if comm.rank != 0 or not path:
        return 0
    other = json.dumps({"producer": "qgt", **(metadata or {})}, separators=(",", ":"))
    with open(path, "w") as f:
        f.write('{"traceEvents":[')
        f.write(",".join(text for n, text in gathered if n))
        f.write(f'],"displayTimeUnit":"ms","otherData":{other}}}')
    return sum(n for n, _ in gathered)
