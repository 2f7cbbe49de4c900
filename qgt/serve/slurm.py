"""``qgt worker --slurm``: a task's attempt as an sbatch job of qgt's requeueing script.

Called by qgt.serve.worker.Runner (through qgt.serve.nats_worker) as its job factory.

    sbatch --parsable --chdir DIR --output DIR/slurm-%j.out slurm/requeue-long.sbatch \\
        DIR/circuit.qasm --shots N --seed S ...      (QGT_CHECKPOINT_DIR=DIR/ckpt)

The Slurm job id is recorded with the task at the first heartbeat, so a worker that
restarts (or another one, after the lease) adopts the running job instead of submitting a
second one.  The job is followed with ``squeue``, then ``sacct`` once squeue has forgotten
it, then ``scontrol show job`` (a cluster without accounting); cancelled with ``scancel``.
A preempted or time-limited job requeues itself (same id, resume from the checkpoint);
only a job that ends for good ends the attempt.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

from qgt.serve.executor import Job, child_env, run_options
from qgt.serve.model import PENDING, RUNNING

WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "SUSPENDED",
           "RESV_DEL_HOLD", "RESIZING"}
ACTIVE = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
FAILED_FOR_GOOD = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
                   "OUT_OF_MEMORY", "PREEMPTED", "SPECIAL_EXIT"}
GRACE = 10.0  # seconds a COMPLETED job may take to show its result file (shared FS lag)
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "slurm", "requeue-long.sbatch")


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def job_state(job_id: str) -> tuple[str, int | None]:
    """(state, exit status or None): squeue, else sacct, else scontrol; ("UNKNOWN", None)
    when no source knows the job."""
    q = _run(["squeue", "-h", "-j", job_id, "-o", "%T"])
    if q.returncode == 0 and q.stdout.strip():
        return q.stdout.split()[0], None
    a = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode"])
    if a.returncode == 0 and a.stdout.strip():
        state, code = a.stdout.strip().splitlines()[0].split("|")[:2]
        return state.split()[0], int(code.split(":")[0])
    c = _run(["scontrol", "-o", "show", "job", job_id])
    if c.returncode == 0 and "JobState=" in c.stdout:
        fields = dict(kv.split("=", 1) for kv in c.stdout.split() if "=" in kv)
        return fields["JobState"], int(fields.get("ExitCode", "0:0").split(":")[0])
    return "UNKNOWN", None


class SlurmJob(Job):
    def __init__(self, rec: dict, d: str, cfg):
        self.dir = d
        self.poll = cfg.slurm_poll_seconds
        self.keep_state = rec["request"]["keep_state"]
        self.state = "PENDING"
        self._completed_at = None
        old = rec.get("slurm_job_id") or ""
        if old and job_state(old)[0] not in FAILED_FOR_GOOD | {"UNKNOWN"}:
            self.job_id = old  # adopt: never a second job for one task
        else:
            self.job_id = self._submit(rec, d, cfg)
        self.log_path = os.path.join(d, f"slurm-{self.job_id}.out")
        self.result_path = os.path.join(d, f"result-{self.job_id}.json")

    @staticmethod
    def _submit(rec: dict, d: str, cfg) -> str:
        req = rec["request"]
        env = child_env()
        env.update(QGT_VENV=sys.prefix, QGT_CHECKPOINT_DIR=os.path.join(d, "ckpt"),
                   QGT_CHECKPOINT_EVERY_STEPS=str(cfg.worker_checkpoint_every_steps))
        argv = ["sbatch", "--parsable", f"--job-name=qgt-{rec['task_id']}", f"--chdir={d}",
                f"--output={os.path.join(d, 'slurm-%j.out')}", "--nodes=1",
                f"--ntasks-per-node={req['ranks']}", f"--ntasks={req['ranks']}",
                "--cpus-per-task=1", "--time=60", "--export=ALL"]
        if cfg.slurm_partition:
            argv.append(f"--partition={cfg.slurm_partition}")
        argv += shlex.split(cfg.slurm_sbatch_args)
        argv += [cfg.slurm_script or SCRIPT, os.path.join(d, "circuit.qasm"),
                 *run_options(req)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                             cwd=d)
        if out.returncode != 0:
            raise RuntimeError(f"sbatch refused the job: {out.stderr.strip()}")
        return out.stdout.strip().split(";")[0]

    def identity(self) -> dict:
        return {"slurm_job_id": self.job_id}

    def status(self) -> dict:
        return {"state": RUNNING if self.state in ACTIVE else PENDING}

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            state, code = job_state(self.job_id)
            self.state = state
            if state == "COMPLETED":
                if os.path.exists(self.result_path):
                    return 0
                self._completed_at = self._completed_at or time.monotonic()
                if time.monotonic() - self._completed_at > GRACE:
                    return 1
            elif state in FAILED_FOR_GOOD or state == "UNKNOWN":
                return code if code else 1
            if time.monotonic() + self.poll > deadline:
                return None
            time.sleep(self.poll)

    def kill(self) -> None:
        # The batch script turns SIGTERM into "checkpoint and requeue me" (a preemption):
        # a cancel must not come back, so the job stops being requeueable first.
        _run(["scontrol", "update", f"JobId={self.job_id}", "Requeue=0"])
        _run(["scancel", self.job_id])

    def outcome(self, rc: int) -> tuple[str, object]:
        kind, payload = super().outcome(rc)
        if kind == "failed":
            payload = f"Slurm job {self.job_id} ended {self.state}: {payload}"
        return kind, payload
