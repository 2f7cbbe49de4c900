"""A node's ranks in one shared-memory window: the intra-node tier, with no exchanges.

Used by ``qgt.api._engine`` when the plan has shared rank bits (every rank on one
node, the state in RAM; ``qgt.api.shared_rank_bits``).  The ranks' slices lie back to
back, in rank order, in one MPI-3 window (``Win.Allocate_shared`` on the node
communicator from ``Split_type``), so the window is the node's whole state and a
node index is a global index:

    window:  [ rank 0's slice | rank 1's slice | ... ]      2^(L+s) amplitudes
    index:     (node rank << L) | local index              s = log2(ranks on the node)

A sweep whose working set holds a shared bit (>= L) runs over the whole window: every
rank calls the same kernel, which hands out chunks of units from one counter in the
window (``qgt_kern_sweep_shared``), so the ranks share the units as threads of one
process would.  A barrier before (every slice written) and after (every unit done)
keeps the ranks in step.  The planner sees the shared bits as local bits, so it plans
no global swap for them; a Pauli term's X/Y bits are first moved into the slice
(``_Planner._into_slice``), so every reduction still reads the rank's own slice.
"""

from __future__ import annotations

from qgt import _kern
from qgt.errors import UserError
from qgt.runtime.engine import Engine, pack, zero_parts
from qgt.runtime.exchange import Exchanger


class SharedEngine(Engine):
    """One rank's slice, a view of the node's shared window; sweeps over shared bits
    run on the whole window, shared with the node's other ranks."""

    def _allocate(self, exchange_chunk: int) -> None:
        s = self.plan.shared_bits
        self.window = self.comm.shared_window(1 << self.L, self.dtype)
        w = self.window
        if w.node_size != 1 << s or w.node_rank != self.comm.rank & ((1 << s) - 1):
            got = (w.node_size, w.node_rank)
            w.free()
            raise UserError(f"the plan shares {1 << s} ranks per node, but this rank is node "
                            f"rank {got[1]} of {got[0]}: set shared_memory=false")
        self.node_L = self.L + s
        self.node_base = (self.comm.rank >> s) << self.node_L
        self.state = w.array[w.node_rank << self.L:(w.node_rank + 1) << self.L]
        self.exchanger = Exchanger(self.comm, exchange_chunk, self.dtype)  # rank bits above

    def _apply_sweep(self, step, ops) -> None:
        if not step.wbits or max(step.wbits) < self.L:
            super()._apply_sweep(step, ops)  # this slice alone
            return
        ops, self.pending = self.pending + ops, []
        packed = pack(ops)
        w = self.window
        parts = zero_parts(step.zero_mask, self.node_L, self.node_base, [(0, 0)])
        for fixed in parts:  # (the same on every rank of the node)
            if w.node_rank == 0:
                w.counter[0] = 0  # nobody reads it between the last barrier and the next
            w.barrier()
            _kern.sweep(w.array, self.node_L, self.node_base, list(step.wbits), packed,
                        self.threads, w.counter, fixed)
            w.barrier()

    def io_report(self) -> dict:
        return {**super().io_report(), "shared_window_bytes": self.state.nbytes
                * self.window.node_size}

    def close(self) -> None:
        if self.window is not None:
            self.state = None
            self.window.free()  # collective over the node: every rank closes its engine
            self.window = None
