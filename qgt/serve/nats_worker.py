"""``qgt worker``: pull tasks from the JetStream work queue and run them (deployment mode).

Called by qgt.serve.main.  Up to ``max_concurrent_tasks`` deliveries at a time from the
durable pull consumer; each runs in a thread (qgt.serve.worker.Runner) while this loop
keeps the delivery alive with ``in_progress()`` at every heartbeat.  The delivery is
acknowledged only after the task's end is recorded in the store; a failed attempt is
``nak``-ed for redelivery; a delivery whose lease we lost is left alone (the new owner
acknowledges its own).
"""

from __future__ import annotations

import asyncio
import logging

from qgt.serve.broker import DURABLE, STREAM, SUBJECT, connect
from qgt.serve.model import StoreDown
from qgt.serve.store import open_store
from qgt.serve.worker import Runner, owner_name

log = logging.getLogger("qgt.serve")
FETCH_WAIT = 1.0  # seconds one fetch waits for a task


async def _consumer(js, cfg):
    from nats.js.api import AckPolicy, ConsumerConfig

    return await js.pull_subscribe(
        SUBJECT, durable=DURABLE, stream=STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_deliver=-1,
                              ack_wait=cfg.worker_lease_seconds, max_ack_pending=-1))


def _start_job(cfg, slurm: bool):
    if not slurm:
        return None
    from qgt.serve.slurm import SlurmJob

    return lambda rec, d: SlurmJob(rec, d, cfg)


async def _handle(runner: Runner, msg, loop) -> None:
    def beat():
        asyncio.run_coroutine_threadsafe(msg.in_progress(), loop)

    task_id = msg.data.decode()
    outcome = await asyncio.to_thread(runner.run, task_id, beat)
    try:
        if outcome == "ack":
            await msg.ack()
        elif outcome == "requeue":
            await msg.nak(delay=1.0)
        elif outcome == "later":  # leased to a live owner: look again once it could expire
            await msg.nak(delay=runner.lease)
    except Exception as e:  # NATS down: the delivery comes back and the store decides
        log.warning("task %s: could not settle its delivery (%s): %r", task_id, outcome, e)


async def _beat_registry(store, runner, slots, slurm):
    while True:
        try:
            await asyncio.to_thread(store.beat_worker, runner.owner, {
                "mode": "slurm" if slurm else "nats", "slots": slots, "busy": runner.busy})
        except StoreDown:
            pass
        await asyncio.sleep(2.0)


async def serve_forever(cfg, slurm: bool = False) -> None:
    store = open_store(cfg)
    runner = Runner(store, cfg, owner_name("slurm" if slurm else "worker"),
                    _start_job(cfg, slurm))
    slots = cfg.worker_max_concurrent_tasks
    nc = None
    while nc is None:
        try:
            nc, js = await connect(cfg.nats_url)
        except Exception as e:
            log.warning("NATS %s unreachable: %s; retrying", cfg.nats_url, e)
            await asyncio.sleep(1.0)
    psub = None
    free = asyncio.Semaphore(slots)
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task] = set()
    registry = asyncio.create_task(_beat_registry(store, runner, slots, slurm))
    log.info("worker %s: %d slot(s) on %s", runner.owner, slots, cfg.nats_url)
    try:
        while True:
            await free.acquire()
            try:
                if psub is None:
                    psub = await _consumer(js, cfg)
                msgs = await psub.fetch(1, timeout=FETCH_WAIT)
            except TimeoutError:
                free.release()
                continue
            except Exception as e:  # disconnected, or the consumer is being recreated
                free.release()
                log.warning("fetch from %s: %r", STREAM, e)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                t = asyncio.create_task(_handle(runner, msg, loop))
                running.add(t)
                t.add_done_callback(lambda t: (running.discard(t), free.release()))
    finally:
        registry.cancel()
        await nc.close()
