"""The out-of-core engine: the same plan steps, with the slice in pages on disk.

Used by ``qgt.api.simulate`` when the slice does not fit ``memory_limit`` (or
``storage=ssd``).  Each outer sweep is one pass over the rank's page groups in a fixed
order.  An I/O thread reads group k+d while the kernels run group k's inner,
cache-blocked plan and another thread writes group k-1 back.  Groups whose pages are
all zero are skipped: every operation is linear and acts inside a group, so zero in
means zero out.

    page group (2^group_bits amplitudes, RAM)       pages on disk (2^p amplitudes each)
    [ page a | page b | page c | page d ]   <-->   a, b, c, d differ only in the group's
                                                   page bits; other page bits fixed

Global swaps only exchange page bits (the planner never evicts in-page bits), so a part
sent to a partner is a set of whole pages: each is read, sent, and the partner's page is
received and written in its place.  Zero pages are announced, not sent.
RAM used: (prefetch_depth + 2) group buffers and four page buffers.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from qgt import _kern
from qgt.errors import InternalError
from qgt.obs import trace
from qgt.plan.planner import virtual_map
from qgt.plan.steps import ExpectStep, Sweep
from qgt.runtime.engine import Engine, condition_holds, pack, zero_parts
from qgt.runtime.pagestore import PageStore, aligned_empty
from qgt.runtime.streamsample import StreamSampler


def _extract(values: np.ndarray, bits: list[int]) -> np.ndarray:
    """Gather bit bits[i] of each value into bit i (the inverse of ``_deposit``)."""
    out = np.zeros(len(values), dtype=np.int64)
    for i, b in enumerate(bits):
        out |= ((values >> b) & 1) << i
    return out


def _deposit(values: np.ndarray, bits: list[int]) -> np.ndarray:
    """Scatter bit i of each value to bit position bits[i]."""
    out = np.zeros(len(values), dtype=np.int64)
    for i, b in enumerate(bits):
        out |= ((values >> i) & 1) << b
    return out


class OocEngine(Engine):
    """One rank's slice in a PageStore, streamed through a ring of group buffers."""

    storage = "ssd"
    keeps_pristine = False  # pages change without going through .state

    def __init__(self, plan, comm, threads: int, rng, scratch_dir: str, direct_io: bool,
                 sparse: bool, prefetch_depth: int, huge_pages: bool = False):
        self.p = plan.page_floor
        self.scratch_dir = scratch_dir
        self.direct_io = direct_io
        self.sparse = sparse
        self.depth = prefetch_depth
        super().__init__(plan, comm, threads, 0, rng, huge_pages)

    # ---- storage -------------------------------------------------------------------
    def _allocate(self, _exchange_chunk: int) -> None:
        self.store = PageStore(self.scratch_dir, self.comm.rank, self.L, self.p,
                               self.direct_io, self.sparse, self.dtype.itemsize)
        self.pa = 1 << self.p
        self.group_bits = self.plan.block_qubits
        self.ring = [aligned_empty(1 << self.group_bits, self.huge_pages, self.dtype)
                     for _ in range(self.depth + 2)]
        self.pbufs = [aligned_empty(self.pa, dtype=self.dtype) for _ in range(4)]
        self.io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="qgt-io")
        self.bytes_exchanged = 0
        self._totals = None
        self.timings["io_wait"] = 0.0  # the kernels' thread waiting for a group read
        # what became of the last sweep's groups: "written" back, "dropped" (nothing
        # reads them), "sampled" (StreamSampler), or sent "in_writer" (chunks)
        self.last_sweep = "written"
        self._to_writer = None  # (wbits, kernels): the last sweep, left to chunks()
        self._presampled = None  # the shots the last sweep drew (StreamSampler)

    def ram_bytes(self) -> int:
        return sum(b.nbytes for b in self.ring) + sum(b.nbytes for b in self.pbufs)

    def _set_zero_state(self) -> None:
        self.store.clear()
        self.last_sweep, self._to_writer, self._presampled = "written", None, None
        if self.comm.rank == 0:
            buf = self.pbufs[0]
            buf[:] = 0
            buf[0] = 1.0
            self.store.write(0, buf)

    def close(self) -> None:
        self.io.shutdown(wait=True)
        self.store.close()

    def bytes_moved(self) -> dict:
        return {"exchanged": self.bytes_exchanged, "read": self.store.bytes_read,
                "written": self.store.bytes_written}

    def io_report(self) -> dict:
        return {**self.bytes_moved(), "buffer_bytes": self.ram_bytes(),
                "last_sweep_written": self.last_sweep == "written",
                "last_sweep_in_writer": self.last_sweep == "in_writer",
                "sampled_in_last_sweep": self.last_sweep == "sampled",
                "page_bytes": self.store.page_bytes, "group_bits": self.group_bits,
                "max_pages_stored": self.store.max_pages_stored,
                "file_bytes_on_disk": self.store.allocated_bytes()}

    def _page_base(self, page: int) -> int:
        return self.base | (page << self.p)

    # ---- page groups ---------------------------------------------------------------
    def _groups(self, wbits) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
        """The groups holding a stored page: their pages (rows, in buffer order), their
        indices (bit k <-> outside[k]), and the page bits inside and outside a group.
        Built from the stored pages only, so a sparse state of 2^40 pages costs what its
        few stored pages do; groups with none are all zero and skipped."""
        inside = [b - self.p for b in wbits if b >= self.p]
        outside = [b - self.p for b in range(self.p, self.L) if b not in set(wbits)]
        in_mask = sum(1 << b for b in inside)
        bases = np.unique(self.store.stored() & ~np.int64(in_mask))
        offs = _deposit(np.arange(1 << len(inside)), inside)
        return bases[:, None] + offs[None, :], _extract(bases, outside), inside, outside

    def _for_groups(self, wbits, work, write_back: bool = True) -> None:
        """Read each non-zero group into a ring buffer, ``work(buf, group_index, pages)``,
        write it back (unless the pass only reads); reads run ``depth`` groups ahead,
        writes one behind."""
        for buf, gi, pages in self._iter_groups(wbits, write_back):
            with trace.span("kernels", "compute", {"group": gi}):
                work(buf, gi, pages)

    def _iter_groups(self, wbits, write_back: bool = True):
        """The ring of ``_for_groups`` as a generator: each non-zero group's buffer, its
        index and its pages, written back (unless not) once the caller asks for the
        next; the buffer stays untouched until then."""
        self._check_written()
        pages, index, _, _ = self._groups(wbits)
        live = np.arange(len(pages))
        slots = len(self.ring)
        reads, writes = {}, {}

        def load(k):
            slot = k % slots
            if slot in writes:
                writes.pop(slot).result()
            reads[k] = self.io.submit(self._read_group, pages[live[k]], self.ring[slot])

        for k in range(min(self.depth, len(live))):
            load(k)
        for k, gi in enumerate(live):
            if k + self.depth < len(live):
                load(k + self.depth)
            t = time.perf_counter()
            with trace.span("wait read", "wait"):
                reads.pop(k).result()
            self.timings["io_wait"] += time.perf_counter() - t
            buf = self.ring[k % slots]
            yield buf, int(index[gi]), pages[gi]
            if write_back:
                writes[k % slots] = self.io.submit(self._write_group, pages[gi], buf)
        for f in writes.values():
            f.result()

    def _check_written(self) -> None:
        if self.last_sweep != "written" or self._to_writer is not None:
            raise InternalError("the state is read after a last sweep that wrote nothing "
                                "back (the run said only samples, or nothing, would read it)")

    def _read_group(self, pages, buf) -> None:
        self._check_written()  # (the adjoint pass reads groups itself)
        with trace.span("read group", "disk", {"pages": len(pages)}):
            for i, pg in enumerate(pages):
                self.store.read(int(pg), buf[i * self.pa:(i + 1) * self.pa])

    def _write_group(self, pages, buf) -> None:
        with trace.span("write group", "disk", {"pages": len(pages)}):
            for i, pg in enumerate(pages):
                self.store.write(int(pg), buf[i * self.pa:(i + 1) * self.pa])

    def _vbase(self, vmap, outside: list[int], gi: int) -> int:
        """Virtual index of a group's first amplitude: its fixed bits, moved by vmap."""
        v = 0
        for k, b in enumerate(outside):
            if (gi >> k) & 1:
                v |= 1 << vmap[b + self.p]
        for r in range(self.plan.rank_bits):
            if (self.comm.rank >> r) & 1:
                v |= 1 << vmap[self.L + r]
        return v

    # ---- steps ---------------------------------------------------------------------
    def run_step(self, step) -> None:
        self._totals = None  # the state changes: page totals are stale
        super().run_step(step)

    def _apply_sweep(self, step: Sweep, ops) -> None:
        if self.pending:
            pending, self.pending = self.pending, []
            self._page_pass(pending)
        if not ops:
            return
        if not step.inner:
            raise InternalError("an out-of-core sweep has no inner plan")
        inner = [(list(s.wbits), pack(kept), s.zero_mask) for s in step.inner
                 if (kept := [op for op in s.ops if condition_holds(op.condition, self.clbits)])]
        _, _, _, outside = self._groups(step.wbits)
        gb = len(step.wbits)
        # the last sweep of a run whose state only samples (one rank) or nothing reads:
        # its groups go to the sampler, not back to disk; of one whose state only the
        # state file reads, to the file (chunks)
        # (samples only in double precision: a complex64 state's norm is 1 to about 1e-6,
        # and the shots past its end would all land on its last weighted amplitude)
        final = step is self.plan.steps[-1]
        last = final and (
            self._reader == "nothing" or self._reader == "samples" and self.comm.size == 1
            and self.dtype == np.complex128)

        def work_on(buf, gi):
            vbase = self._vbase(step.vmap, outside, gi)
            for wb, ol, zero in inner:  # the part where the group's |0> bits read 0
                for fixed in zero_parts(zero, gb, vbase, [(0, 0)]):
                    _kern.sweep(buf, gb, vbase, wb, ol, self.threads, fixed=fixed)

        if final and self._reader == "file":
            self._to_writer = (step.wbits, work_on)
            return
        sampler = StreamSampler(np.sort(self.rng.random(self._shots)), self.p, self.threads) \
            if last and self._reader == "samples" else None

        def work(buf, gi, pages):
            work_on(buf, gi)
            if sampler is not None:
                sampler.take(buf, pages)

        self._for_groups(step.wbits, work, write_back=not last)
        if sampler is not None:
            self._presampled, self.last_sweep = sampler.samples(), "sampled"
        elif last:
            self.last_sweep = "dropped"

    def _scan(self, work, write_back: bool) -> None:
        """``work(buf, base, pages)`` on every non-zero group of the lowest group_bits
        bits.  Those groups are contiguous, so the buffer's bits are the physical bits
        and ``base`` is the physical index of its first amplitude: kernels take
        physical bits directly, bits above group_bits being fixed by ``base``."""
        low = tuple(range(self.group_bits))

        def run(buf, _gi, pages):
            work(buf, self._page_base(int(pages[0])), pages)

        self._for_groups(low, run, write_back)

    def _page_pass(self, ops) -> None:
        """Diagonal operations (collapses) on every non-zero group."""
        packed = pack(ops)

        def work(buf, base, _pages):
            _kern.sweep(buf, self.group_bits, base, list(range(self.p)), packed, self.threads)

        self._scan(work, write_back=True)

    def _global_swap(self, pairs) -> None:
        if any(lb < self.p for lb, _ in pairs):
            raise InternalError("an out-of-core global swap would split pages")
        lbits = [lb - self.p for lb, _ in pairs]
        rbits = [rb - self.L for _, rb in pairs]
        rank = self.comm.rank
        u = sum(((rank >> rb) & 1) << i for i, rb in enumerate(rbits))
        key_mask = np.int64(sum(1 << lb for lb in lbits))
        stored = self.store.stored()
        key = _extract(stored, lbits)
        for j in range(1, 1 << len(pairs)):
            partner = rank
            for i, rb in enumerate(rbits):
                if (j >> i) & 1:
                    partner ^= 1 << rb
            # my pages whose swapped bits read u^j trade places with the partner's pages
            # reading u (the other page bits equal): only pages stored on either side
            # are listed and streamed; zero on both sides stays zero, nothing to do
            mine = stored[key == (u ^ j)] & ~key_mask
            theirs = self.comm.sendrecv_obj(mine, partner)
            both = np.union1d(mine, theirs)
            pages = both | _deposit(np.array([u ^ j]), lbits)[0]
            self._stream_pages(pages, ~np.isin(both, mine), ~np.isin(both, theirs), partner)

    def _stream_pages(self, pages, my_zero, their_zero, partner) -> None:
        """Trade ``pages`` with ``partner``: the I/O threads read page k+1 and write
        page k-1 while page k is on the wire (two send and two receive page buffers)."""
        sbuf, rbuf = self.pbufs[0::2], self.pbufs[1::2]

        def read(k):
            if not my_zero[k]:
                with trace.span("read page", "disk"):
                    self.store.read(int(pages[k]), sbuf[k % 2])

        def land(k):
            if their_zero[k]:
                self.store.drop(int(pages[k]))
            else:
                with trace.span("write page", "disk"):
                    self.store.write(int(pages[k]), rbuf[k % 2])

        reads = {0: self.io.submit(read, 0)} if len(pages) else {}
        writes = [None, None]
        for k in range(len(pages)):
            reads.pop(k).result()
            if k + 1 < len(pages):
                reads[k + 1] = self.io.submit(read, k + 1)
            if writes[k % 2] is not None:
                writes[k % 2].result()  # its receive buffer is free again
            reqs = []
            if not my_zero[k]:
                reqs.append(self.comm.isend(sbuf[k % 2], partner))
                self.bytes_exchanged += sbuf[k % 2].nbytes
            if not their_zero[k]:
                reqs.append(self.comm.irecv(rbuf[k % 2], partner))
            with trace.span("MPI wait", "network"):
                self.comm.wait(reqs)
            writes[k % 2] = self.io.submit(land, k)
        for f in writes:
            if f is not None:
                f.result()

    # ---- reductions ----------------------------------------------------------------
    def _page_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """The pages of the non-zero groups (sorted) and the sum of |a|^2 of each (one
        read pass, with read-ahead); pages not listed are zero."""
        pages, tots = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]

        def work(buf, _base, group_pages):
            pages.append(np.asarray(group_pages, dtype=np.int64))
            tots.append(_kern.block_norms(buf, self.pa, self.threads))

        self._scan(work, write_back=False)
        pg, tot = np.concatenate(pages), np.concatenate(tots)
        order = np.argsort(pg, kind="stable")
        return pg[order], tot[order]

    def _marginal(self, bits) -> np.ndarray:
        if not bits:
            # sampling asks for the total first: keep the page totals for _sample_local,
            # which saves it a second pass over the slice
            self._totals = self._page_totals()
            return np.array([self._totals[1].sum()])
        out = np.zeros(1 << len(bits))

        def work(buf, base, _pages):
            out[:] += _kern.marginal(buf, self.group_bits, base, list(bits), self.threads)

        self._scan(work, write_back=False)
        return out

    def _pauli(self, step: ExpectStep) -> np.ndarray:
        n = self.plan.n_qubits
        vmap = virtual_map(step.wbits, n)
        _, _, _, outside = self._groups(step.wbits)
        xv = sum(1 << vmap[b] for b in range(n) if step.xmask >> b & 1)
        zv = [sum(1 << vmap[b] for b in range(n) if z >> b & 1) for z in step.zmasks]
        total = [np.zeros(len(zv), dtype=complex)]

        def work(buf, gi, _pages):
            total[0] += _kern.pauli_group(buf, len(step.wbits), self._vbase(vmap, outside, gi),
                                          xv, zv, self.threads)

        self._for_groups(step.wbits, work, write_back=False)
        return total[0]

    def sample(self, shots: int) -> np.ndarray:
        if self._presampled is not None and len(self._presampled) == shots:
            return self._presampled  # drawn by the last sweep (one rank: base 0)
        return super().sample(shots)

    def _sample_local(self, targets: np.ndarray) -> np.ndarray:
        pages, tot = self._totals if self._totals is not None else self._page_totals()
        starts = np.concatenate([[0.0], np.cumsum(tot)])
        which = np.minimum(np.searchsorted(starts, targets, side="right") - 1, len(pages) - 1)
        out = np.empty(len(targets), dtype=np.int64)
        buf = self.pbufs[0]
        for w in np.unique(which):
            sel = which == w
            while tot[w] == 0 and w > 0:  # rounding past a page's end: use the last
                w -= 1                     # non-zero page before it
            pg = int(pages[w])
            self.store.read(pg, buf)
            out[sel] = _kern.sample_sorted(buf, np.ascontiguousarray(
                targets[sel] - starts[w])) + (pg << self.p)
        return out

    def chunks(self):
        """(offset, amplitudes) pieces of the slice, in page order; or, when the last
        sweep was left to the writer, in the order that sweep visits its groups, each
        group swept as it is read and handed over page by page (never written back)."""
        if self._to_writer is not None:
            (wbits, work_on), self._to_writer = self._to_writer, None
            for buf, gi, pages in self._iter_groups(wbits, write_back=False):
                with trace.span("kernels", "compute", {"group": gi}):
                    work_on(buf, gi)
                for i, pg in enumerate(pages):
                    yield int(pg) << self.p, buf[i * self.pa:(i + 1) * self.pa]
            self.last_sweep = "in_writer"
            return
        self._check_written()
        buf = self.pbufs[0]
        for pg in range(self.store.n_pages):
            self.store.read(pg, buf)
            yield pg << self.p, buf

    def local_state(self):
        """The slice for a checkpoint, streamed page by page."""
        from qgt.io.checkpoint import Pieces

        return Pieces(1 << self.L, self.chunks, self.dtype)

    def load_checkpoint(self, path: str) -> None:
        from qgt.io.checkpoint import read_range

        self.store.clear()
        buf = self.pbufs[0]
        for pg in range(self.store.n_pages):
            read_range(path, (self.comm.rank << self.L) + (pg << self.p), buf)
            self.store.write(pg, buf)
