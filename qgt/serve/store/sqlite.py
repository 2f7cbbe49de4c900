"""The embedded task store: one SQLite file in data_dir, opened by ``qgt serve`` only.

Called through ``qgt.serve.store.base.TaskStore``.  Every change is one ``BEGIN
IMMEDIATE`` transaction (read, decide, write), so transitions are atomic even across the
server's threads; WAL with synchronous=FULL, so a committed transition survives a crash of
the server (and of the machine).  Keep the file on local disk, never on NFS/GPFS/Lustre.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

from qgt.serve.model import Refused
from qgt.serve.store.base import IDEMPOTENCY_TTL, WORKER_TTL, TaskStore, decode, encode

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, state TEXT NOT NULL,
    submitted_at REAL NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, submitted_at);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, task_id TEXT NOT NULL,
    expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS workers (name TEXT PRIMARY KEY, info TEXT, seen REAL);
"""


class SqliteStore(TaskStore):
    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def _tx(self, fn):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out

    @staticmethod
    def _write(db, rec: dict) -> None:
        db.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?)",
                   (rec["task_id"], rec["state"], rec["submitted_at"],
                    json.dumps(encode(rec))))

    @staticmethod
    def _get(db, task_id: str) -> dict | None:
        row = db.execute("SELECT doc FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return decode(json.loads(row[0])) if row else None

    def _insert(self, rec, idem_key, digest):
        def fn(db):
            if idem_key:
                row = db.execute("SELECT task_id FROM idempotency WHERE key = ? AND "
                                 "expires > ?", (idem_key, time.time())).fetchone()
                if row:
                    return self._get(db, row[0])
                db.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)",
                           (idem_key, rec["task_id"], time.time() + IDEMPOTENCY_TTL))
            self._write(db, rec)
            return rec

        return self._tx(fn)

    def _read(self, task_id):
        with self._lock:
            return self._get(self._db, task_id)

    def _update(self, task_id, fn):
        def tx(db):
            rec = self._get(db, task_id)
            if rec is None:
                raise Refused(f"no task {task_id}")
            new = fn(rec)
            if new is not rec:
                self._write(db, new)
            return new

        return self._tx(tx)

    def discard(self, task_id, idem_key):
        def fn(db):
            db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))
            if idem_key:
                db.execute("DELETE FROM idempotency WHERE key = ?", (idem_key,))

        self._tx(fn)

    def ids(self, states):
        states = list(states)
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(f"SELECT task_id FROM tasks WHERE state IN ({marks}) "
                                    "ORDER BY submitted_at", states).fetchall()
        return [r[0] for r in rows]

    def beat_worker(self, name, info):
        self._tx(lambda db: db.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, ?)",
                                       (name, json.dumps(info), time.time())))

    def workers(self):
        with self._lock:
            rows = self._db.execute("SELECT name, info FROM workers WHERE seen > ?",
                                    (time.time() - WORKER_TTL,)).fetchall()
        return {name: json.loads(info) for name, info in rows}

    def ping(self):
        with self._lock:
            self._db.execute("SELECT 1").fetchone()

    def close(self):
        with self._lock:
            self._db.close()
