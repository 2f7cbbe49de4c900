"""The task store's transitions, written once for every backend.

A backend (sqlite.py, redis.py) provides storage primitives: ``_insert``, ``_read``,
``_update(task_id, fn)`` which applies ``fn(record) -> record`` atomically (a transaction,
or WATCH/MULTI), the idempotency keys, and the worker registry.  Everything that decides
(who owns a task, whether a write is stale) is here, so both backends fence the same way.

Ownership is a lease: (owner, attempt, lease_expiry).  Every heartbeat and status change
carries the owner and attempt it believes it holds; a write whose lease has passed, or was
taken over by a later attempt, raises ``Refused`` and changes nothing.
"""

from __future__ import annotations

import json
import time

from qgt.serve.model import (
    ACTIVE,
    CANCELLED,
    CANCELLING,
    DONE,
    ERROR,
    FINAL,
    JSON_FIELDS,
    QUEUED,
    RUNNING,
    Refused,
)

IDEMPOTENCY_TTL = 24 * 3600  # seconds an Idempotency-Key keeps naming its task
WORKER_TTL = 15.0  # a worker not seen for this long is down in /health


def encode(rec: dict) -> dict[str, str]:
    """A record as flat strings (a Redis hash, an SQLite row's document)."""
    return {k: json.dumps(v) if k in JSON_FIELDS else str(v) for k, v in rec.items()}


_NUMERIC = {"attempt": int, "n_qubits": int, "pgid": int, "lease_expiry": float,
            "submitted_at": float, "started_at": float, "finished_at": float}


def decode(flat: dict) -> dict:
    out = {}
    for k, v in flat.items():
        k = k.decode() if isinstance(k, bytes) else k
        v = v.decode() if isinstance(v, bytes) else v
        out[k] = json.loads(v) if k in JSON_FIELDS else _NUMERIC.get(k, str)(v)
    return out


def _check_lease(rec: dict, owner: str, attempt: int, now: float) -> None:
    if rec["owner"] != owner or rec["attempt"] != attempt:
        raise Refused(f"task {rec['task_id']} is now attempt {rec['attempt']} of "
                      f"{rec['owner'] or 'nobody'}, not attempt {attempt} of {owner}",
                      rec["state"])
    if rec["state"] not in ACTIVE:
        raise Refused(f"task {rec['task_id']} is {rec['state']}", rec["state"])
    if rec["lease_expiry"] < now:
        raise Refused(f"the lease of {owner} on task {rec['task_id']} expired "
                      f"{now - rec['lease_expiry']:.1f} s ago", rec["state"])


class TaskStore:
    """Backend-independent operations; see the module docstring."""

    # ---- primitives a backend provides ------------------------------------------------
    def _insert(self, rec: dict, idem_key: str | None, digest: str) -> dict:
        """Insert ``rec`` unless ``idem_key`` already names a task: then return that
        task's record (the caller compares digests)."""
        raise NotImplementedError

    def _read(self, task_id: str) -> dict | None:
        raise NotImplementedError

    def _update(self, task_id: str, fn) -> dict:
        raise NotImplementedError

    def discard(self, task_id: str, idem_key: str | None) -> None:
        raise NotImplementedError

    def ids(self, states) -> list[str]:
        """Task ids in ``states``, oldest submission first."""
        raise NotImplementedError

    def beat_worker(self, name: str, info: dict) -> None:
        raise NotImplementedError

    def workers(self) -> dict[str, dict]:
        raise NotImplementedError

    def ping(self) -> None:
        """Raise StoreDown when the store cannot be reached."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # ---- operations ---------------------------------------------------------------------
    def create(self, rec: dict, idem_key: str | None, digest: str) -> tuple[dict, bool]:
        """(record, created).  An existing key with another body raises Refused."""
        rec = dict(rec, digest=digest)
        got = self._insert(rec, idem_key, digest)
        if got["task_id"] == rec["task_id"]:
            return got, True
        if got.get("digest") != digest:
            raise Refused(f"Idempotency-Key {idem_key!r} already names task {got['task_id']},"
                          f" submitted with another body")
        return got, False

    def get(self, task_id: str) -> dict | None:
        return self._read(task_id)

    def claim(self, task_id: str, owner: str, lease: float, attempt_limit: int,
              host: str = "") -> dict:
        """Take the task for a new attempt: it is QUEUED, or its owner's lease passed.
        Raises Refused if it is final or leased to a live owner."""
        def fn(rec):
            now = time.time()
            if rec["state"] in FINAL:
                raise Refused(f"task {task_id} is {rec['state']}", rec["state"])
            if rec["state"] in ACTIVE and rec["lease_expiry"] >= now:
                raise Refused(f"task {task_id} is leased to {rec['owner']} for "
                              f"{rec['lease_expiry'] - now:.1f} s more", rec["state"])
            if rec["state"] == CANCELLING:  # its owner died while stopping it
                return dict(rec, state=CANCELLED, finished_at=now)
            if rec["attempt"] >= attempt_limit:
                why = rec["error"] or f"its worker {rec['owner']} was lost"
                return dict(rec, state=ERROR, finished_at=now,
                            error=f"gave up after {rec['attempt']} attempt(s): {why}")
            return dict(rec, state=RUNNING, owner=owner, attempt=rec["attempt"] + 1,
                        lease_expiry=now + lease, started_at=rec["started_at"] or now,
                        host=host, pgid=0)

        rec = self._update(task_id, fn)
        if rec["owner"] != owner or rec["state"] not in ACTIVE:
            raise Refused(f"task {task_id} is {rec['state']}", rec["state"])
        return rec

    def heartbeat(self, task_id: str, owner: str, attempt: int, lease: float,
                  **fields) -> dict:
        """Renew the lease (and set ``fields``: progress, state PENDING/RUNNING, pgid,
        slurm_job_id).  The returned record says CANCELLING when a cancel arrived."""
        def fn(rec):
            now = time.time()
            _check_lease(rec, owner, attempt, now)
            if rec["state"] == CANCELLING:
                fields.pop("state", None)
            return dict(rec, lease_expiry=now + lease, **fields)

        return self._update(task_id, fn)

    def finish(self, task_id: str, owner: str, attempt: int, state: str,
               result: dict | None = None, error: str = "") -> dict:
        """Record the end of the owner's attempt: DONE, ERROR or CANCELLED.  A cancel
        that arrived first wins: the task ends CANCELLED, once."""
        if state not in FINAL:
            raise ValueError(f"finish() needs a final state, not {state}")

        def fn(rec):
            _check_lease(rec, owner, attempt, time.time())
            end = CANCELLED if rec["state"] == CANCELLING else state
            return dict(rec, state=end, result=result if end == DONE else None,
                        error=error if end == ERROR else "", finished_at=time.time(),
                        lease_expiry=0.0)

        return self._update(task_id, fn)

    def requeue(self, task_id: str, owner: str, attempt: int, attempt_limit: int,
                error: str) -> dict:
        """The attempt failed without a verdict on the circuit (ranks crashed): QUEUED
        again, or ERROR once ``attempt_limit`` attempts have run."""
        def fn(rec):
            _check_lease(rec, owner, attempt, time.time())
            if rec["state"] == CANCELLING:
                return dict(rec, state=CANCELLED, finished_at=time.time(), lease_expiry=0.0)
            if rec["attempt"] >= attempt_limit:
                return dict(rec, state=ERROR, finished_at=time.time(), lease_expiry=0.0,
                            error=f"gave up after {rec['attempt']} attempt(s): {error}")
            return dict(rec, state=QUEUED, error=error, owner="", lease_expiry=0.0)

        return self._update(task_id, fn)

    def cancel(self, task_id: str) -> dict:
        """QUEUED -> CANCELLED at once; PENDING/RUNNING -> CANCELLING (the owner stops
        the ranks at its next heartbeat and records CANCELLED).  Final: Refused (409)."""
        def fn(rec):
            now = time.time()
            if rec["state"] in FINAL:
                raise Refused(f"task {task_id} is already {rec['state']}", rec["state"])
            if rec["state"] == QUEUED or rec["lease_expiry"] < now:
                return dict(rec, state=CANCELLED, finished_at=now, lease_expiry=0.0)
            return dict(rec, state=CANCELLING)

        return self._update(task_id, fn)

    def expire_leases(self, owners_alive=()) -> int:
        """Embedded mode at start: every lease held by another process is void (only one
        qgt serve opens the SQLite store, so those owners are dead)."""
        n = 0
        for task_id in self.ids(ACTIVE):
            def fn(rec):
                if rec["owner"] in owners_alive:
                    return rec
                return dict(rec, lease_expiry=0.0)

            self._update(task_id, fn)
            n += 1
        return n

