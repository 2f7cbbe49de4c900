"""Execute a Plan on one rank: sweeps through the kernels, global swaps through the
exchanger, measurements and expectation values through reductions.

Called by ``qgt.api.simulate`` on every rank, which all run the same steps in the
same order (so every collective is matched) and draw the same random numbers.
``Engine`` keeps the slice in RAM; ``qgt.runtime.ooc.OocEngine`` overrides the
methods marked "storage" to keep it in pages on disk.
"""

from __future__ import annotations

import time

import numpy as np

from qgt import _kern
from qgt.errors import InternalError
from qgt.obs import trace
from qgt.plan.steps import DENSE, DIAG, SWAPBITS, ExpectStep, GlobalSwap, MeasureStep, PhysOp, Sweep
from qgt.precision import dtype, of_plan
from qgt.runtime.blockperm import block_permutation
from qgt.runtime.exchange import Exchanger
from qgt.runtime.overlap import alongside, split_for
from qgt.runtime.pagestore import aligned_empty

SMALL_SLICE_BITS = 14  # below 2^14 amplitudes a rank runs its kernels on one thread
_KIND = {DENSE: _kern.KIND_DENSE, DIAG: _kern.KIND_DIAG, SWAPBITS: _kern.KIND_SWAPBITS}


def condition_holds(cond, clbits: int) -> bool:
    if cond is None:
        return True
    got = sum(((clbits >> c) & 1) << i for i, c in enumerate(cond.clbits))
    return (got == cond.value) == getattr(cond, "equal", True)


def zero_parts(zero_mask: int, L: int, base: int, parts) -> list[tuple[int, int]]:
    """The (fixed mask, value) parts of a slice to sweep, with the local bits known to
    hold |0> (``Sweep.zero_mask``) fixed at 0: a part where such a bit reads 1, or a
    slice whose rank bits do, holds only zeros, which every op leaves zero."""
    if base & zero_mask:
        return []
    z = zero_mask & ((1 << L) - 1)
    return [(m | z, v) for m, v in parts if not v & z]


def kernel_op(op: PhysOp, matrix=None) -> tuple:
    """``op`` (or ``matrix`` on its targets and controls) as a qgt_kern op tuple."""
    return (_KIND[op.kind], op.targets, op.ctrl_mask, op.ctrl_val,
            np.ascontiguousarray(op.matrix if matrix is None else matrix, dtype=complex))


def pack(ops) -> _kern.OpList:
    return _kern.OpList([kernel_op(op) for op in ops])


class Engine:
    """One rank's state slice (in RAM) and the machinery to run plan steps on it."""

    storage = "ram"

    def __init__(self, plan, comm, threads: int, exchange_chunk: int, rng: np.random.Generator,
                 huge_pages: bool = False, overlap: bool = True):
        self.huge_pages = huge_pages
        # a sweep followed by a global swap sweeps the kept part during the exchange
        self.overlap = overlap and comm.size > 1
        self._next_step = None  # the plan step after the one running (timed_step)
        self._deferred = None  # (pairs, wbits, packed ops, kept parts): not yet swept
        self.overlapped_swaps = 0
        self.block_moves = 0  # sweeps run as block moves (qgt.runtime.blockperm)
        self.plan = plan
        self.dtype = dtype(of_plan(plan))  # complex128, or complex64 in single precision
        self.comm = comm
        self.L = plan.local_bits
        self.base = comm.rank << self.L
        # a small slice is done before a second thread has woken: threads only cost there
        # (54 ms against 3 ms per run for 4 qubits with 2 threads on a loaded machine)
        self.threads = threads if self.L >= SMALL_SLICE_BITS else 1
        self.rng = rng
        self.timings = {"compute": 0.0, "communication": 0.0, "reductions": 0.0}
        self.passes = 0
        self.step_log: dict[int, dict] = {}  # per plan step: seconds and bytes (timed_step)
        self._allocate(exchange_chunk)
        self.reset_state()

    # ---- storage -------------------------------------------------------------------
    def _allocate(self, exchange_chunk: int) -> None:
        self.exchanger = Exchanger(self.comm, exchange_chunk, self.dtype)
        self.state = aligned_empty(1 << self.L, self.huge_pages, self.dtype)
        self._fresh = True  # an anonymous mapping reads as zeros until written

    # The state buffer, read through a property: whoever takes it may write it, so the
    # engine no longer knows it holds |0...0> and the next reset zeroes it.  A buffer
    # that does (just allocated, or reset and not touched since) is not zeroed again:
    # that would be a pass over the slice, inside the run's time.
    keeps_pristine = True  # every change goes through .state or run_step (not pages)
    _fresh = False  # the buffer is all zeros (a fresh anonymous mapping)
    _pristine = False  # the buffer holds |0...0>

    @property
    def state(self) -> np.ndarray:
        self._pristine = False
        return self._state

    @state.setter
    def state(self, value: np.ndarray) -> None:
        self._state = value

    def _set_zero_state(self) -> None:
        st = self._state
        if not self._fresh:
            st[:] = 0
        self._fresh = False
        if self.comm.rank == 0:
            st[0] = 1.0
        self._pristine = self.keeps_pristine

    def _apply_sweep(self, step: Sweep, ops: list[PhysOp]) -> None:
        whole = not self.pending and len(ops) == len(step.ops)
        ops, self.pending = self.pending + ops, []
        packed = pack(ops)
        if whole:  # the adjoint pass walks these back (packed_ops)
            self._packed[id(step)] = (step, packed)
        moves = block_permutation(ops, self.L, self.base, step.zero_mask | step.zero_wbits,
                                  self.dtype.itemsize)
        if moves is not None:  # only moves whole blocks: no gather, nothing to overlap
            _kern.permute_blocks(self.state, *moves, self.threads)
            self.block_moves += 1
            return
        split = split_for(step.wbits, self._next_step, self.L, self.comm.rank) \
            if self.overlap else None
        wbits = list(step.wbits)
        for fixed in zero_parts(step.zero_mask, self.L, self.base,
                                split.sent if split else [(0, 0)]):
            _kern.sweep(self.state, self.L, self.base, wbits, packed, self.threads,
                        fixed=fixed)  # with an overlap, the parts the swap sends: now
        if split is not None:  # the part it keeps: during the swap
            self._deferred = (split.pairs, wbits, packed,
                              zero_parts(step.zero_mask, self.L, self.base, [split.kept]))

    def _sweep_kept(self) -> None:
        """Sweep the part a deferred sweep left (qgt.runtime.overlap)."""
        _, wbits, packed, kept = self._deferred
        self._deferred = None
        for fixed in kept:
            _kern.sweep(self.state, self.L, self.base, wbits, packed, self.threads,
                        fixed=fixed)

    def packed_ops(self, step: Sweep) -> _kern.OpList:
        """``step``'s ops as this run's sweep packed them (all of them ran), else packed
        now."""
        held = self._packed.get(id(step))
        return held[1] if held is not None and held[0] is step else pack(step.ops)

    def _global_swap(self, pairs) -> None:
        def exchange() -> None:
            self.exchanger.global_swap(self.state, self.L, pairs)

        if self._deferred is not None and self._deferred[0] == tuple(pairs):
            alongside(self._sweep_kept, exchange)
            self.overlapped_swaps += 1
        else:
            self.settle()
            exchange()

    def settle(self) -> None:
        """Finish a sweep deferred for overlap, so that the whole slice is current."""
        if self._deferred is not None:
            self._sweep_kept()

    def _marginal(self, bits) -> np.ndarray:
        return _kern.marginal(self.state, self.L, self.base, list(bits), self.threads)

    def _pauli(self, step: ExpectStep) -> np.ndarray:
        return _kern.pauli_group(self.state, self.L, self.base, step.xmask, step.zmasks,
                                 self.threads)

    def _sample_local(self, targets: np.ndarray) -> np.ndarray:
        return _kern.sample_sorted(self.state, np.ascontiguousarray(targets))

    def chunks(self):
        """The slice in order, as (offset, array) pieces (outputs and checkpoints)."""
        yield 0, self.state

    def local_state(self) -> np.ndarray:
        """The slice for a checkpoint (logical order)."""
        return self.state

    def load_checkpoint(self, path: str) -> None:
        """This rank's range of a checkpoint's logical-order state (any writer rank count)."""
        from qgt.io.checkpoint import read_range

        read_range(path, self.comm.rank << self.L, self.state)

    def bytes_moved(self) -> dict:
        return {"exchanged": self.exchanger.bytes_sent, "read": 0, "written": 0}

    def io_report(self) -> dict:
        """What this rank moved and held (the result's metadata)."""
        return {**self.bytes_moved(), "buffer_bytes": self.exchanger.buffer_bytes,
                "overlapped_swaps": self.overlapped_swaps, "block_move_sweeps": self.block_moves}

    def close(self) -> None:
        pass

    _reader, _shots = "state", 0  # what reads the state after the last step

    def finish_with(self, reader: str, shots: int) -> None:
        """Say what reads the state once the plan's steps are done: "state" (the
        gathered state, a checkpoint, several readers), "file" (the state file alone,
        through ``chunks`` once), "samples" (``shots`` of them) or "nothing".  In RAM
        that changes nothing; out of core the last sweep need not write back."""
        self._reader, self._shots = reader, shots

    # ---- steps ---------------------------------------------------------------------
    def reset_state(self) -> None:
        self._deferred = None
        if not self._pristine:
            self._set_zero_state()
        self.clbits = 0
        self.pending: list[PhysOp] = []
        self.expectations: dict[int, float] = {}
        self._packed: dict[int, tuple] = {}  # id(sweep) -> (sweep, its packed ops)

    def run(self, steps=None) -> None:
        for step in (self.plan.steps if steps is None else steps):
            self.run_step(step)
        self.flush()

    def timed_step(self, i: int, step) -> dict:
        """``run_step`` with its wall time, the engine's timing and byte counters it moved,
        and a trace span; accumulated per step index (trajectories rerun the plan)."""
        before, moved = dict(self.timings), self.bytes_moved()
        t = time.perf_counter()
        cat = "step" if isinstance(step, (Sweep, GlobalSwap)) else "reduction"
        nxt = self.plan.steps[i + 1] if i + 1 < len(self.plan.steps) else None
        self._next_step = nxt if self.plan.steps[i] is step else None
        try:
            with trace.span(type(step).__name__, cat, {"step": i}):
                self.run_step(step)
        finally:
            self._next_step = None
        rec = self.step_log.setdefault(i, {"seconds": 0.0})
        rec["seconds"] += time.perf_counter() - t
        for k, v in self.timings.items():
            if v != before.get(k, 0.0):
                rec[k] = rec.get(k, 0.0) + v - before.get(k, 0.0)
        for k, v in self.bytes_moved().items():
            if v != moved[k]:
                rec[f"bytes_{k}"] = rec.get(f"bytes_{k}", 0) + v - moved[k]
        return rec

    def run_step(self, step) -> None:
        self._pristine = False
        if isinstance(step, Sweep):
            self._sweep(step)
            return
        self._next_step = None  # collapses applied below are not followed by this step
        if not isinstance(step, GlobalSwap):
            self.settle()
        self._apply_pending()
        if isinstance(step, GlobalSwap):
            t = time.perf_counter()
            self._global_swap(step.pairs)
            self.timings["communication"] += time.perf_counter() - t
        elif isinstance(step, MeasureStep):
            self._measure(step)
        elif isinstance(step, ExpectStep):
            self._expect(step)
        else:
            raise InternalError(f"unknown plan step {type(step).__name__}")

    def flush(self) -> None:
        """Bring the slice up to date: a sweep deferred for overlap, then collapses still
        pending from a measurement (before data moves or is read)."""
        self.settle()
        self._apply_pending()

    def _apply_pending(self) -> None:
        if self.pending:
            self._sweep(Sweep(tuple(range(min(self.plan.block_qubits, self.L))), ()))

    def _sweep(self, step: Sweep) -> None:
        ops = [op for op in step.ops if condition_holds(op.condition, self.clbits)]
        if not ops and not self.pending:
            return
        t = time.perf_counter()
        # in RAM the sweep is the kernel; out of core it holds page I/O spans as well
        with trace.span("sweep", "compute" if self.storage == "ram" else "step",
                        {"ops": len(ops)}):
            self._apply_sweep(step, ops)
        self.timings["compute"] += time.perf_counter() - t
        self.passes += 1

    # ---- reductions ----------------------------------------------------------------
    def _measure(self, step: MeasureStep) -> None:
        t = time.perf_counter()
        probs = self.comm.allreduce_sum(self._marginal(step.bits))
        total = probs.sum()
        outcome = int(np.searchsorted(np.cumsum(probs), self.rng.random() * total, side="right"))
        outcome = min(outcome, len(probs) - 1)
        p = probs[outcome] / total
        for i, (b, c) in enumerate(zip(step.bits, step.clbits)):
            bit = (outcome >> i) & 1
            self.clbits = (self.clbits & ~(1 << c)) | (bit << c)
            proj = np.array([1.0, 0.0] if bit == 0 else [0.0, 1.0], dtype=complex)
            self.pending.append(PhysOp(DIAG, (b,), proj, name="collapse"))
        self.pending.append(PhysOp(DIAG, (), np.array([1 / np.sqrt(p)], dtype=complex),
                                   name="renormalise"))
        self.timings["reductions"] += time.perf_counter() - t

    def _expect(self, step: ExpectStep) -> None:
        t = time.perf_counter()
        vals = self._pauli(step)
        tot = self.comm.allreduce_sum(np.concatenate([vals.real, vals.imag]))
        k = len(step.indices)
        for j, (index, ny) in enumerate(zip(step.indices, step.nys)):
            self.expectations[index] = float((complex(tot[j], tot[k + j]) * 1j ** ny).real)
        self.timings["reductions"] += time.perf_counter() - t

    def sample(self, shots: int) -> np.ndarray:
        """Global indices of ``shots`` samples of the final state (identity layout).

        Every rank draws the same sorted uniforms and serves those falling in its part
        of the cumulative distribution, so the counts do not depend on the rank count.
        """
        t = time.perf_counter()
        local = float(self._marginal([])[0])
        totals = np.array(self.comm.allgather(local))
        offsets = np.concatenate([[0.0], np.cumsum(totals)])
        u = np.sort(self.rng.random(shots)) * offsets[-1]
        lo, hi = offsets[self.comm.rank], offsets[self.comm.rank + 1]
        last = self.comm.rank == self.comm.size - 1
        mine = u[(u >= lo) & ((u < hi) | last)] if totals[self.comm.rank] > 0 else u[:0]
        idx = self._sample_local(mine - lo) if len(mine) else np.zeros(0, dtype=np.int64)
        gathered = self.comm.allgather(idx.astype(np.int64) + self.base)
        self.timings["reductions"] += time.perf_counter() - t
        return np.concatenate(gathered)
