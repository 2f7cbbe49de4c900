"""Live progress of a run: what step, which phase, bytes moved, elapsed time and ETA.

Called by ``qgt.api`` after every plan step and at each phase change (checkpoint,
sampling, state-vector output), on rank 0 only.  The consumers:

- ``Display``: in a terminal a bar drawn by rich; without one (a batch log, such as a
  Slurm output file) one plain line every ``progress_interval`` seconds, from a timer
  thread so that a long step still reports;
- any callable of the Python API (``qgt.simulate(..., progress=fn)``): it gets a
  ``ProgressEvent`` after every step and phase change.  Front ends (the Qiskit backend)
  pass their own callable the same way.

The ETA weighs the steps left by the plan's predicted cost of each step
(``step_costs``), scaled by the time the steps done so far took: a global swap or an
out-of-core pass weighs more than an in-RAM sweep.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, replace

from qgt.plan.steps import ExpectStep, GlobalSwap, MeasureStep, Sweep
from qgt.precision import amp_bytes, of_plan
from qgt.units import format_size_approx as fmt

# when qgt calibrate has not run: the development machine's figures (MACHINE_FACTS.md)
DEFAULT_RATES = {"memory_pass_Bps": 34e9, "disk_read_Bps": 1.45e9, "disk_write_Bps": 1.86e9,
                 "exchange_Bps": 6.6e9}


@dataclass(frozen=True)
class ProgressEvent:
    """One report: ``step`` steps of ``n_steps`` done, now in ``phase``."""

    step: int
    n_steps: int
    phase: str  # sweep, page I/O, global swap, measurement, expectation, checkpoint, ...
    bytes_moved: int  # this rank's bytes exchanged + read + written so far
    elapsed: float  # seconds since the first step started
    eta: float | None  # seconds left, from the plan's predicted costs; None before step 1
    fraction: float  # predicted share of the work done, 0..1

    def line(self) -> str:
        eta = "?" if self.eta is None else _hms(self.eta)
        return (f"qgt: step {self.step}/{self.n_steps} ({100 * self.fraction:.0f}%) "
                f"{self.phase}, {fmt(self.bytes_moved)} moved, elapsed {_hms(self.elapsed)}, "
                f"eta {eta}")


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def step_phase(step, out_of_core: bool) -> str:
    if isinstance(step, Sweep):
        return "page I/O + sweep" if out_of_core else "sweep"
    if isinstance(step, GlobalSwap):
        return "global swap (pages)" if out_of_core else "global swap"
    if isinstance(step, MeasureStep):
        return "measurement"
    if isinstance(step, ExpectStep):
        return "expectation"
    return type(step).__name__


def step_costs(plan, rates: dict | None = None) -> list[float]:
    """Predicted seconds of each step (relative weights are what the ETA uses)."""
    r = {**DEFAULT_RATES, **(rates or {})}
    slice_bytes = amp_bytes(of_plan(plan)) << plan.local_bits
    ooc = bool(plan.page_floor)
    mem = slice_bytes * 2 / r["memory_pass_Bps"]
    disk = slice_bytes / r["disk_read_Bps"] + slice_bytes / r["disk_write_Bps"]
    out = []
    for s in plan.steps:
        if isinstance(s, GlobalSwap):
            moved = (1 - 2.0 ** -len(s.pairs)) * slice_bytes
            out.append(moved / r["exchange_Bps"] + (2 * moved / (r["disk_read_Bps"] +
                                                                 r["disk_write_Bps"]) if ooc
                                                    else 0.0))
        elif isinstance(s, Sweep):
            out.append(max(mem, disk) if ooc else mem)
        else:  # reductions read the slice once
            out.append(slice_bytes / (r["disk_read_Bps"] if ooc else r["memory_pass_Bps"]))
    return out


class Tracker:
    """Turns step completions into ProgressEvents for one consumer (rank 0 only)."""

    def __init__(self, consumer, plan, rates: dict | None = None, repeats: int = 1):
        self.consumer = consumer
        self.n = len(plan.steps)
        self.ooc = bool(plan.page_floor)
        costs = step_costs(plan, rates) * max(1, repeats)
        self.costs = costs
        self.total = sum(costs) or 1.0
        self.done_cost = 0.0
        self.done = 0
        self.t0 = time.perf_counter()
        self.plan = plan

    def step_done(self, i: int, bytes_moved: int) -> None:
        self.done_cost += self.costs[min(self.done, len(self.costs) - 1)]
        self.done += 1
        nxt = self.plan.steps[(i + 1) % self.n] if self.n else None
        phase = step_phase(nxt, self.ooc) if nxt is not None and i + 1 < self.n else "finishing"
        self.emit(phase, bytes_moved)

    def phase(self, phase: str, bytes_moved: int) -> None:
        self.emit(phase, bytes_moved)

    def emit(self, phase: str, bytes_moved: int) -> None:
        elapsed = time.perf_counter() - self.t0
        frac = 1.0 if self.done >= len(self.costs) else min(1.0, self.done_cost / self.total)
        eta = elapsed * (1 - frac) / frac if frac > 0 else None
        self.consumer(ProgressEvent(min(self.done, self.n), self.n, phase, int(bytes_moved),
                                    elapsed, eta, frac))

    def close(self) -> None:
        close = getattr(self.consumer, "close", None)
        if close:
            close()


class Display:
    """The command line's consumer: a rich bar on a terminal, else plain lines every
    ``interval`` seconds (and a last one at the end)."""

    def __init__(self, interval: float = 30.0, stream=None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self.last: ProgressEvent | None = None
        self._at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar = self._task = self._thread = None
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(TextColumn("qgt"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[phase]}"),
                                 TextColumn("{task.fields[moved]}"), TimeElapsedColumn(),
                                 TextColumn("eta {task.fields[eta]}"),
                                 console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("run", total=None, phase="planning", moved="",
                                            eta="?")
        elif interval > 0:
            self._thread = threading.Thread(target=self._tick, name="qgt-progress", daemon=True)
            self._thread.start()

    def __call__(self, ev: ProgressEvent) -> None:
        with self._lock:
            self.last, self._at = ev, time.perf_counter()
        if self._bar is not None:
            self._bar.update(self._task, total=ev.n_steps, completed=ev.step, phase=ev.phase,
                             moved=fmt(ev.bytes_moved),
                             eta="?" if ev.eta is None else _hms(ev.eta))

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._print()

    def _print(self, final: bool = False) -> None:
        with self._lock:
            ev, at = self.last, self._at
        if ev is None:
            return
        if not final:  # a long step: the clock goes on since its last report
            dt = time.perf_counter() - at
            ev = replace(ev, elapsed=ev.elapsed + dt,
                         eta=None if ev.eta is None else max(0.0, ev.eta - dt))
        print(ev.line(), file=self.stream, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._bar is not None:
            self._bar.stop()
        else:
            if self._thread is not None:
                self._thread.join()
            self._print(final=True)


def make_consumer(progress, cfg, rank: int):
    """What ``simulate(progress=...)`` means on this rank: None (the ``progress`` key
    decides), True/False, or a callable taking a ProgressEvent.  Rank 0 only."""
    if rank != 0 or progress is False:
        return None
    if callable(progress):
        return progress
    if progress is True or (progress is None and cfg.progress):
        return Display(cfg.progress_interval)
    return None
