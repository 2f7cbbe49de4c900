"""What ``qgt.api``'s plan loop reports while it runs: logging, progress, the trace, and
the per-step table the result records.

Called by ``qgt.api._execute`` on every rank: ``begin`` before the first step (output
paths checked, logging configured, tracing started), ``step`` after each plan step,
``phase`` at each phase change, ``finish`` after the last collective.  Keeps the
plan loop itself to a few calls.
"""

from __future__ import annotations

import time

from qgt.errors import UserError
from qgt.io.paths import first_error, writable_dir, writable_file
from qgt.obs import logs, progress, trace
from qgt.plan.steps import DENSE, DIAG, ExpectStep, GlobalSwap, MeasureStep, Sweep
from qgt.precision import amp_bytes, of_plan
from qgt.units import format_size_approx as fmt


def step_kind(step) -> str:
    if isinstance(step, Sweep):
        return "sweep"
    if isinstance(step, GlobalSwap):
        return "global_swap"
    if isinstance(step, MeasureStep):
        return "measure"
    if isinstance(step, ExpectStep):
        return "expectation"
    return type(step).__name__


def output_errors(r, slice_bytes: int, rank: int, local_size: int) -> str | None:
    """This rank's verdict on the run's output paths, before anything runs: the state
    vector and checkpoint files (every rank writes its own; a node holds ``local_size``
    of them) and the trace (rank 0 writes it)."""
    node = slice_bytes * local_size
    return first_error(
        writable_file(r.statevector, "--statevector", node) if r.statevector else None,
        writable_dir(r.cfg.checkpoint_dir, "checkpoint_dir", node)
        if r.cfg.checkpoint_dir else None,
        writable_file(r.trace, "--trace") if getattr(r, "trace", None) and rank == 0 else None,
    )


class RunObserver:
    """Logging, progress and tracing of one run on one rank."""

    def __init__(self, r, engine):
        self.r, self.engine, self.comm, self.plan = r, engine, r.comm, r.plan
        self.log = logs.configure(r.cfg.log_level, self.comm.rank)
        self.tracker = None
        self.tracing = False

    def begin(self) -> None:
        r, comm, plan = self.r, self.comm, self.plan
        slice_bytes = amp_bytes(of_plan(plan)) << plan.local_bits
        err = comm.agree(output_errors(r, slice_bytes, comm.rank, comm.local_size))
        if err:
            raise UserError(err)
        d = plan.decisions
        self.log.info("%d qubits on %d ranks: %s tier, %d local qubits per rank; plan %d steps "
                      "(%d sweeps, %d global swaps), decisions %s", plan.n_qubits, comm.size,
                      self.engine.storage, plan.local_bits, len(plan.steps), r.figs["sweeps"],
                      r.figs["global_swaps"], d)
        self.log.info("binding %s, %d threads", r.binding, r.threads, extra=logs.EVERY_RANK)
        consumer = progress.make_consumer(getattr(r, "progress", None), r.cfg, comm.rank)
        if consumer is not None:
            from qgt.bench.calibrate import cached
            from qgt.runtime.capacity import scratch_dir

            rates = cached(scratch_dir(r.cfg))
            repeats = max(1, r.shots) if plan.trajectories else 1
            self.tracker = progress.Tracker(consumer, plan, rates, repeats)

    def start(self) -> None:
        """Collective when tracing: all ranks start their clocks after one barrier, just
        before the first step."""
        if getattr(self.r, "trace", None):
            trace.start(self.comm)
            self.tracing = True

    def step(self, i: int, step, rec: dict) -> None:
        if self.log.isEnabledFor(10):  # debug: one line per step and rank
            parts = [f"{k} {fmt(v)}" if k.startswith("bytes_") else f"{k} {1e3 * v:.3f} ms"
                     for k, v in rec.items() if k != "seconds"]
            self.log.debug("step %d %s: %.3f ms (%s)", i, step_kind(step), 1e3 * rec["seconds"],
                           ", ".join(parts), extra=logs.EVERY_RANK)
        if self.tracker is not None:
            self.tracker.step_done(i, sum(self.engine.bytes_moved().values()))

    def phase(self, name: str) -> None:
        if self.tracker is not None:
            self.tracker.phase(name, sum(self.engine.bytes_moved().values()))

    def span(self, name: str, cat: str):
        return trace.span(name, cat)

    def close(self) -> None:
        """Stop the progress display (also when the run fails)."""
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None

    def finish(self) -> dict:
        """Collective: write the trace; returns the result's per-step metadata."""
        self.close()
        out = {"steps": step_table(self.plan, self.comm.allgather(self.engine.step_log))}
        if self.tracing:
            t = time.perf_counter()
            n = trace.finish(self.comm, self.r.trace, {"circuit": self.r.name,
                                                       "ranks": self.comm.size})
            out["trace"] = {"path": self.r.trace, "events": n,
                            "write_seconds": time.perf_counter() - t}
        return out


def step_table(plan, logs_per_rank: list[dict]) -> list[dict]:
    """Per plan step: what it was, and per rank (lists in rank order) its seconds,
    engine timings and bytes read, written and exchanged."""
    slice_bytes = amp_bytes(of_plan(plan)) << plan.local_bits
    rows = []
    for i, s in enumerate(plan.steps):
        row = {"step": i, "kind": step_kind(s)}
        if isinstance(s, Sweep):
            row["ops"] = len(s.ops)
            row["max_op_qubits"] = max([len(op.targets) for op in s.ops] + [0])
            row["flops"] = sweep_flops(s, plan.local_bits)
        elif isinstance(s, GlobalSwap):
            row["pairs"] = len(s.pairs)
            row["predicted_exchange_bytes"] = int((1 - 2.0 ** -len(s.pairs)) * slice_bytes)
        recs = [lg.get(i, lg.get(str(i), {})) for lg in logs_per_rank]
        keys = sorted({k for rec in recs for k in rec})
        for k in keys:
            row[k] = [rec.get(k, 0) for rec in recs]
        rows.append(row)
    return rows


def sweep_flops(s: Sweep, local_bits: int) -> int:
    """Floating-point operations of a sweep on one rank: a dense k-qubit op does 2^k
    complex multiply-adds (8 flops) per amplitude, a diagonal one a complex multiply."""
    per_amp = 0
    for op in s.ops:
        if op.kind == DENSE:
            per_amp += 8 << len(op.targets)
        elif op.kind == DIAG:
            per_amp += 6
    return per_amp << local_bits
