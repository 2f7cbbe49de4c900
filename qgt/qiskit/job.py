"""``QgtJob``: a JobV1 whose work runs in the backend's one worker thread.

Called by ``QgtBackend.run`` and by the primitives.  ``run`` returns at once (Aer's
blocking ``EstimatorV2.run``, Aer #2260, is what users complain about); ``status()``
reports queued, running or done; ``cancel()`` drops a queued job, or stops a running one
on launched ranks by killing them (they restart on the next job).
"""

from __future__ import annotations

import uuid
from concurrent.futures import CancelledError

from qiskit.primitives import BasePrimitiveJob
from qiskit.providers import JobError, JobStatus, JobV1


class _Queued:
    """The work, its future in the executor, and the session that can stop it."""

    def _setup(self, work, executor, session) -> None:
        self._work = work
        self._executor = executor
        self._session = session
        self._future = None
        self._running = False
        self._cancelled = False

    def submit(self) -> None:
        if self._future is not None:
            raise JobError("this job was already submitted")
        self._future = self._executor.submit(self._run)

    def _run(self):
        self._running = True
        try:
            return self._work()
        finally:
            self._running = False

    def result(self, timeout: float | None = None):
        try:
            return self._future.result(timeout=timeout)
        except CancelledError:
            raise JobError(f"job {self.job_id()} was cancelled") from None

    def status(self) -> JobStatus:
        f = self._future
        if f is None:
            return JobStatus.INITIALIZING
        if self._cancelled or f.cancelled():
            return JobStatus.CANCELLED
        if f.done():
            return JobStatus.ERROR if f.exception() is not None else JobStatus.DONE
        return JobStatus.RUNNING if self._running else JobStatus.QUEUED

    def cancel(self) -> bool:
        if self._future is None or self._future.done():
            return False
        if self._future.cancel():
            self._cancelled = True
            return True
        if self._session is not None and self._session.mode == "launched":
            self._cancelled = True
            self._session.cancel()
            return True
        return False  # SPMD ranks run inside the caller's own processes

    # BasePrimitiveJob's questions, answered from the status
    def done(self) -> bool:
        return self.status() in (JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED)

    def running(self) -> bool:
        return self.status() is JobStatus.RUNNING

    def cancelled(self) -> bool:
        return self.status() is JobStatus.CANCELLED

    def in_final_state(self) -> bool:
        return self.done()


class QgtJob(_Queued, JobV1):
    """The backend's job: ``result()`` is a qiskit ``Result``."""

    def __init__(self, backend, work, executor, session=None):
        JobV1.__init__(self, backend, str(uuid.uuid4()))
        self._setup(work, executor, session)


class QgtPrimitiveJob(_Queued, BasePrimitiveJob):
    """The primitives' job: ``result()`` is a ``PrimitiveResult``."""

    def __init__(self, work, executor, session=None):
        BasePrimitiveJob.__init__(self, str(uuid.uuid4()))
        self._setup(work, executor, session)
