"""One task as a real multi-rank ``qgt run`` in its own process group.

Called by ``qgt.serve.worker``.  The command is::

    python -m qgt.serve.reaper WORKER_PID -- mpiexec -n RANKS qgt run circuit.qasm \\
        --shots N --seed S --observable ... --output result-A.json [--statevector state-A.h5]
        --set checkpoint_dir=ckpt --set checkpoint_every_steps=K --set resume=true --progress

in ``data_dir/tasks/<id>/`` (A is the attempt: a stale attempt never overwrites a newer
one's outputs; all attempts share the checkpoint directory, so attempt 2 resumes where
attempt 1 stopped).  ``kill()`` SIGKILLs the group; the reaper kills it if the worker dies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

from qgt.errors import EXIT_CHECKPOINTED

USER_ERROR = 2  # qgt's exit status for bad input: rerunning cannot help
PROGRESS = re.compile(rb"qgt: step (\d+)/(\d+) \((\d+)%\) ([^,]+),")


def task_dir(data_dir: str, task_id: str) -> str:
    return os.path.join(os.path.abspath(data_dir), "tasks", task_id)


def prepare(data_dir: str, rec: dict) -> str:
    """The task's directory with its circuit file (written once; every attempt reads it)."""
    d = task_dir(data_dir, rec["task_id"])
    os.makedirs(os.path.join(d, "ckpt"), exist_ok=True)
    path = os.path.join(d, "circuit.qasm")
    if not os.path.exists(path):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(rec["request"]["quantum_circuit"])
        os.replace(path + ".tmp", path)
    return d


def run_options(req: dict) -> list[str]:
    """The ``qgt run`` options every dispatch passes: shots, seed, observables, settings."""
    args = ["--shots", str(req["shots"]), "--seed", str(req["seed"]), "--progress",
            "--set", "progress_interval=1s"]
    for label in req["observables"]:
        args += ["--observable", label]
    for k, v in req["config"].items():
        args += ["--set", f"{k}={v}"]
    return args


def qgt_run_args(rec: dict, d: str, every_steps: int, attempt: int) -> list[str]:
    """The ``qgt run`` arguments of one process-group attempt."""
    req = rec["request"]
    args = [os.path.join(d, "circuit.qasm"), *run_options(req),
            "--output", os.path.join(d, f"result-{attempt}.json")]
    if req["keep_state"]:
        args += ["--statevector", os.path.join(d, f"state-{attempt}.h5")]
    if every_steps:
        args += ["--set", f"checkpoint_dir={os.path.join(d, 'ckpt')}",
                 "--set", f"checkpoint_every_steps={every_steps}", "--set", "resume=true"]
    return args


def _bin(name: str) -> str:
    here = os.path.dirname(sys.executable)
    return shutil.which(name, path=here + os.pathsep + os.environ.get("PATH", "")) or name


def child_env() -> dict:
    """No QGT_* of the service reaches the run; the venv's bin comes first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QGT_SERVE_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def read_result(path: str) -> dict:
    """The parts of result.json a task record keeps (the plan and per-rank figures stay
    in the file)."""
    with open(path, encoding="utf-8") as f:
        res = json.load(f)
    keep = ("counts", "expectation_values", "timings", "n_qubits", "ranks", "shots", "seed",
            "statevector")
    out = {k: res.get(k) for k in keep}
    out["resumed_from"] = (res.get("metadata") or {}).get("resumed_from")
    return out


class Job:
    """What a worker needs of a running attempt, whatever runs it: ``wait``, ``kill``,
    ``identity`` and ``status`` (recorded in heartbeats), ``progress``, ``outcome``.
    Subclasses set ``log_path`` (qgt's output) and ``result_path``."""

    log_path = result_path = ""
    keep_state = False
    dir = ""

    def identity(self) -> dict:
        return {}

    def status(self) -> dict:
        return {}

    def progress(self) -> dict | None:
        """The last progress line qgt printed: step, n_steps, percent, phase."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 4096))
                tail = f.read()
        except OSError:
            return None
        found = PROGRESS.findall(tail)
        if not found:
            return None
        step, n, pct, phase = found[-1]
        return {"step": int(step), "n_steps": int(n), "percent": int(pct),
                "phase": phase.decode(errors="replace")}

    def tail(self, lines: int = 6) -> str:
        try:
            with open(self.log_path, "rb") as f:
                text = f.read()[-4000:].decode(errors="replace")
        except OSError:
            return "(no output)"
        keep = [ln for ln in text.splitlines() if ln.strip() and not PROGRESS.match(
            ln.encode())]
        return " | ".join(keep[-lines:]) or "(no output)"

    def outcome(self, rc: int) -> tuple[str, object]:
        """("done", result) | ("user_error", message) | ("failed", message)."""
        if rc == 0:
            res = read_result(self.result_path)
            if res.get("statevector") and self.keep_state:
                from qgt.io.hdf5 import write_standalone

                res["statevector"] = write_standalone(
                    res["statevector"], os.path.join(self.dir, "state.h5"))
            else:
                res["statevector"] = None
            return "done", res
        if rc == USER_ERROR:
            return "user_error", self.tail()
        what = "checkpointed and stopped" if rc == EXIT_CHECKPOINTED else f"exit status {rc}"
        return "failed", f"the ranks failed ({what}): {self.tail()}"


class GroupJob(Job):
    """An attempt as ``mpiexec`` under the reaper, in its own process group."""

    def __init__(self, rec: dict, d: str, every_steps: int):
        self.dir = d
        self.attempt = rec["attempt"]
        self.keep_state = rec["request"]["keep_state"]
        ranks = rec["request"]["ranks"]
        self.log_path = os.path.join(d, f"log-{self.attempt}.txt")
        self.result_path = os.path.join(d, f"result-{self.attempt}.json")
        cmd = [sys.executable, "-m", "qgt.serve.reaper", str(os.getpid()), "--",
               _bin("mpiexec"), "-n", str(ranks), _bin("qgt"), "run",
               *qgt_run_args(rec, d, every_steps, self.attempt)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=d, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=child_env(),
                                         start_new_session=True)
        self.pgid = self.proc.pid

    def identity(self) -> dict:
        """Recorded with the first heartbeat: which process group holds the ranks."""
        return {"pgid": self.pgid}

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
