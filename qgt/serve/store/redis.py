"""The deployment task store: Redis, one hash per task (``qgt:task:<id>``).

Called through ``qgt.serve.store.base.TaskStore`` by ``qgt serve --redis`` and every
``qgt worker``.  A transition is WATCH, HGETALL, decide (base.py), MULTI/HSET/EXEC, retried
if another client changed the hash in between: atomic without server-side scripts.
Idempotency keys are ``SET NX EX``.  Run Redis with ``maxmemory-policy noeviction`` and
``appendonly yes``: an evicted or forgotten record is a lost task.
"""

from __future__ import annotations

import json

import redis

from qgt.serve.model import Refused, StoreDown
from qgt.serve.store.base import IDEMPOTENCY_TTL, WORKER_TTL, TaskStore, decode, encode

PREFIX = "qgt:"
QUEUE_INDEX = PREFIX + "by-state:"  # a sorted set of task ids per state, by submission


def _down(fn):
    """Connection failures become StoreDown (the app's 503), never a stack trace."""
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as e:
            raise StoreDown(f"Redis is unreachable: {e}") from None
    return wrapper


class RedisStore(TaskStore):
    def __init__(self, url: str):
        self.url = url
        self.r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    @staticmethod
    def _key(task_id: str) -> str:
        return f"{PREFIX}task:{task_id}"

    @staticmethod
    def _index(pipe, old: dict | None, new: dict) -> None:
        if old is not None and old["state"] != new["state"]:
            pipe.zrem(QUEUE_INDEX + old["state"], new["task_id"])
        pipe.zadd(QUEUE_INDEX + new["state"], {new["task_id"]: new["submitted_at"]})

    @_down
    def _insert(self, rec, idem_key, digest):
        if idem_key:
            ikey = f"{PREFIX}idem:{idem_key}"
            if not self.r.set(ikey, rec["task_id"], nx=True, ex=IDEMPOTENCY_TTL):
                other = self.r.get(ikey)
                got = self._read(other.decode()) if other else None
                if got is not None:
                    return got
                self.r.set(ikey, rec["task_id"], ex=IDEMPOTENCY_TTL)
        with self.r.pipeline() as p:
            p.hset(self._key(rec["task_id"]), mapping=encode(rec))
            self._index(p, None, rec)
            p.execute()
        return rec

    @_down
    def _read(self, task_id):
        flat = self.r.hgetall(self._key(task_id))
        return decode(flat) if flat else None

    @_down
    def _update(self, task_id, fn):
        key = self._key(task_id)
        with self.r.pipeline() as p:
            while True:
                try:
                    p.watch(key)
                    flat = p.hgetall(key)
                    if not flat:
                        raise Refused(f"no task {task_id}")
                    rec = decode(flat)
                    new = fn(rec)
                    if new is rec:
                        p.unwatch()
                        return rec
                    p.multi()
                    p.hset(key, mapping=encode(new))
                    self._index(p, rec, new)
                    p.execute()
                    return new
                except redis.WatchError:
                    continue

    @_down
    def discard(self, task_id, idem_key):
        rec = self._read(task_id)
        with self.r.pipeline() as p:
            p.delete(self._key(task_id))
            if rec:
                p.zrem(QUEUE_INDEX + rec["state"], task_id)
            if idem_key:
                p.delete(f"{PREFIX}idem:{idem_key}")
            p.execute()

    @_down
    def ids(self, states):
        out = []
        for s in states:
            out += [(score, t.decode()) for t, score in
                    self.r.zrange(QUEUE_INDEX + s, 0, -1, withscores=True)]
        return [t for _, t in sorted(out)]

    @_down
    def beat_worker(self, name, info):
        self.r.set(f"{PREFIX}worker:{name}", json.dumps(info), ex=int(WORKER_TTL))

    @_down
    def workers(self):
        out = {}
        for key in self.r.scan_iter(f"{PREFIX}worker:*"):
            raw = self.r.get(key)
            if raw:
                out[key.decode().split(":", 2)[2]] = json.loads(raw)
        return out

    @_down
    def ping(self):
        self.r.ping()

    def close(self):
        self.r.close()
