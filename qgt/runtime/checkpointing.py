"""When and how a run checkpoints: triggers (every T seconds, every N steps, a stop
signal, the end) and the collective that writes one between plan steps.

Called by ``qgt.api`` between plan steps.  A checkpoint always holds the state in
logical order, so it can resume on any number of ranks: the current layout is
restored first (a few global swaps and a bit-swap sweep) and undone afterwards.
"""

from __future__ import annotations

import json
import time

import numpy as np

from qgt.errors import Preempted
from qgt.obs import logs, trace
from qgt.plan.planner import restore_steps, undo_steps
from qgt.runtime import signals


class CheckpointPolicy:
    """Decides, identically on every rank, whether to checkpoint after a step."""

    def __init__(self, cfg, comm, circuit_hash: str, done: set[int]):
        from qgt.io.checkpoint import Checkpointer

        self.cfg = cfg
        self.comm = comm
        self.circuit_hash = circuit_hash
        self.done = set(done)
        self.enabled = bool(cfg.checkpoint_dir)
        self.writer = Checkpointer(cfg.checkpoint_dir, cfg.checkpoint_keep, comm) \
            if self.enabled else None
        self.last = time.monotonic()
        self.steps = 0
        self.written: list[str] = []
        self.seconds = 0.0
        self.on_write = None  # called before each checkpoint (progress shows the phase)

    def after_step(self, engine, plan, i: int, elapsed: float) -> None:
        """Record the step's items; checkpoint (and maybe stop) if a trigger fired."""
        self.done.update(getattr(plan.steps[i], "items", ()))
        if not self.enabled:
            return
        self.steps += 1
        timed = (self.cfg.checkpoint_interval > 0 and self.comm.rank == 0
                 and time.monotonic() - self.last >= self.cfg.checkpoint_interval)
        every = self.cfg.checkpoint_every_steps
        flags = np.array([signals.pending() is not None, timed], dtype=np.int64)
        # one tiny allreduce per step: a signal may reach the ranks at different times
        stop, timed = self.comm.allreduce_sum(flags) > 0
        if stop or timed or (every and self.steps % every == 0):
            path = self.write(engine, plan, plan.layouts[i], elapsed)
            if stop:
                raise Preempted(f"checkpointed to {path} after {signals.pending() or 'a signal'} "
                                "on some rank; run again with --resume to continue")

    def write(self, engine, plan, layout, elapsed: float) -> str:
        t = time.perf_counter()
        if self.on_write is not None:
            self.on_write()
        engine.flush()
        restore = restore_steps(plan, layout)
        engine.run(restore)
        executed = np.zeros(plan.n_items, dtype=np.uint8)
        executed[sorted(self.done)] = 1
        attrs = {
            "circuit_hash": self.circuit_hash, "plan_hash": plan.digest(),
            "step": len(self.done), "n_qubits": plan.n_qubits,
            "layout": np.arange(plan.n_qubits), "clbits": str(engine.clbits),
            "rng_state": json.dumps(engine.rng.bit_generator.state),
            "config": json.dumps(self.cfg.to_dict()),
            "trajectory": 0, "elapsed": float(elapsed),
        }
        with trace.span("write checkpoint", "checkpoint"):
            path = self.writer.write(engine.local_state(), attrs, executed)
        engine.run(undo_steps(restore))
        self.written.append(path)
        self.last = time.monotonic()
        self.seconds += time.perf_counter() - t
        logs.get().info("checkpoint %s written after %d of %d circuit items (%.2f s)", path,
                        len(self.done), plan.n_items, time.perf_counter() - t)
        return path


def restore_engine(engine, path: str, meta: dict) -> None:
    """Load a checkpoint's state, classical bits and random stream into ``engine``."""
    engine.load_checkpoint(path)
    engine.clbits = int(meta["clbits"])
    engine.rng.bit_generator.state = json.loads(meta["rng_state"])
