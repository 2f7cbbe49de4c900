"""``qgt bench --service``: throughput and latency of qgt serve (docs/service.md).

20 concurrent clients submit 500 random circuits of 10-16 qubits over HTTP, first to the
embedded server (SQLite, in-process pool), then to NATS + Redis with 2 ``qgt worker``s,
and poll each task to DONE.  Reported per mode: tasks per second, p50 and p99 from
submission to DONE as the client sees it, and the overhead per task beyond its
simulation: slots x wall time / tasks - the mean of qgt's own ``timings.total``.  Every
task must end DONE exactly once with all its shots (none lost, none duplicated).

Starts every server itself (free loopback ports, a temporary directory) and kills them
at the end.  Needs nats-server and redis-server for the second mode (skipped without).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

# A client polls its task after POLL seconds, then backs off to POLL_MAX: 20 clients
# polling every 20 ms would load the server (and the 2 cores) more than the tasks do.
POLL, POLL_MAX = 0.02, 0.2


def add_arguments(g) -> None:
    g.add_argument("--service-tasks", type=int, default=500)
    g.add_argument("--service-clients", type=int, default=20)
    g.add_argument("--service-qubits", default="10-16", help="LO-HI qubits of the circuits")
    g.add_argument("--service-modes", default="embedded,nats",
                   help="comma-separated: embedded, nats")
    g.add_argument("--service-slots", type=int, default=1,
                   help="max_concurrent_tasks of the server's pool and of each worker")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _circuits(n_tasks: int, lo: int, hi: int) -> list[str]:
    from qiskit import qasm2

    from qgt.frontend import random_gates

    out = []
    for i in range(n_tasks):
        out.append(qasm2.dumps(random_gates(lo + i % (hi - lo + 1), 8, seed=1000 + i)))
    return out


def _start(argv, env, log) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def _clients(url: str, qasms: list[str], n_clients: int, shots: int) -> list[dict]:
    import httpx

    done: list[dict] = []
    lock = threading.Lock()
    todo = list(enumerate(qasms))

    errors: list[BaseException] = []

    def client():
        try:
            run_client()
        except Exception as e:  # re-raised after the join, with the servers' output
            errors.append(e)

    def run_client():
        with httpx.Client(base_url=url, timeout=60) as c:
            while True:
                with lock:
                    if not todo:
                        return
                    i, q = todo.pop()
                t0 = time.perf_counter()
                r = c.post("/tasks", json={"quantum_circuit": q, "shots": shots, "seed": i})
                if r.status_code == 503:  # e.g. a restart: retry (qgt serve said so)
                    with lock:
                        todo.append((i, q))
                    time.sleep(0.5)
                    continue
                r.raise_for_status()
                tid = r.json()["task_id"]
                wait = POLL
                while True:
                    time.sleep(wait)
                    t = c.get(f"/tasks/{tid}").json()
                    if t["state"] in ("DONE", "ERROR", "CANCELLED"):
                        break
                    wait = min(POLL_MAX, wait * 1.5)
                with lock:
                    done.append({"i": i, "task": t, "latency": time.perf_counter() - t0})

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed after {len(done)} tasks: "
                           f"{errors[0]!r}")
    return done


def _figures(done: list[dict], wall: float, n_tasks: int, slots: int, shots: int) -> dict:
    ok = [d for d in done if d["task"]["state"] == "DONE"
          and sum(d["task"]["counts"].values()) == shots]
    ids = {d["task"]["task_id"] for d in done}
    lat = np.array([d["latency"] for d in done])
    sim = np.array([d["task"]["timings"].get("total", 0.0) for d in ok])
    return {"tasks": n_tasks, "done": len(ok), "distinct_ids": len(ids),
            "lost": n_tasks - len(ok), "reruns": sum(d["task"]["attempt"] > 1 for d in done),
            "wall_s": wall, "tasks_per_s": n_tasks / wall,
            "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99)),
            "sim_mean_s": float(sim.mean()) if len(sim) else 0.0,
            "overhead_per_task_s": slots * wall / n_tasks - (float(sim.mean()) if len(sim)
                                                              else 0.0),
            "slots": slots}


def _run_mode(mode: str, args, qasms: list[str], tmp: str) -> dict | None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QGT_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(QGT_SERVE_SERVER_DATA_DIR=os.path.join(tmp, mode),
               QGT_SERVE_WORKER_MAX_CONCURRENT_TASKS=str(args.service_slots),
               QGT_SERVE_WORKER_DEFAULT_RANKS=str(args.ranks),
               QGT_SERVE_WORKER_SESSION_MAX_QUBITS="16",
               QGT_SERVE_LIMITS_MAX_SHOTS=str(max(args.shots, 1)))
    if args.threads:
        env["QGT_THREADS"] = str(args.threads)
    procs: list[subprocess.Popen] = []
    log = open(os.path.join(tmp, f"{mode}.log"), "wb")
    qgt = os.path.join(os.path.dirname(sys.executable), "qgt")
    slots = args.service_slots
    try:
        if mode == "nats":
            nats, redis = shutil.which("nats-server"), shutil.which("redis-server")
            if not (nats and redis):
                print("qgt bench --service: nats-server/redis-server not installed; "
                      "skipping the NATS + Redis mode", file=sys.stderr)
                return None
            np_, rp, mp = _port(), _port(), _port()
            procs.append(_start([nats, "-js", "-a", "127.0.0.1", "-p", str(np_), "-m",
                                 str(mp), "-sd", os.path.join(tmp, "js")], env, log))
            procs.append(_start([redis, "--port", str(rp), "--bind", "127.0.0.1", "--save",
                                 "", "--dir", tmp, "--appendonly", "yes"], env, log))
            _wait_http(f"http://127.0.0.1:{mp}/healthz")
            time.sleep(0.5)
            env.update(QGT_SERVE_NATS_URL=f"nats://127.0.0.1:{np_}",
                       QGT_SERVE_REDIS_URL=f"redis://127.0.0.1:{rp}/0")
            for _ in range(2):
                procs.append(_start([qgt, "worker"], env, log))
            slots *= 2
        port = _port()
        procs.append(_start([qgt, "serve", "--port", str(port)], env, log))
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/health")
        warm = _clients(url, qasms[:4], 2, args.shots)  # starts the sessions' ranks
        if any(d["task"]["state"] != "DONE" for d in warm):
            raise RuntimeError(f"warm-up failed: {warm[0]['task']}")
        t0 = time.perf_counter()
        done = _clients(url, qasms, args.service_clients, args.shots)
        return _figures(done, time.perf_counter() - t0, len(qasms), slots, args.shots)
    except Exception:
        log.flush()
        with open(log.name, "rb") as f:
            tail = f.read()[-3000:].decode(errors="replace")
        print(f"qgt bench --service ({mode}) failed; the servers' output ends:\n{tail}",
              file=sys.stderr)
        raise
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
        log.close()


def run_service_bench(args) -> int:
    lo, _, hi = args.service_qubits.partition("-")
    qasms = _circuits(args.service_tasks, int(lo), int(hi or lo))
    report = {}
    with tempfile.TemporaryDirectory(prefix="qgt-bench-service-") as tmp:
        for mode in args.service_modes.split(","):
            fig = _run_mode(mode.strip(), args, qasms, tmp)
            if fig is None:
                continue
            report[mode] = fig
            print(f"{mode:9s} {fig['done']}/{fig['tasks']} DONE ({fig['lost']} lost, "
                  f"{fig['reruns']} rerun, {fig['distinct_ids']} ids)  "
                  f"{fig['tasks_per_s']:.1f} tasks/s  p50 {1e3 * fig['p50_s']:.0f} ms  "
                  f"p99 {1e3 * fig['p99_s']:.0f} ms  simulation {1e3 * fig['sim_mean_s']:.1f}"
                  f" ms  overhead {1e3 * fig['overhead_per_task_s']:.1f} ms/task "
                  f"({fig['slots']} slot(s))", flush=True)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if all(f["lost"] == 0 for f in report.values()) else 1
