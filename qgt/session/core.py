"""``Session``: picks SPMD ranks or launched worker ranks and forwards batches to them.

Called by the front ends (``qgt.qiskit``); see ``qgt.session`` for the two modes.
"""

from __future__ import annotations

import threading

from qgt.errors import UserError


class Session:
    """Ranks + plan cache + batch execution.  ``ranks=None`` runs on ``comm`` (or
    COMM_WORLD); ``ranks=P`` launches P worker ranks with ``launcher`` ("mpiexec" or
    "srun") and keeps them for the session's life."""

    def __init__(self, config=None, comm=None, ranks: int | None = None,
                 launcher: str = "mpiexec", launcher_args=(), cache_size: int = 64):
        if ranks is not None and comm is not None:
            raise UserError("give either comm= (SPMD under mpiexec) or ranks= (qgt launches "
                            "its own worker ranks), not both")
        if ranks is not None and (not isinstance(ranks, int) or ranks < 1):
            raise UserError(f"ranks must be a positive integer, got {ranks!r}")
        self.config = config
        self.ranks = ranks
        self.launcher = launcher
        self._lock = threading.Lock()
        if ranks is None:
            from qgt.session.spmd import SpmdRanks

            self._impl = SpmdRanks(config, comm, cache_size)
        else:
            from qgt.session.launcher import LaunchedRanks

            self._impl = LaunchedRanks(config, ranks, launcher, tuple(launcher_args),
                                       cache_size)

    @property
    def mode(self) -> str:
        return "spmd" if self.ranks is None else "launched"

    @property
    def size(self) -> int:
        return self._impl.size

    @property
    def rank(self) -> int:
        return self._impl.rank

    def run(self, tasks, progress=None) -> list[list]:
        """Per task, one Result per parameter value set (see ``qgt.session.Task``)."""
        with self._lock:  # one batch at a time on the same ranks
            return self._impl.run(list(tasks), progress)

    def cancel(self) -> None:
        """Stop the batch that is running (launched ranks are killed and restarted on
        the next batch; SPMD ranks cannot be interrupted from outside)."""
        cancel = getattr(self._impl, "cancel", None)
        if cancel is not None:
            cancel()

    def cache_stats(self) -> dict:
        return self._impl.cache_stats()

    def close(self) -> None:
        self._impl.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
