"""Deployment mode: nats-server (JetStream), redis-server, ``qgt serve --nats --redis``
and two ``qgt worker`` processes, all real, on loopback ports.

Each test breaks one part the way production does and names the end state: a worker
SIGKILLed mid-run, one that dies after taking a delivery and a lease, one paused past its
lease, and NATS, Redis and the server restarted under load.  In every case each task ends
DONE exactly once with the right counts, and no ranks are left behind.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from qgt.serve.broker import DURABLE, STREAM, SUBJECT, connect
from tests.serve_fixtures import (
    BELL3,
    SLOW_CONFIG,
    attempts_started,
    deployment,
    kill_ranks_until_final,
    ranks_of,
    slow_qasm,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)
_ = deployment  # a fixture (imported for pytest)


def _attempt_ranks(task_id: str, attempt: int):
    # the command lines ranks_of read: a rank may exit before a second look at /proc
    return [p for p in ranks_of(task_id)
            if f"result-{attempt}.json" in " ".join(p.info["cmdline"] or [])]


def test_worker_sigkilled_mid_run_resumes_elsewhere(deployment):
    """The worker running a 2-rank task is SIGKILLed: its ranks die with it, the delivery
    comes back to the other worker, which resumes from the checkpoint: DONE once."""
    d = deployment()
    svc = d.service
    tid = svc.submit(slow_qasm(200), shots=300, ranks=2, config=SLOW_CONFIG)
    wait_until(lambda: (svc.task(tid)["progress"] or {}).get("step", 0) > 10, 90,
               "the task to make progress")
    victim = d.owner_proc(tid)
    victim.kill()
    wait_until(lambda: not _attempt_ranks(tid, 1), 10, "the dead worker's ranks to end")
    end = svc.wait(tid, timeout=180)
    assert end["state"] == "DONE" and end["attempt"] == 2, end
    assert end["resumed_from_checkpoint"] and sum(end["counts"].values()) == 300
    assert attempts_started(svc.data_dir, tid) == 2
    assert not ranks_of(tid)


def test_worker_dead_after_claim_before_ack_runs_task_once(deployment):
    """A worker takes the delivery and the lease, then dies before starting anything or
    acknowledging: the delivery returns after ack_wait and the task runs once, DONE."""
    d = deployment(workers=0)
    svc = d.service
    tid = svc.submit(BELL3, shots=500)

    async def take_and_die():
        nc, js = await connect(d.nats_url)
        sub = await js.pull_subscribe(SUBJECT, durable=DURABLE, stream=STREAM)
        msgs = await sub.fetch(1, timeout=10)
        assert msgs[0].data.decode() == tid
        d.store().claim(tid, "worker-dead-1", 2.0, 3)
        await nc.close()  # no ack: the connection just goes, like a killed process

    asyncio.run(take_and_die())
    assert svc.task(tid)["state"] == "RUNNING"
    d.workers.append(d.worker(9).start())
    end = svc.wait(tid, timeout=120)
    assert end["state"] == "DONE" and end["attempt"] == 2, end
    assert set(end["counts"]) == {"00", "11"} and sum(end["counts"].values()) == 500
    assert attempts_started(svc.data_dir, tid) == 1  # the dead claim never ran a job
    time.sleep(4)  # past another ack_wait: nothing redelivers it again
    assert svc.task(tid)["attempt"] == 2 and attempts_started(svc.data_dir, tid) == 1


def test_worker_paused_past_its_lease_is_fenced(deployment):
    """A worker SIGSTOPped past its lease: the other worker takes the task over; when the
    first resumes, its heartbeat is refused and it kills its ranks; the task is DONE once
    by attempt 2."""
    d = deployment()
    svc = d.service
    tid = svc.submit(slow_qasm(400), shots=100, config=SLOW_CONFIG)
    wait_until(lambda: (svc.task(tid)["progress"] or {}).get("step", 0) > 10, 90,
               "the task to make progress")
    paused = d.owner_proc(tid)
    paused.signal(signal.SIGSTOP)
    wait_until(lambda: svc.task(tid)["attempt"] == 2, 30, "another worker to take over")
    assert _attempt_ranks(tid, 1), "the paused worker's ranks should still be running"
    paused.signal(signal.SIGCONT)
    wait_until(lambda: not _attempt_ranks(tid, 1), 15, "the fenced worker to stop its ranks")
    end = svc.wait(tid, timeout=180)
    assert end["state"] == "DONE" and end["attempt"] == 2, end
    assert sum(end["counts"].values()) == 100
    assert d.store().get(tid)["owner"] != f"worker-{paused.proc.pid}"
    assert "stopping its ranks" in paused.output()  # it was told, and said so


def _all_done_once(d, tids, shots):
    for tid in tids:
        end = d.service.wait(tid, timeout=180)
        assert end["state"] == "DONE", end
        assert sum(end["counts"].values()) == shots
        assert attempts_started(d.service.data_dir, tid) == end["attempt"] == 1, tid


def test_nats_redis_and_server_restarted_under_load(deployment):
    """With tasks queued and running: NATS down -> POST is a 503 naming NATS and /health
    says the broker is down; Redis down -> 503 naming the store; qgt serve SIGKILLed and
    restarted.  After each comes back every task accepted ends DONE exactly once."""
    d = deployment()
    svc = d.service
    tids = [svc.submit(BELL3, shots=64) for _ in range(4)]

    d.nats.stop()
    r = svc.client.post("/tasks", json={"quantum_circuit": BELL3})
    assert r.status_code == 503 and "NATS" in r.json()["detail"]
    h = svc.client.get("/health")
    assert h.status_code == 503 and not h.json()["broker"]["up"] and h.json()["store"]["up"]
    d.nats.start()
    wait_until(lambda: svc.client.get("/health").json()["broker"]["up"], 30, "NATS back")
    tids += [svc.submit(BELL3, shots=64) for _ in range(3)]

    d.redis.stop()
    r = svc.client.post("/tasks", json={"quantum_circuit": BELL3})
    assert r.status_code == 503 and "Redis" in r.json()["detail"]
    h = svc.client.get("/health")
    assert h.status_code == 503 and not h.json()["store"]["up"] and h.json()["broker"]["up"]
    d.redis.start()
    wait_until(lambda: svc.client.get("/health").json()["store"]["up"], 30, "Redis back")
    tids += [svc.submit(BELL3, shots=64) for _ in range(3)]

    svc.proc.kill()
    svc.start()
    tids += [svc.submit(BELL3, shots=64) for _ in range(2)]
    _all_done_once(d, tids, 64)


def test_ranks_crashing_every_time_end_in_error_across_workers(deployment):
    """Ranks killed in every attempt, whichever worker runs it: each failed attempt is
    nak-ed and redelivered, and after worker.attempt_limit attempts the task is ERROR."""
    d = deployment(worker_attempt_limit=2)
    svc = d.service
    tid = svc.submit(slow_qasm(400), shots=10, config=SLOW_CONFIG)
    assert kill_ranks_until_final(svc, tid) >= 2
    end = svc.wait(tid, timeout=30)
    assert end["state"] == "ERROR" and end["attempt"] == 2, end
    assert "gave up after 2 attempt(s)" in end["error"]
    assert attempts_started(svc.data_dir, tid) == 2
