"""``qgt serve`` and ``qgt worker``: argument parsing and start-up (hooked in qgt.cli).

    qgt serve [--host H] [--port P] [--config config.toml] [--nats URL --redis URL]
    qgt worker --nats URL --redis URL [--slurm] [--config config.toml]
"""

from __future__ import annotations

import argparse
import logging

from qgt.errors import UserError

EPILOG = ("Configuration: defaults < config.toml (--config or $QGT_SERVE_CONFIG) < "
          "QGT_SERVE_<SECTION>_<KEY> < flags. Keys:\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="config.toml", help="service configuration (TOML)")
    p.add_argument("--nats", metavar="URL", help="NATS server with JetStream (nats.url)")
    p.add_argument("--redis", metavar="URL", help="Redis task store (redis.url)")
    p.add_argument("--data-dir", metavar="DIR", help="task files (server.data_dir); shared "
                   "by the server and every worker in deployment mode")
    p.add_argument("--max-concurrent-tasks", type=int, metavar="N",
                   help="tasks run at once (worker.max_concurrent_tasks)")


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    from qgt.serve.config import describe_keys

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG + describe_keys() + "\nSee docs/service.md."
    p.add_argument("--host", help="listen address (server.host, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (server.port, default 8000)")
    _common(p)


def add_worker_arguments(p: argparse.ArgumentParser) -> None:
    from qgt.serve.config import describe_keys

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG + describe_keys() + "\nSee docs/service.md."
    _common(p)
    p.add_argument("--slurm", action="store_true",
                   help="submit each task with sbatch (slurm/requeue-long.sbatch) instead "
                   "of running its ranks on this host")


def _config(args):
    from qgt.serve.config import load_serve_config

    over = {"host": getattr(args, "host", None), "port": getattr(args, "port", None),
            "nats_url": args.nats,
            "redis_url": args.redis, "data_dir": args.data_dir,
            "worker_max_concurrent_tasks": args.max_concurrent_tasks}
    cfg = load_serve_config(args.config, overrides=over)
    if bool(cfg.nats_url) != bool(cfg.redis_url):
        raise UserError("deployment mode needs both --nats and --redis (nats.url and "
                        "redis.url); give neither for the embedded mode")
    return cfg


def _logging() -> None:
    import faulthandler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # a crash in native code (a fatal signal) still prints every thread's Python stack
    faulthandler.enable(all_threads=True)


def serve_main(args) -> int:
    import uvicorn

    from qgt.serve.app import create_app
    from qgt.serve.store import open_store

    cfg = _config(args)
    _logging()
    store = open_store(cfg)
    if cfg.deployment:
        from qgt.serve.broker import JetStreamBroker

        broker = JetStreamBroker(cfg.nats_url)
    else:
        from qgt.serve.broker import EmbeddedBroker
        from qgt.serve.worker import EmbeddedPool

        broker = EmbeddedBroker(EmbeddedPool(store, cfg))
    app = create_app(cfg, store, broker)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning",
                limit_concurrency=None, timeout_graceful_shutdown=5)
    return 0


def worker_main(args) -> int:
    import asyncio

    from qgt.serve.nats_worker import serve_forever

    cfg = _config(args)
    if not cfg.deployment:
        raise UserError("qgt worker needs --nats URL and --redis URL (the embedded qgt serve "
                        "runs its own workers)")
    _logging()
    asyncio.run(serve_forever(cfg, slurm=args.slurm))
    return 0
