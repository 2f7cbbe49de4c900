"""Task stores: where task records live (docs/service.md, "Guarantees").

``open_store(cfg)``: Redis when ``redis.url`` is set, else SQLite in ``data_dir`` (only
the ``qgt serve`` process opens it: SQLite's locking is not safe on network file systems).
"""

from __future__ import annotations

import os


def open_store(cfg):
    if cfg.redis_url:
        from qgt.serve.store.redis import RedisStore

        return RedisStore(cfg.redis_url)
    from qgt.serve.store.sqlite import SqliteStore

    os.makedirs(cfg.data_dir, exist_ok=True)
    return SqliteStore(os.path.join(cfg.data_dir, "tasks.sqlite3"))
