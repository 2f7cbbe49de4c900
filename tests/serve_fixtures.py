"""Real servers for the service tests (tests/test_serve_*.py): nats-server, redis-server,
``qgt serve`` and ``qgt worker`` as subprocesses on free loopback ports, and an httpx
client.  Every process is started in its own process group and killed (with its MPI
ranks) in the fixture's teardown.  Tests skip, with the reason, when nats-server or
redis-server is not installed (.ci/install-services.sh installs them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import QGT, clean_env

BELL3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""

# Small blocks and pages make a 10-qubit Trotter circuit hundreds of short plan steps, with
# a checkpoint after each: a run of several seconds that can be killed in the middle.  A
# task with configuration overrides is its own mpiexec job; the Bell tasks of the tests
# run on the workers' persistent sessions (worker.session_max_qubits, default 16).
SLOW_CONFIG = {"block_qubits": 4, "page_qubits": 2, "fusion_max_qubits": 2}


def slow_qasm(steps: int = 120) -> str:
    from qiskit import qasm2

    from qgt.frontend import trotter

    qc = trotter(10, steps)
    qc.measure_all()
    return qasm2.dumps(qc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if path is None:
        pytest.skip(f"{binary} is not installed (run .ci/install-services.sh)")
    return path


def wait_until(cond, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Proc:
    """A subprocess in its own process group, restartable, with its output in a file."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env=None):
        self.name, self.argv, self.workdir, self.env = name, argv, workdir, env
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Proc:
        self.starts += 1
        self.log = self.workdir / f"{self.name}-{self.starts}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env,
                                         cwd=self.workdir, start_new_session=True)
        return self

    def signal(self, sig) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process only (its children, e.g. a task's reaper, live on)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Kill the whole process group and anything the process started."""
        if self.proc is None:
            return
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            kids = []
        for p in [self.proc, *kids]:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def nats_server(tmp: Path) -> tuple[Proc, str, int]:
    port, mon = free_port(), free_port()
    p = Proc("nats", [need("nats-server"), "-js", "-a", "127.0.0.1", "-p", str(port),
                      "-m", str(mon), "-sd", str(tmp / "jetstream")], tmp)
    return p, f"nats://127.0.0.1:{port}", mon


def start_nats(p: Proc, mon: int) -> None:
    p.start()

    def healthy():
        try:
            return httpx.get(f"http://127.0.0.1:{mon}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 20, f"nats-server to be healthy: {p.output()}")


def redis_server(tmp: Path) -> tuple[Proc, str, int]:
    port = free_port()
    # appendonly + fsync always: a restarted Redis must still know every task
    p = Proc("redis", [need("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                       "--save", "", "--dir", str(tmp), "--appendonly", "yes",
                       "--appendfsync", "always", "--maxmemory-policy", "noeviction"], tmp)
    return p, f"redis://127.0.0.1:{port}/0", port


def start_redis(p: Proc, port: int) -> None:
    import redis

    p.start()

    def up():
        try:
            return redis.Redis(port=port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    wait_until(up, 20, f"redis-server to answer: {p.output()}")


def serve_env(**settings) -> dict:
    """A child's environment with QGT_SERVE_<KEY> settings."""
    return clean_env(**{f"QGT_SERVE_{k.upper()}": v for k, v in settings.items()})


class Service:
    """``qgt serve`` on a free port, and an httpx client for it."""

    def __init__(self, tmp: Path, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings.setdefault("server_data_dir", str(tmp / "data"))
        settings.setdefault("worker_default_ranks", 1)
        self.data_dir = Path(settings["server_data_dir"])
        self.proc = Proc("serve", [QGT, "serve", "--port", str(self.port)], tmp,
                         serve_env(**settings))
        self.client = httpx.Client(base_url=self.url, timeout=30,
                                   headers={"X-API-Key": settings.get("server_api_key", "")})

    def start(self) -> Service:
        self.proc.start()

        def answers():
            if self.proc.proc.poll() is not None:
                raise AssertionError(f"qgt serve exited: {self.proc.output()}")
            try:
                return self.client.get("/health", timeout=2).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        wait_until(answers, 60, "qgt serve to answer /health")
        return self

    def submit(self, qasm: str = BELL3, **fields) -> str:
        r = self.client.post("/tasks", json={"quantum_circuit": qasm, **fields})
        assert r.status_code == 200, r.text
        return r.json()["task_id"]

    def task(self, tid: str) -> dict:
        r = self.client.get(f"/tasks/{tid}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, tid: str, states=("DONE", "ERROR", "CANCELLED"), timeout: float = 120):
        def reached():
            t = self.task(tid)
            return t if t["state"] in states else None

        return wait_until(reached, timeout, f"task {tid} to reach {states}", poll=0.2)

    def stop(self) -> None:
        self.client.close()
        self.proc.stop()


def ranks_of(task_id: str) -> list[psutil.Process]:
    """Live processes of a task: its reaper, mpiexec and ranks name its directory."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if task_id in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def kill_ranks_until_final(svc, task_id: str, timeout: float = 120) -> int:
    """Kill the task's MPI ranks (as the OOM killer would) whenever they appear, until the
    task is final; returns how many were killed."""
    killed = 0
    deadline = time.monotonic() + timeout
    while svc.task(task_id)["state"] not in ("DONE", "ERROR") and time.monotonic() < deadline:
        for p in ranks_of(task_id):
            try:
                cmd = " ".join(p.cmdline())
                if "qgt run" in cmd and "mpiexec" not in cmd and "reaper" not in cmd:
                    p.send_signal(signal.SIGKILL)
                    killed += 1
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)
    return killed


def attempts_started(data_dir: Path, task_id: str) -> int:
    """How many attempts ran a job: each writes its own log-<attempt>.txt."""
    return len(list((data_dir / "tasks" / task_id).glob("log-*.txt")))


@pytest.fixture
def service_factory(tmp_path):
    made: list = []

    def make(**settings) -> Service:
        s = Service(tmp_path, **settings)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.stop()


class Deployment:
    """nats-server + redis-server + ``qgt serve --nats --redis`` + ``qgt worker``s."""

    def __init__(self, tmp: Path, workers: int = 2, worker_flags=(), worker_env=None,
                 **settings):
        self.tmp = tmp
        self.nats, self.nats_url, self.nats_mon = nats_server(tmp)
        self.redis, self.redis_url, self.redis_port = redis_server(tmp)
        settings.update(nats_url=self.nats_url, redis_url=self.redis_url)
        settings.setdefault("server_data_dir", str(tmp / "data"))
        settings.setdefault("worker_lease_seconds", 3)
        self.settings = settings
        self.service = Service(tmp, **settings)
        self.workers = [self.worker(i, *worker_flags, env=worker_env) for i in range(workers)]

    def worker(self, i: int, *flags: str, env: dict | None = None) -> Proc:
        return Proc(f"worker{i}", [QGT, "worker", *flags], self.tmp,
                    {**serve_env(worker_default_ranks=1, **self.settings), **(env or {})})

    def start(self) -> Deployment:
        start_nats(self.nats, self.nats_mon)
        start_redis(self.redis, self.redis_port)
        self.service.start()
        for w in self.workers:
            w.start()
        wait_until(lambda: self.service.client.get("/health").json()["workers"]["count"] ==
                   len(self.workers), 60, "the workers to register")
        return self

    def store(self):
        from qgt.serve.store.redis import RedisStore

        return RedisStore(self.redis_url)

    def owner_proc(self, task_id: str) -> Proc:
        """The worker process whose lease the task is under."""
        owner = self.store().get(task_id)["owner"]
        pid = int(owner.rsplit("-", 1)[1])
        return next(w for w in self.workers if w.proc and w.proc.pid == pid)

    def stop(self) -> None:
        self.service.stop()
        for w in self.workers:
            w.signal(signal.SIGCONT)
            w.stop()
        self.nats.stop()
        self.redis.stop()


@pytest.fixture
def deployment(tmp_path):
    need("nats-server")
    need("redis-server")
    made: list = []

    def make(**settings) -> Deployment:
        d = Deployment(tmp_path, **settings)
        made.append(d)
        return d.start()

    yield make
    for d in made:
        d.stop()
