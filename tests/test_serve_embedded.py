"""qgt serve alone (SQLite store, in-process pool, each task a real `qgt run` under
mpiexec in its own process group), driven over HTTP as a user would.

Each test names the end state a user checks: the README's curl example gives counts near
512/512; bad submissions are refused at once with qgt's message; API keys, idempotency
keys and cancellation behave as documented; a task whose ranks keep crashing ends ERROR;
a server killed mid-run resumes its task from the checkpoint after a restart, once.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from tests.serve_fixtures import (
    BELL3,
    SLOW_CONFIG,
    attempts_started,
    kill_ranks_until_final,
    ranks_of,
    service_factory,
    slow_qasm,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)
_ = service_factory  # a fixture (imported for pytest)


def test_curl_example_bell_counts_and_state_download(service_factory):
    """The source design's example (OpenQASM 3 Bell state, 1024 shots) on 2 ranks (the
    pool's persistent session): a task id at once, then DONE with counts near 512/512 on
    00 and 11; with keep_state (its own mpiexec job) the final state downloads as one
    HDF5 file."""
    svc = service_factory(worker_default_ranks=2)
    r = svc.client.post("/tasks", content=json.dumps({"quantum_circuit": BELL3,
                                                      "shots": 1024}),
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"task_id", "state"} and body["state"] == "QUEUED"
    kept = svc.submit(BELL3, shots=0, keep_state=True)
    done = svc.wait(body["task_id"])
    assert done["state"] == "DONE", done
    assert set(done["counts"]) == {"00", "11"}
    assert sum(done["counts"].values()) == 1024
    assert all(abs(v - 512) < 100 for v in done["counts"].values()), done["counts"]
    assert done["timings"]["finished_at"] >= done["timings"]["started_at"] > 0
    assert svc.wait(kept)["state"] == "DONE"
    r = svc.client.get(f"/tasks/{kept}/statevector")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-hdf5"
    with h5py.File(io.BytesIO(r.content), "r") as f:
        state = f["state"][...]
    np.testing.assert_allclose(state, [2 ** -0.5, 0, 0, 2 ** -0.5], atol=1e-12)
    assert svc.client.get(f"/tasks/{body['task_id']}/statevector").status_code == 404
    assert svc.client.get("/docs").status_code == 200
    health = svc.client.get("/health").json()
    assert health["store"]["up"] and health["broker"]["up"] and health["workers"]["up"]


def test_bad_submissions_are_refused_at_once(service_factory):
    """OpenQASM that does not parse, circuits over the qubit/shot/rank limits, unknown qgt
    settings: 422 with the reason, and no task is created; an oversized body: 413."""
    svc = service_factory(limits_max_qubits=3, limits_max_shots=5000, limits_max_ranks=2,
                          limits_max_body_bytes=4000)
    r = svc.client.post("/tasks", json={"quantum_circuit": "OPENQASM 3.0; qubit[2] q; "
                                        "hh q[0];", "shots": 10})
    assert r.status_code == 422 and "OpenQASM 3 parse error" in r.json()["detail"], r.text
    four = BELL3.replace("qubit[2]", "qubit[4]").replace("bit[2]", "bit[4]")
    r = svc.client.post("/tasks", json={"quantum_circuit": four})
    assert r.status_code == 422 and "4 qubits" in r.json()["detail"]
    r = svc.client.post("/tasks", json={"quantum_circuit": BELL3, "shots": 5001})
    assert r.status_code == 422 and "shots=5001" in r.json()["detail"]
    r = svc.client.post("/tasks", json={"quantum_circuit": BELL3, "ranks": 4})
    assert r.status_code == 422 and "ranks=4" in r.json()["detail"]
    r = svc.client.post("/tasks", json={"quantum_circuit": BELL3, "config": {"thread": 2}})
    assert r.status_code == 422 and "threads" in r.json()["detail"]  # the nearest key
    r = svc.client.post("/tasks", json={"quantum_circuit": BELL3,
                                        "config": {"checkpoint_dir": "/etc"}})
    assert r.status_code == 422 and "checkpoint_dir cannot be set" in r.json()["detail"]
    free = 'OPENQASM 3.0; include "stdgates.inc"; input float theta; qubit[1] q; rx(theta) q[0];'
    r = svc.client.post("/tasks", json={"quantum_circuit": free})
    assert r.status_code == 422 and "unbound parameters (theta)" in r.json()["detail"], r.text
    r = svc.client.post("/tasks", json={"quantum_circuit": BELL3, "shot": 3})
    assert r.status_code == 422
    r = svc.client.post("/tasks", json={"quantum_circuit": BELL3 + "// " + "x" * 5000})
    assert r.status_code == 413
    assert not (svc.data_dir / "tasks").exists() or not any((svc.data_dir / "tasks").iterdir())


def test_a_circuit_that_parses_but_cannot_run_ends_in_error_at_once(service_factory):
    """The submission parses the OpenQASM (a 422 otherwise) but does not lower it; an
    instruction qgt cannot simulate (an opaque gate) ends the task ERROR with qgt's
    message in its first attempt, never retried."""
    svc = service_factory()
    opaque = ('OPENQASM 2.0;\ninclude "qelib1.inc";\nopaque magic a;\nqreg q[2];\n'
              'creg c[2];\nh q[0];\nmagic q[1];\nmeasure q -> c;\n')
    tid = svc.submit(opaque, shots=10)
    end = svc.wait(tid, timeout=60)
    assert end["state"] == "ERROR" and end["attempt"] == 1, end
    assert "magic" in end["error"], end


def test_concurrent_submissions_are_parsed_outside_the_server(service_factory):
    """16 clients at once, valid and broken circuits mixed: each gets its own answer (200,
    or 422 with the parser's message) and every valid task ends DONE. The parsing runs in
    the parser process: qiskit's native extension (which crashed a multi-threaded server)
    is never loaded into qgt serve."""
    import threading

    svc = service_factory()
    broken = "OPENQASM 3.0; qubit[2] q; hh q[0];"
    answers: list = []

    def client(k: int) -> None:
        with httpx.Client(base_url=svc.url, timeout=60) as c:
            for j in range(4):
                bad = (k + j) % 3 == 0
                r = c.post("/tasks", json={"quantum_circuit": broken if bad else BELL3,
                                           "shots": 50})
                answers.append((bad, r.status_code, r.json()))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 64
    for bad, code, body in answers:
        if bad:
            assert code == 422 and "OpenQASM 3 parse error" in body["detail"], body
        else:
            assert code == 200, body
    for _, _, body in (a for a in answers if not a[0]):
        end = svc.wait(body["task_id"])
        assert end["state"] == "DONE" and sum(end["counts"].values()) == 50, end
    maps = Path(f"/proc/{svc.proc.proc.pid}/maps").read_text()
    assert "_accelerate" not in maps, "qiskit's native extension is loaded in qgt serve"


def test_api_key_and_idempotency_key(service_factory):
    """With an API key configured: 401 without it or with a wrong one.  The same
    Idempotency-Key twice gives one task; the same key with another body is a 422."""
    svc = service_factory(server_api_key="s3cret")
    for headers in ({"X-API-Key": ""}, {"X-API-Key": "wrong"}):
        r = svc.client.post("/tasks", json={"quantum_circuit": BELL3}, headers=headers)
        assert r.status_code == 401
        assert svc.client.get("/tasks/x", headers=headers).status_code == 401
    key = {"Idempotency-Key": "run-42"}
    a = svc.client.post("/tasks", json={"quantum_circuit": BELL3, "shots": 64}, headers=key)
    b = svc.client.post("/tasks", json={"quantum_circuit": BELL3, "shots": 64}, headers=key)
    assert a.status_code == b.status_code == 200
    assert a.json()["task_id"] == b.json()["task_id"]
    c = svc.client.post("/tasks", json={"quantum_circuit": BELL3, "shots": 65}, headers=key)
    assert c.status_code == 422 and "Idempotency-Key" in c.json()["detail"]
    assert svc.wait(a.json()["task_id"])["state"] == "DONE"
    assert len(list((svc.data_dir / "tasks").iterdir())) == 1


def test_cancel_in_each_state(service_factory):
    """One worker slot: a slow task RUNNING, a second QUEUED behind it.  Cancelling the
    queued one ends it at once; cancelling the running one stops its ranks and ends it
    CANCELLED; cancelling either again, or a DONE task, is a 409.  A cancel racing a
    task's completion leaves exactly one final state, the one the cancel reply implies."""
    svc = service_factory(worker_max_concurrent_tasks=1)
    slow = svc.submit(slow_qasm(400), shots=10, config=SLOW_CONFIG)
    queued = svc.submit(BELL3)
    wait_until(lambda: svc.task(slow)["state"] == "RUNNING" and ranks_of(slow), 60,
               "the slow task's ranks")
    r = svc.client.post(f"/tasks/{queued}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "CANCELLED"
    r = svc.client.post(f"/tasks/{slow}/cancel")
    assert r.status_code == 200 and r.json()["state"] in ("CANCELLING", "CANCELLED")
    assert svc.wait(slow, timeout=30)["state"] == "CANCELLED"
    wait_until(lambda: not ranks_of(slow), 10, "the cancelled task's ranks to end")
    for tid in (queued, slow):
        assert svc.client.post(f"/tasks/{tid}/cancel").status_code == 409
    assert attempts_started(svc.data_dir, queued) == 0
    assert svc.client.post("/tasks/nope/cancel").status_code == 404

    racers = [svc.submit(BELL3, shots=16) for _ in range(3)]
    replies = {}
    for i, tid in enumerate(racers):  # cancel each a little later in its life
        wait_until(lambda t=tid: svc.task(t)["state"] != "QUEUED", 60, "a start")
        time.sleep(0.8 * i)
        replies[tid] = svc.client.post(f"/tasks/{tid}/cancel").status_code
    for tid in racers:
        end = svc.wait(tid)["state"]
        assert end == ("CANCELLED" if replies[tid] == 200 else "DONE"), (replies[tid], end)
        time.sleep(0.2)
        assert svc.task(tid)["state"] == end  # and it stays
    assert svc.client.post(f"/tasks/{racers[0]}/cancel").status_code == 409


def test_ranks_crashing_every_time_end_in_error(service_factory):
    """Ranks killed (as by the OOM killer) in every attempt: after worker.attempt_limit
    attempts the task is ERROR, saying why, never stuck or retried for ever."""
    svc = service_factory(worker_attempt_limit=2)
    tid = svc.submit(slow_qasm(400), shots=10, config=SLOW_CONFIG)
    assert kill_ranks_until_final(svc, tid) >= 2
    end = svc.task(tid)
    assert end["state"] == "ERROR", end
    assert end["attempt"] == 2 and "gave up after 2 attempt(s)" in end["error"]
    assert attempts_started(svc.data_dir, tid) == 2


def test_serve_killed_mid_run_resumes_from_checkpoint(service_factory):
    """qgt serve SIGKILLed while a 2-rank task runs and others wait: its ranks die with it
    (no orphans); after a restart every task ends DONE once, and the interrupted one
    resumes from its checkpoint in attempt 2 with the full number of shots."""
    svc = service_factory(worker_max_concurrent_tasks=1)
    slow = svc.submit(slow_qasm(200), shots=200, ranks=2, config=SLOW_CONFIG)
    others = [svc.submit(BELL3, shots=100) for _ in range(3)]
    wait_until(lambda: (svc.task(slow)["progress"] or {}).get("step", 0) > 10, 90,
               "the slow task to make progress")
    svc.proc.kill()
    wait_until(lambda: not ranks_of(slow), 10, "the dead server's ranks to be reaped")
    svc.start()
    end = svc.wait(slow, timeout=180)
    assert end["state"] == "DONE" and end["attempt"] == 2, end
    assert end["resumed_from_checkpoint"]
    assert sum(end["counts"].values()) == 200
    for tid in others:
        t = svc.wait(tid)
        assert t["state"] == "DONE" and t["attempt"] == 1 and sum(t["counts"].values()) == 100
        assert attempts_started(svc.data_dir, tid) == 1
