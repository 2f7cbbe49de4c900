"""How a task id reaches a worker.

    EmbeddedBroker     qgt serve alone: the SQLite store is the queue; publishing wakes
                       the in-process pool (qgt.serve.worker.EmbeddedPool)
    JetStreamBroker    deployment: a JetStream work-queue stream (file storage) read by
                       one durable pull consumer shared by every qgt worker

Not core NATS queue groups: those deliver at most once, and a task published while no
worker listens is lost.  The stream keeps it until a worker acknowledges it; a worker that
dies before acknowledging has it redelivered after ``ack_wait``; ``Nats-Msg-Id`` (the task
id and attempt) makes a repeated publish a no-op within the duplicate window.  JetStream
does not fence a late acknowledgement, so ownership lives in the store (store/base.py).
"""

from __future__ import annotations

import asyncio
import logging

from qgt.serve.model import BrokerDown

STREAM, SUBJECT, DURABLE = "QGT_TASKS", "qgt.tasks", "qgt-workers"
DUPLICATE_WINDOW = 120.0  # seconds

log = logging.getLogger("qgt.serve")


def msg_id(task_id: str, attempt: int) -> str:
    return f"{task_id}:{attempt}"


async def connect(url: str):
    """A NATS connection that reconnects for ever, and the stream (created if absent)."""
    import nats
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig

    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                            connect_timeout=2, allow_reconnect=True)
    js = nc.jetstream(timeout=5)
    cfg = StreamConfig(name=STREAM, subjects=[SUBJECT], retention=RetentionPolicy.WORK_QUEUE,
                       storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW)
    try:
        await js.add_stream(cfg)
    except Exception as e:  # already there (with our settings) is the usual case
        log.debug("add_stream: %s", e)
    return nc, js


class EmbeddedBroker:
    def __init__(self, pool):
        self.pool = pool

    async def start(self) -> None:
        self.pool.start()

    async def stop(self) -> None:
        self.pool.stop()

    async def publish(self, task_id: str, attempt: int = 0) -> None:
        self.pool.notify()

    def health(self) -> tuple[bool, str]:
        return True, "embedded (in-process pool)"


class JetStreamBroker:
    def __init__(self, url: str):
        self.url = url
        self.nc = self.js = None
        self._connector = None

    async def _connect_loop(self) -> None:
        while self.nc is None:
            try:
                self.nc, self.js = await connect(self.url)
            except Exception as e:  # NATS not up yet: keep trying, /health says so
                log.warning("NATS %s unreachable: %s", self.url, e)
                await asyncio.sleep(1.0)

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_loop())
        try:
            await asyncio.wait_for(asyncio.shield(self._connector), 5)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
        if self.nc is not None:
            await self.nc.close()

    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def publish(self, task_id: str, attempt: int = 0) -> None:
        if not self.connected():
            raise BrokerDown(f"NATS {self.url} is unreachable")
        try:
            await self.js.publish(SUBJECT, task_id.encode(), timeout=3,
                                  headers={"Nats-Msg-Id": msg_id(task_id, attempt)})
        except Exception as e:  # timeouts, disconnects, JetStream errors
            raise BrokerDown(f"NATS JetStream did not accept the task: {e!r}") from None

    def health(self) -> tuple[bool, str]:
        return (True, f"NATS JetStream {self.url}") if self.connected() else (
            False, f"NATS {self.url} is unreachable")
