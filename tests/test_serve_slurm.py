"""``qgt worker --slurm`` on the single-node test cluster (tests/slurm_cluster.py), with
real NATS, Redis and qgt serve: each task is an sbatch job of slurm/requeue-long.sbatch.

End states: a Bell task is DONE with its Slurm job id recorded, found through the
fallback once squeue has forgotten the job, and a worker restarted meanwhile adopts the
running job instead of submitting another; a job preempted (requeued by Slurm) and one
warned of its time limit (checkpoint, exit 85, requeue itself) both resume from their
checkpoint under the same job id and end DONE in one attempt; a cancel scancels the job.
Skipped when Slurm, nats-server or redis-server is not installed.
"""

from __future__ import annotations

import pytest

from tests.serve_fixtures import BELL3, SLOW_CONFIG, deployment, ranks_of, slow_qasm, wait_until
from tests.slurm_cluster import slurm_cluster  # noqa: F401  (a fixture)

pytestmark = pytest.mark.timeout(300)
_ = deployment  # a fixture (imported for pytest)


@pytest.fixture
def slurm_service(deployment, slurm_cluster):  # noqa: F811
    d = deployment(workers=1, worker_flags=("--slurm",), worker_env=slurm_cluster.env,
                   worker_lease_seconds=4, slurm_poll_seconds=0.5)
    yield d, slurm_cluster
    slurm_cluster.cancel_all()


def _wait_slurm_running(svc, cluster, tid, steps=5):
    def running():
        t = svc.task(tid)
        return (t.get("slurm_job_id") and (t["progress"] or {}).get("step", 0) >= steps
                and t["state"] == "RUNNING" and t)

    t = wait_until(running, 120, "the Slurm job to run")
    return t["slurm_job_id"]


def test_slurm_task_done_and_adopted_after_worker_restart(slurm_service):
    """The worker is SIGKILLed while its task's Slurm job runs; a new worker takes the
    lease over and follows the same job (no second sbatch): DONE, attempt 2, one job,
    right counts, the job found after it has left squeue."""
    d, cluster = slurm_service
    svc = d.service
    tid = svc.submit(slow_qasm(200), shots=400, ranks=2, config=SLOW_CONFIG)
    job = _wait_slurm_running(svc, cluster, tid)
    d.workers[0].kill()
    d.workers.append(d.worker(1, "--slurm", env=cluster.env).start())
    end = svc.wait(tid, timeout=180)
    assert end["state"] == "DONE" and end["attempt"] == 2, end
    assert end["slurm_job_id"] == job and sum(end["counts"].values()) == 400
    assert len(list((svc.data_dir / "tasks" / tid).glob("slurm-*.out"))) == 1
    assert cluster.run(["squeue", "-h", "-j", job], check=False).stdout.strip() == ""
    assert cluster.job_state(int(job)) == "COMPLETED"
    bell = svc.submit(BELL3, shots=256)
    done = svc.wait(bell, timeout=120)
    assert done["state"] == "DONE" and set(done["counts"]) == {"00", "11"}


@pytest.mark.parametrize("how", ["preempted", "time_limit_warning"])
def test_slurm_job_requeued_resumes_from_checkpoint(slurm_service, how):
    """Preempted (Slurm requeues the job) or warned of its time limit (the script
    checkpoints, exits 85 and requeues itself): same job id, resumed from the checkpoint,
    DONE in one attempt of the service."""
    d, cluster = slurm_service
    svc = d.service
    tid = svc.submit(slow_qasm(200), shots=300, ranks=2, config=SLOW_CONFIG)
    job = _wait_slurm_running(svc, cluster, tid, steps=20)
    if how == "preempted":
        cluster.run(["scontrol", "requeue", job])
    else:
        cluster.signal_batch(int(job), "USR1")
    end = svc.wait(tid, timeout=240)
    assert end["state"] == "DONE" and end["attempt"] == 1, end
    assert end["slurm_job_id"] == job and end["resumed_from_checkpoint"]
    assert sum(end["counts"].values()) == 300
    assert int(cluster.job_info(int(job))["RestartCnt"]) >= 1


def test_slurm_cancel_scancels_the_job(slurm_service):
    """Cancelling a task whose Slurm job runs: CANCELLED, and the job is CANCELLED too."""
    d, cluster = slurm_service
    svc = d.service
    tid = svc.submit(slow_qasm(400), shots=10, config=SLOW_CONFIG)
    job = _wait_slurm_running(svc, cluster, tid)
    assert svc.client.post(f"/tasks/{tid}/cancel").status_code == 200
    assert svc.wait(tid, timeout=60)["state"] == "CANCELLED"
    assert cluster.wait_job(int(job), timeout=60) == "CANCELLED"
    assert int(cluster.job_info(int(job))["RestartCnt"]) == 0  # not requeued either
    wait_until(lambda: not ranks_of(tid), 20, "the job's ranks to end")
