"""The only module that imports mpi4py.

Everything else talks to MPI through ``Comm``: a few collectives, a non-blocking
pairwise exchange and an abort, so that the planner and kernels stay MPI-free.
"""

from __future__ import annotations

import numpy as np
from mpi4py import MPI


class Comm:
    """A thin wrapper around an mpi4py communicator (COMM_WORLD by default)."""

    def __init__(self, comm=None):
        self.c = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.c.Get_rank()
        self.size = self.c.Get_size()
        node = self.c.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = node.Get_rank()
        self.local_size = node.Get_size()
        node.Free()
        # ranks that may share one window (qgt.runtime.shared): a node's ranks, when
        # every node has as many and holds consecutive ranks (rank = node * size +
        # node rank, the block placement of mpiexec -ppn and srun); otherwise none
        every = self.c.allgather((self.local_size, self.local_rank))
        block = all(size == self.local_size and lr == r % size
                    for r, (size, lr) in enumerate(every))
        self.window_size = self.local_size if block else 1

    def solo(self):
        """This process alone (MPI.COMM_SELF): the session runs circuits too small to
        split over the ranks replicated, one whole copy per rank."""
        return MPI.COMM_SELF

    # One rank: the object itself, without mpi4py's pickle round trip (a plan with its
    # matrices is milliseconds of pickling, per task of the service's small circuits).
    def bcast(self, obj, root: int = 0):
        return obj if self.size == 1 else self.c.bcast(obj, root=root)

    def allgather(self, obj) -> list:
        return [obj] if self.size == 1 else self.c.allgather(obj)

    def gather(self, obj, root: int = 0) -> list | None:
        return [obj] if self.size == 1 else self.c.gather(obj, root=root)

    def allreduce_sum(self, arr: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(arr)
        out = np.empty_like(arr)
        self.c.Allreduce(arr, out, op=MPI.SUM)
        return out

    def allreduce_max(self, x: float) -> float:
        return self.c.allreduce(x, op=MPI.MAX)

    def agree(self, error: str | None) -> str | None:
        """Every rank learns the first rank's error (or None): all ranks then raise
        together, so none is left waiting in a collective."""
        errors = self.c.allgather(error)
        return next((e for e in errors if e), None)

    def isendrecv(self, sbuf: np.ndarray, rbuf: np.ndarray, partner: int, tag: int = 11):
        """Post a pairwise exchange of equal-sized complex buffers; wait with ``wait``."""
        r = self.c.Irecv([rbuf, _mpi_type(rbuf)], source=partner, tag=tag)
        s = self.c.Isend([sbuf, _mpi_type(sbuf)], dest=partner, tag=tag)
        return (r, s)

    def isend(self, buf: np.ndarray, partner: int, tag: int = 12):
        return self.c.Isend([buf, _mpi_type(buf)], dest=partner, tag=tag)

    def irecv(self, buf: np.ndarray, partner: int, tag: int = 12):
        return self.c.Irecv([buf, _mpi_type(buf)], source=partner, tag=tag)

    def sendrecv_obj(self, obj, partner: int, tag: int = 13):
        return self.c.sendrecv(obj, dest=partner, sendtag=tag, source=partner, recvtag=tag)

    @staticmethod
    def wait(reqs) -> None:
        MPI.Request.Waitall(list(reqs))

    def barrier(self) -> None:
        self.c.Barrier()

    def abort(self, code: int) -> None:
        self.c.Abort(code)

    @staticmethod
    def wtime() -> float:
        return MPI.Wtime()

    def shared_window(self, amps: int, dtype) -> SharedWindow:
        """``amps`` amplitudes of ``dtype`` per rank in one MPI-3 shared-memory window
        over this node's ranks, contiguous in node-rank order (qgt.runtime.shared)."""
        return SharedWindow(self.c, amps, dtype)


class SharedWindow:
    """A node's ranks' state slices in one contiguous MPI-3 shared-memory window
    (``Win.Allocate_shared`` on the node communicator from ``Split_type``), with a
    chunk counter for sweeps that the node's ranks share (qgt_kern_sweep_shared).

    ``array`` is the whole node's state (every rank's slice, in node-rank order);
    ``counter`` one int64 that every rank sees.  ``free`` releases both: no view of
    them may be used after it."""

    def __init__(self, comm, amps: int, dtype):
        self.node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        itemsize = np.dtype(dtype).itemsize
        self.win = self.cwin = None
        try:
            self.win = MPI.Win.Allocate_shared(amps * itemsize, itemsize, comm=self.node)
            self.cwin = MPI.Win.Allocate_shared(8 if self.node.rank == 0 else 0, 8,
                                                comm=self.node)
        except MPI.Exception as e:
            self.free()
            raise MemoryError(f"MPI could not allocate a shared-memory window of "
                              f"{amps * itemsize} bytes per rank: {e.Get_error_string()}") from e
        size = self.node.size
        base = MPI.Get_address(self.win.Shared_query(0)[0])
        if any(MPI.Get_address(self.win.Shared_query(r)[0]) != base + r * amps * itemsize
               for r in range(size)):
            self.free()
            raise MemoryError("the node's shared-memory window is not contiguous")
        self.array = np.frombuffer(MPI.buffer.fromaddress(base, size * amps * itemsize),
                                   dtype=dtype)
        cbase = MPI.Get_address(self.cwin.Shared_query(0)[0])
        self.counter = np.frombuffer(MPI.buffer.fromaddress(cbase, 8), dtype=np.int64)
        self.node_rank, self.node_size = self.node.rank, size
        self.win.Lock_all(MPI.MODE_NOCHECK)  # the MPI-3 model for load/store access
        self.cwin.Lock_all(MPI.MODE_NOCHECK)
        self.locked = True

    def barrier(self) -> None:
        """Every node rank's writes to the window are done and visible to the others."""
        self.win.Sync()
        self.cwin.Sync()
        self.node.Barrier()
        self.win.Sync()
        self.cwin.Sync()

    def free(self) -> None:
        self.array = self.counter = None
        for w in (self.cwin, self.win):
            if w is not None:
                if getattr(self, "locked", False):
                    w.Unlock_all()
                w.Free()
        self.win = self.cwin = None
        if self.node is not None:
            self.node.Free()
            self.node = None


def _mpi_type(buf: np.ndarray):
    """The MPI datatype of a state buffer: complex128, or complex64 in single precision."""
    return MPI.C_FLOAT_COMPLEX if buf.dtype == np.complex64 else MPI.C_DOUBLE_COMPLEX
