"""Run one task to a recorded end: claim the lease, start the job, heartbeat, record.

Called by the embedded pool (``EmbeddedPool``, inside ``qgt serve``) and by the
deployment worker (qgt.serve.nats_worker).  ``Runner.run(task_id)`` returns what the
broker should do with the delivery:

    "ack"      the task reached a final state (or already had one): acknowledge
    "requeue"  the attempt failed and attempts remain (or the store is down): deliver
               again later
    "later"    another live owner holds the lease: deliver again after it could expire
    "lost"     our lease passed (a stale worker): touch nothing, the new owner acks

A lost lease or a cancel kills the job's process group at once, so a stale worker never
keeps ranks running next to the new owner's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from qgt.serve.executor import GroupJob, prepare
from qgt.serve.model import ACTIVE, CANCELLED, CANCELLING, DONE, ERROR, QUEUED, Refused, StoreDown
from qgt.serve.session_job import SessionJob, SessionPool, fits_session

log = logging.getLogger("qgt.serve")


def owner_name(kind: str) -> str:
    return f"{kind}-{socket.gethostname()}-{os.getpid()}"


class Runner:
    """Runs tasks for one owner; ``start_job(rec, dir)`` makes the job (GroupJob or
    qgt.serve.slurm.SlurmJob)."""

    def __init__(self, store, cfg, owner: str, start_job=None):
        self.store = store
        self.cfg = cfg
        self.owner = owner
        self.lease = cfg.worker_lease_seconds
        self.sessions = SessionPool()
        self.start_job = start_job or self._local_job
        self.busy = 0
        self._lock = threading.Lock()

    def _local_job(self, rec: dict, d: str):
        """Small tasks on the worker's persistent ranks, the rest as their own mpiexec."""
        if fits_session(rec, self.cfg.worker_session_max_qubits):
            return SessionJob(rec, d, self.sessions)
        return GroupJob(rec, d, self.cfg.worker_checkpoint_every_steps)

    def _write(self, fn, *args, **kw):
        """A status change that survives a short store outage: retried until it lands or
        our lease has certainly passed (then the write would be refused anyway)."""
        deadline = time.time() + self.lease
        while True:
            try:
                return fn(*args, **kw)
            except StoreDown:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

    def claim(self, task_id: str) -> dict:
        """The task for our new attempt; Refused (with the record's state) if not ours."""
        return self._write(self.store.claim, task_id, self.owner, self.lease,
                           self.cfg.worker_attempt_limit, socket.gethostname())

    def run(self, task_id: str, on_beat=None) -> str:
        try:
            rec = self.claim(task_id)
        except Refused as e:
            return "later" if e.state in ACTIVE else "ack"
        except StoreDown:
            return "requeue"  # never acknowledge what the store has not seen
        return self.run_claimed(rec, on_beat)

    def run_claimed(self, rec: dict, on_beat=None) -> str:
        with self._lock:
            self.busy += 1
        try:
            return self._attempt(rec, on_beat)
        finally:
            with self._lock:
                self.busy -= 1

    def _attempt(self, rec: dict, on_beat) -> str:
        tid, attempt = rec["task_id"], rec["attempt"]
        log.info("task %s attempt %d on %s", tid, attempt, self.owner)
        try:
            job = self.start_job(rec, prepare(self.cfg.data_dir, rec))
        except Exception as e:  # e.g. sbatch refused the job: a failed attempt
            return self._failed(rec, f"could not start the job: {e}")
        beat = min(max(0.2, self.lease / 3), 2.0)  # also how soon a cancel lands
        fields = job.identity()
        while True:
            rc = job.wait(beat)
            if rc is not None:
                break
            try:
                hb = self.store.heartbeat(tid, self.owner, attempt, self.lease,
                                          progress=job.progress(), **fields, **job.status())
            except StoreDown:
                continue  # keep running; the lease decides when the store is back
            except Refused as e:
                log.warning("task %s: %s; stopping its ranks", tid, e)
                job.kill()
                return "lost"
            fields = {}
            if hb["state"] == CANCELLING:
                job.kill()
                return self._end(rec, CANCELLED)
            if on_beat is not None:
                on_beat()
        kind, payload = job.outcome(rc)
        if kind == "done":
            return self._end(rec, DONE, result=payload)
        if kind == "user_error":
            return self._end(rec, ERROR, error=payload)
        return self._failed(rec, payload)

    def _end(self, rec: dict, state: str, **kw) -> str:
        try:
            self._write(self.store.finish, rec["task_id"], self.owner, rec["attempt"], state,
                        **kw)
        except (Refused, StoreDown) as e:
            log.warning("task %s: result not recorded: %s", rec["task_id"], e)
            return "lost"
        return "ack"

    def _failed(self, rec: dict, error: str) -> str:
        try:
            new = self._write(self.store.requeue, rec["task_id"], self.owner, rec["attempt"],
                              self.cfg.worker_attempt_limit, error)
        except (Refused, StoreDown):
            return "lost"
        return "requeue" if new["state"] == QUEUED else "ack"


class EmbeddedPool:
    """``max_concurrent_tasks`` threads inside ``qgt serve``, fed by the store itself:
    each takes the oldest claimable task (QUEUED, or leased by a dead owner)."""

    def __init__(self, store, cfg):
        self.store = store
        self.runner = Runner(store, cfg, owner_name("serve"))
        self.slots = cfg.worker_max_concurrent_tasks
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True, name=f"qgt-pool-{i}")
                         for i in range(self.slots)]

    def start(self) -> None:
        self.store.expire_leases()  # the previous qgt serve, if any, is dead
        for t in self._threads:
            t.start()
        threading.Thread(target=self._beat, daemon=True, name="qgt-pool-beat").start()

    def notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()

    def _beat(self) -> None:
        while True:
            try:
                self.store.beat_worker(self.runner.owner, {"mode": "embedded", "slots":
                                                           self.slots,
                                                           "busy": self.runner.busy})
            except StoreDown:
                pass
            if self._stop.wait(2.0):
                return

    def _next(self) -> dict | None:
        for tid in self.store.ids([QUEUED, *ACTIVE]):
            try:
                return self.runner.claim(tid)
            except Refused:
                continue  # another thread's, or final since the scan
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rec = self._next()
            except StoreDown:
                rec = None
            if rec is not None:
                self.runner.run_claimed(rec)
                continue
            with self._wake:
                self._wake.wait(1.0)
