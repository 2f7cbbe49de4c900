"""The batch scripts users copy (slurm/*.sbatch), run as real jobs on the test Slurm cluster.

  - run-srun.sbatch and run-mpiexec.sbatch: a 2-rank GHZ run with shots completes, and its
    result-<jobid>.json and state-<jobid>.h5 land in the submit directory;
  - requeue-long.sbatch: a Trotter run is warned with SIGUSR1 (as `--signal=B:USR1@300` would
    warn it before its time limit), checkpoints, exits 85, requeues itself, resumes, and ends
    COMPLETED with the same final state as an uninterrupted run.
The scripts are submitted unchanged, as users would; the test shrinks them with sbatch options
(one node, 2 tasks of 1 CPU, short time limit) and QGT_* variables in the exported environment.
The cluster fixture (tests/slurm_cluster.py) skips everything when slurm-wlm is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from qgt.runtime import stale_shm
from tests.conftest import QGT, clean_env, run_qgt

ROOT = Path(__file__).resolve().parent.parent
SLURM = ROOT / "slurm"
VENV = Path(sys.executable).parent.parent
CHECKPOINTED = 85

# One node, two ranks of one CPU each: what the smallest CI machine can give.
SMALL_JOB = ["--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--time=10"]

# The requeue test's circuit and settings. Small pages and blocks make the Trotter circuit a long
# list of short plan steps (a sweep or a swap each); with a checkpoint after every step the run
# lasts several seconds, so the warning reliably lands in the middle of it.
TROTTER = "trotter:16:60"
REQUEUE_ENV = {
    "QGT_BLOCK_QUBITS": "4",
    "QGT_PAGE_QUBITS": "2",
    "QGT_FUSION_MAX_QUBITS": "2",
    "QGT_CHECKPOINT_EVERY_STEPS": "1",
    "QGT_CHECKPOINT_INTERVAL": "0",
    "QGT_CHECKPOINT_KEEP": "2",
}


def _export(env: dict[str, str]) -> str:
    """sbatch's --export: the submitting environment plus `env` (values without commas)."""
    for k, v in env.items():
        assert "," not in v, f"{k}={v!r}: sbatch --export cannot carry commas"
    return "--export=" + ",".join(["ALL", *(f"{k}={v}" for k, v in env.items())])


def _has_resume() -> bool:
    help_text = subprocess.run(
        [QGT, "run", "--help"], capture_output=True, text=True, timeout=60, env=clean_env()
    ).stdout
    return "--resume" in help_text


def _fail(cluster, job_id: int, what: str) -> None:
    pytest.fail(
        f"{what}\njob: {cluster.job_info(job_id)}\n---- job output ----\n{cluster.output(job_id)}"
        f"\n---- daemons ----\n{cluster.logs()}",
        pytrace=False,
    )


# run-srun.sbatch keeps its default binding (numa: each rank gets its own share of the node's
# cores, one CPU each here); run-mpiexec.sbatch runs unbound.
@pytest.mark.parametrize("script,binding", [("run-srun.sbatch", None),
                                            ("run-mpiexec.sbatch", "none")])
def test_plain_run_script(slurm_cluster, tmp_path, script, binding):
    t0 = time.monotonic()
    env = {"QGT_VENV": str(VENV)}
    if binding:
        env["QGT_BINDING"] = binding
    job = slurm_cluster.submit(
        SLURM / script,
        *SMALL_JOB,
        _export(env),
        script_args=["ghz:12", "--shots", "100", "--seed", "5"],
        cwd=tmp_path,
    )
    state = slurm_cluster.wait_job(job, timeout=180)
    out = slurm_cluster.output(job)
    if state != "COMPLETED":
        _fail(slurm_cluster, job, f"{script} ended {state}")
    assert slurm_cluster.job_info(job)["ExitCode"] == "0:0", out
    assert "qgt exited 0" in out, out

    res = json.loads((tmp_path / f"result-{job}.json").read_text())
    assert res["ranks"] == 2 and res["n_qubits"] == 12
    assert res["shots"] == 100 and sum(res["counts"].values()) == 100
    assert set(res["counts"]) <= {"0" * 12, "1" * 12}, res["counts"]
    assert res["metadata"]["threads_per_rank"] == 1  # QGT_THREADS from --cpus-per-task
    assert {b["strategy"] for b in res["metadata"]["bindings"]} == {binding or "numa"}

    with h5py.File(tmp_path / f"state-{job}.h5", "r") as f:
        psi = f["state"][...]
    expect = np.zeros(1 << 12, dtype=complex)
    expect[0] = expect[-1] = 2**-0.5
    np.testing.assert_allclose(psi, expect, atol=1e-12)
    assert (tmp_path / f"state-{job}.rank00001.h5").is_file()
    print(f"{script} ghz:12 on 2 ranks: {time.monotonic() - t0:.1f} s from sbatch to result")


def _wait_for_checkpoint(cluster, job_id: int, ckpt_dir: Path, timeout: float) -> float:
    """Poll until qgt has written its first checkpoint (it is then running plan steps with its
    signal handlers in place); returns when, relative to now."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        # A complete checkpoint is a ckpt-NNNNNN directory (renamed from .tmp once written).
        if any(p.parent.suffix != ".tmp" for p in ckpt_dir.glob("ckpt-*/master.h5")):
            return time.monotonic() - t0
        state = cluster.job_state(job_id)
        if state not in ("PENDING", "CONFIGURING", "RUNNING"):
            _fail(cluster, job_id, f"job {state} before its first checkpoint in {ckpt_dir}")
        time.sleep(0.05)
    _fail(cluster, job_id, f"no checkpoint in {ckpt_dir} after {timeout} s")
    return 0.0


def _assert_uninterrupted_state(tmp_path: Path, job: int) -> None:
    """The job's final state equals the same circuit and settings run uninterrupted, without
    checkpoints."""
    ref = tmp_path / "reference.h5"
    ref_env = clean_env(**{k: v for k, v in REQUEUE_ENV.items() if "CHECKPOINT" not in k})
    proc = run_qgt(2, ["run", TROTTER, "--statevector", str(ref), "--quiet"], env=ref_env,
                   cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(tmp_path / f"state-{job}.h5", "r") as f:
        resumed = f["state"][...]
    with h5py.File(ref, "r") as f:
        reference = f["state"][...]
    assert np.max(np.abs(resumed - reference)) <= 1e-12
    assert abs(np.vdot(resumed, resumed).real - 1) < 1e-10


def test_requeue_script_resumes_to_the_uninterrupted_state(slurm_cluster, tmp_path):
    if not _has_resume():
        pytest.skip("`qgt run --help` has no --resume: checkpoint/restart not in this build")
    ckpt = tmp_path / "ckpt"
    env = {
        "QGT_VENV": str(VENV),
        "QGT_CONFIG": str(ROOT / "configs" / "slurm-requeue.json"),
        "QGT_CHECKPOINT_DIR": str(ckpt),
        "QGT_BINDING": "none",
        **REQUEUE_ENV,
    }
    t0 = time.monotonic()
    job = slurm_cluster.submit(
        SLURM / "requeue-long.sbatch",
        *SMALL_JOB,
        _export(env),
        script_args=[TROTTER],
        cwd=tmp_path,
    )
    slurm_cluster.wait_state(job, ["RUNNING"], timeout=60)
    t_ckpt = _wait_for_checkpoint(slurm_cluster, job, ckpt, timeout=120)
    slurm_cluster.signal_batch(job, "USR1")
    state = slurm_cluster.wait_job(job, timeout=300)
    t_done = time.monotonic() - t0
    out = slurm_cluster.output(job)
    info = slurm_cluster.job_info(job)
    if state != "COMPLETED":
        _fail(slurm_cluster, job, f"requeue-long.sbatch ended {state}")
    if f"qgt exited {CHECKPOINTED}" not in out:
        _fail(slurm_cluster, job, "the run finished before the warning reached it: make the "
              "test circuit longer")
    assert info["RestartCnt"] >= 1, (info, out)
    assert info["ExitCode"] == "0:0", (info, out)
    assert "SLURM_RESTART_COUNT=0" in out and "SLURM_RESTART_COUNT=1" in out, out
    assert "SIGUSR1" in out and "requeueing job" in out, out
    assert "qgt exited 0" in out, out

    res = json.loads((tmp_path / f"result-{job}.json").read_text())
    assert res["ranks"] == 2 and res["n_qubits"] == 16
    assert str(res["metadata"].get("resumed_from", "")).startswith(str(ckpt)), res["metadata"]

    _assert_uninterrupted_state(tmp_path, job)
    print(f"requeue-long {TROTTER}: first checkpoint {t_ckpt:.1f} s after start, "
          f"COMPLETED after {info['RestartCnt']} restart(s), {t_done:.1f} s in all")


def _kill_ranks(ckpt_dir: Path) -> list[int]:
    """SIGKILL the qgt ranks of the run writing to ckpt_dir (as the OOM killer would), not srun."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if f"checkpoint_dir={ckpt_dir}" in argv and Path(argv[0]).name != "srun":
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
            except ProcessLookupError:
                continue
    return killed


def test_requeue_after_the_ranks_were_killed_resumes(slurm_cluster, tmp_path):
    """Ranks SIGKILLed mid-run leave MPICH's node segment behind under the job step's name;
    requeued, the same job id must still start MPI (the script removes this job's leftovers)
    and resume from the newest checkpoint to the right state."""
    ckpt = tmp_path / "ckpt"
    env = {"QGT_VENV": str(VENV), "QGT_CHECKPOINT_DIR": str(ckpt), "QGT_BINDING": "none",
           **REQUEUE_ENV}
    job = slurm_cluster.submit(SLURM / "requeue-long.sbatch", *SMALL_JOB, _export(env),
                               script_args=[TROTTER], cwd=tmp_path)
    slurm_cluster.wait_state(job, ["RUNNING"], timeout=60)
    _wait_for_checkpoint(slurm_cluster, job, ckpt, timeout=120)
    assert _kill_ranks(ckpt), "no qgt rank found to kill"
    assert slurm_cluster.wait_job(job, timeout=120) == "FAILED", slurm_cluster.output(job)
    leftovers = stale_shm.stale_segments(str(job))
    slurm_cluster.run(["scontrol", "requeue", str(job)])
    state = slurm_cluster.wait_job(job, timeout=300)
    out = slurm_cluster.output(job)
    if state != "COMPLETED":
        _fail(slurm_cluster, job, f"the requeued job ended {state}")
    assert "SLURM_RESTART_COUNT=1" in out and "qgt exited 0" in out, out
    # The killed run's segments were there, and the restart removed exactly those.
    assert leftovers, "the killed ranks left no MPICH segment: nothing was tested"
    assert all(p.name in out for p in leftovers) and not stale_shm.stale_segments(str(job)), out
    res = json.loads((tmp_path / f"result-{job}.json").read_text())
    assert str(res["metadata"].get("resumed_from", "")).startswith(str(ckpt)), res["metadata"]
    _assert_uninterrupted_state(tmp_path, job)


def test_requeue_script_does_not_requeue_a_user_error(slurm_cluster, tmp_path):
    """Status 2 (bad input) would fail the same way again: the job fails at once, with one
    message, and is not requeued."""
    job = slurm_cluster.submit(
        SLURM / "requeue-long.sbatch",
        *SMALL_JOB,
        _export({"QGT_VENV": str(VENV), "QGT_BINDING": "none"}),
        script_args=["no-such-circuit.qasm"],
        cwd=tmp_path,
    )
    state = slurm_cluster.wait_job(job, timeout=120)
    out = slurm_cluster.output(job)
    info = slurm_cluster.job_info(job)
    assert state == "FAILED", out
    assert info["ExitCode"] == "2:0" and info["RestartCnt"] == 0, (info, out)
    assert out.count("qgt: error:") == 1 and "no-such-circuit.qasm" in out, out
    assert "requeueing" not in out, out
