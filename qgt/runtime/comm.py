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


def _mpi_type(buf: np.ndarray):
    """The MPI datatype of a state buffer: complex128, or complex64 in single precision."""
    return MPI.C_FLOAT_COMPLEX if buf.dtype == np.complex64 else MPI.C_DOUBLE_COMPLEX
