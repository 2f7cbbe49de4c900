"""Remove the node shared-memory segments an earlier, killed run of this Slurm job left behind.

MPICH (4 and later) names a node's shared-memory segment after the job step:
``/dev/shm/mpich_shm_<FNV-1a of the PMI job id>_<node index>``, and under ``srun --mpi=pmi2``
that id is ``<jobid>.<stepid>``. The ranks unlink it in MPI_Finalize; ranks that are killed
(preemption past KillWait, the OOM killer, ``kill -9``) leave it there. A requeued job keeps its
job id and numbers its steps from 0 again, so its step finds the dead run's segment under the
same name, attaches to it instead of creating a fresh one, reads stale addresses and aborts in
MPI_Init ("UCX ERROR failed to unpack address"). slurm/requeue-long.sbatch runs this on every
node of a restarted job before it starts qgt:

    srun --ntasks-per-node=1 -n "$SLURM_JOB_NUM_NODES" \\
         python -m qgt.runtime.stale_shm "$SLURM_JOB_ID"

Only this job's own names are touched, so other jobs sharing the node are safe.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

SHM_DIR = Path("/dev/shm")
# Steps of one run of a job looked for: the scripts start one or two; far more is harmless.
MAX_STEPS = 256


def fnv1a(text: str) -> int:
    """32-bit FNV-1a, the hash MPICH applies to the PMI job id."""
    h = 2166136261
    for byte in text.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def segment_prefixes(job_id: str, steps: int = MAX_STEPS) -> list[str]:
    """The segment name prefixes of steps 0..steps-1 of `job_id` (any node index follows)."""
    return [f"{kind}_{fnv1a(f'{job_id}.{step}'):x}_"
            for step in range(steps) for kind in ("mpich_shm", "mpich_vci")]


def stale_segments(job_id: str, shm_dir: Path = SHM_DIR, steps: int = MAX_STEPS) -> list[Path]:
    """This job's segments present in `shm_dir` and owned by this user."""
    prefixes = tuple(segment_prefixes(job_id, steps))
    uid = os.getuid()
    found = []
    try:
        entries = list(shm_dir.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        if path.name.startswith(prefixes):
            try:
                if path.lstat().st_uid == uid:
                    found.append(path)
            except FileNotFoundError:
                continue
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m qgt.runtime.stale_shm",
        description="Remove MPICH shared-memory segments a killed earlier run of this Slurm job "
                    "left in /dev/shm (run on every node before a requeued job's first srun "
                    "step). Touches only this job's names.")
    p.add_argument("job_id", nargs="?", default=os.environ.get("SLURM_JOB_ID"),
                   help="the Slurm job id (default: $SLURM_JOB_ID)")
    p.add_argument("--shm-dir", type=Path, default=SHM_DIR, help="default: %(default)s")
    args = p.parse_args(argv)
    if not args.job_id:
        p.error("no job id: pass one, or run inside a Slurm job")
    node = os.environ.get("SLURMD_NODENAME", os.uname().nodename)
    removed = []
    for path in stale_segments(args.job_id, args.shm_dir):
        try:
            path.unlink()
            removed.append(path.name)
        except FileNotFoundError:
            continue
    if removed:
        print(f"stale_shm: {node}: removed {len(removed)} segment(s) of job {args.job_id} "
              f"left by a killed run: {' '.join(removed)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
