"""Shared test fixtures: launching real MPI jobs as subprocesses with timeouts, and the
single-node Slurm cluster (tests/slurm_cluster.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.slurm_cluster import slurm_cluster  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MPIEXEC = str(BIN / "mpiexec")
QGT = str(BIN / "qgt")


def clean_env(**extra) -> dict:
    """The environment for a child: no stray QGT_* settings from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QGT_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_mpi(ranks: int, argv: list[str], timeout: float = 240, env: dict | None = None,
            cwd=None) -> subprocess.CompletedProcess:
    """Run ``mpiexec -n ranks argv`` and return the finished process (a hang fails)."""
    cmd = [MPIEXEC, "-n", str(ranks), *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env(), cwd=cwd)


def run_qgt(ranks: int, args: list[str], **kw) -> subprocess.CompletedProcess:
    return run_mpi(ranks, [QGT, *args], **kw)


@pytest.fixture
def mpi():
    return run_mpi
