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


def nodes_args(nodes: int, ranks: int) -> list[str]:
    """mpiexec options that make ``nodes`` nodes of this machine: Hydra's fork launcher
    starts every rank here, and each host name is a node to MPI (its own node
    communicator, as for ranks on separate machines)."""
    if nodes <= 1:
        return []
    hosts = ",".join(f"node{i}" for i in range(nodes))
    return ["-launcher", "fork", "-hosts", hosts, "-ppn", str(ranks // nodes)]


def run_mpi(ranks: int, argv: list[str], timeout: float = 240, env: dict | None = None,
            cwd=None, nodes: int = 1) -> subprocess.CompletedProcess:
    """Run ``mpiexec -n ranks argv`` (on ``nodes`` emulated nodes) and return the
    finished process (a hang fails)."""
    cmd = [MPIEXEC, *nodes_args(nodes, ranks), "-n", str(ranks), *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env(), cwd=cwd)


def run_qgt(ranks: int, args: list[str], **kw) -> subprocess.CompletedProcess:
    return run_mpi(ranks, [QGT, *args], **kw)


@pytest.fixture
def mpi():
    return run_mpi
