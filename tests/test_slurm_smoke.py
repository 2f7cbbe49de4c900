"""Smoke tests of the single-node Slurm cluster (tests/slurm_cluster.py) with our MPI stack.

They pin down what qgt's batch use relies on, before qgt itself is run under Slurm:
  - `srun --mpi=pmi2` starts PyPI-MPICH + mpi4py ranks that see each other;
  - `mpiexec` from the venv works inside an `sbatch` job;
  - the self-requeue pattern of a checkpointed job: the batch shell traps SIGUSR1, forwards it
    to the app, the app checkpoints and exits with a agreed status, the shell calls
    `scontrol requeue`, and the job comes back with SLURM_RESTART_COUNT=1 and finishes.
The cluster fixture skips everything here when slurm-wlm is not installed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

PY = sys.executable
# The checkpoint-and-requeue exit status of the stand-in app; qgt's own value lives in qgt.
CHECKPOINTED = 85

MPI_PROBE = (
    "from mpi4py import MPI\n"
    "c = MPI.COMM_WORLD\n"
    "total = c.allreduce(c.rank + 1)\n"
    "print(f'rank {c.rank} size {c.size} sum {total}', flush=True)\n"
    "sizes = c.gather(c.size)\n"
    "if c.rank == 0:\n"
    "    print(f'sizes {sizes}', flush=True)\n"
)

# Stand-in for a long qgt run: works in steps until SIGUSR1, then all ranks agree to stop (as
# qgt's checkpoint trigger must: a signal reaches the ranks at different moments), rank 0
# writes the step reached, and every rank exits CHECKPOINTED. Started again, it resumes from the
# checkpoint and finishes. Never runs longer than 90 s, so a lost signal fails the test.
APP = f"""\
import pathlib, signal, sys, time
from mpi4py import MPI

comm = MPI.COMM_WORLD
ckpt, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
stop = False

def on_usr1(signum, frame):
    global stop
    stop = True

signal.signal(signal.SIGUSR1, on_usr1)
step = int(ckpt.read_text()) if ckpt.exists() else 0
if comm.rank == 0:
    print(f"app: start at step {{step}} on {{comm.size}} ranks", flush=True)
if step > 0:
    comm.Barrier()
    if comm.rank == 0:
        print("app: finished", flush=True)
    sys.exit(0)
comm.Barrier()  # every rank has its handler before the test may signal
if comm.rank == 0:
    ready.touch()
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    time.sleep(0.05)
    step += 1
    if comm.allreduce(stop, op=MPI.LOR):
        break
else:
    sys.exit(1)
if comm.rank == 0:
    ckpt.write_text(str(step))
    print(f"app: checkpointed at step {{step}}", flush=True)
comm.Barrier()
sys.exit({CHECKPOINTED})
"""

# The batch-script pattern a self-requeueing checkpointed qgt job is meant to follow.
REQUEUE_JOB = f"""\
#!/bin/bash
#SBATCH --job-name=qgt-requeue-smoke
#SBATCH --ntasks=2
#SBATCH --requeue
#SBATCH --open-mode=append
# --open-mode=append: a requeued run would otherwise truncate the first run's output.
PY=$1
echo "batch: start restart=${{SLURM_RESTART_COUNT:-0}}"
# B:USR1 reaches only this shell; forward it to the app (srun relays it to every rank).
trap 'echo "batch: USR1, forwarding"; kill -USR1 "$app" 2>/dev/null' USR1
srun --mpi=pmi2 "$PY" app.py ckpt ready &
app=$!
# A trapped signal makes `wait` return early: wait until the app has really exited, then read
# its status (bash keeps it for a repeated wait).
while kill -0 "$app" 2>/dev/null; do wait "$app"; done
wait "$app"; rc=$?
echo "batch: app exited $rc"
if [ "$rc" -eq {CHECKPOINTED} ]; then
    # Requeue ends this run (slurmctld kills the shell) and queues the same job id again.
    scontrol requeue "$SLURM_JOB_ID" || exit 1
    exit 0
fi
exit "$rc"
"""


def _wait_file(path: Path, timeout: float, cluster, job_id: int) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(
                f"{path.name} not written in {timeout} s; job {cluster.job_info(job_id)}\n"
                + cluster.output(job_id)
                + cluster.logs()
            )
        if cluster.job_state(job_id) not in ("PENDING", "RUNNING", "CONFIGURING"):
            pytest.fail(f"job ended before {path.name}:\n{cluster.output(job_id)}")
        time.sleep(0.05)


def test_srun_pmi2_mpi4py(slurm_cluster):
    t0 = time.monotonic()
    proc = slurm_cluster.run(
        ["srun", "--mpi=pmi2", "-n", "2", "--label", PY, "-c", MPI_PROBE], timeout=60
    )
    lines = set(proc.stdout.splitlines())
    assert "0: rank 0 size 2 sum 3" in lines, proc.stdout
    assert "1: rank 1 size 2 sum 3" in lines, proc.stdout
    assert "0: sizes [2, 2]" in lines, proc.stdout
    print(f"srun -n 2 mpi4py: {time.monotonic() - t0:.2f} s")


def test_sbatch_mpiexec(slurm_cluster, tmp_path):
    script = tmp_path / "mpi.sh"
    # Hydra sees the Slurm allocation and starts its proxies with srun.
    script.write_text(
        f'#!/bin/bash\n#SBATCH --ntasks=2\n"{Path(PY).parent / "mpiexec"}" -n 2 "{PY}" probe.py\n'
    )
    (tmp_path / "probe.py").write_text(MPI_PROBE)
    t0 = time.monotonic()
    job = slurm_cluster.submit(script, "--output=out.txt")
    state = slurm_cluster.wait_job(job, timeout=90)
    out = (tmp_path / "out.txt").read_text()
    assert state == "COMPLETED", out
    assert slurm_cluster.job_info(job)["ExitCode"] == "0:0"
    assert "sizes [2, 2]" in out, out
    print(f"sbatch + mpiexec -n 2: {time.monotonic() - t0:.2f} s")


@pytest.mark.parametrize("trigger", ["scancel", "time_limit"])
def test_self_requeue_after_usr1(slurm_cluster, tmp_path, trigger):
    """Checkpoint on SIGUSR1, requeue, restart with SLURM_RESTART_COUNT=1, finish.

    Two ways to deliver the warning signal:
      scancel     `scancel --signal=USR1 --batch JOB` from the test, as soon as the app is up:
                  how a test simulates preemption; the whole test takes ~10 s.
      time_limit  `--time=1 --signal=B:USR1@55`, what a real job uses. slurmctld checks time
                  limits only every 30 s, so the signal comes at its first check, ~0-30 s in.
    Either way the requeued job waits cred_expire (5 s in our slurm.conf) before restarting.
    """
    (tmp_path / "app.py").write_text(APP)
    script = tmp_path / "job.sh"
    script.write_text(REQUEUE_JOB)
    extra = ["--time=1", "--signal=B:USR1@55"] if trigger == "time_limit" else []
    t0 = time.monotonic()
    job = slurm_cluster.submit(script, "--output=out.txt", *extra, script_args=[PY])
    _wait_file(tmp_path / "ready", 60, slurm_cluster, job)
    t_ready = time.monotonic() - t0
    if trigger == "scancel":
        slurm_cluster.signal_batch(job, "USR1")
    state = slurm_cluster.wait_job(job, timeout=120)
    t_done = time.monotonic() - t0
    out = (tmp_path / "out.txt").read_text()
    info = slurm_cluster.job_info(job)
    assert state == "COMPLETED", out
    assert info["RestartCnt"] == 1, (info, out)
    assert info["ExitCode"] == "0:0", (info, out)
    assert "batch: start restart=0" in out, out
    assert "batch: start restart=1" in out, out
    assert f"batch: app exited {CHECKPOINTED}" in out, out
    step = int((tmp_path / "ckpt").read_text())
    assert step > 0
    assert f"app: start at step {step} on 2 ranks" in out, out
    assert "app: finished" in out, out
    print(f"requeue via {trigger}: app up {t_ready:.1f} s, done {t_done:.1f} s")
