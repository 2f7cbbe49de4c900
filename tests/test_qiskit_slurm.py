"""Launcher mode under Slurm: ``QgtBackend(ranks=2, launcher="srun")`` from a plain
process starts its worker ranks with ``srun --mpi=pmi2`` on the test cluster
(tests/slurm_cluster.py) and gets the same answers as one process."""

from __future__ import annotations

import json
import sys

from tests.conftest import ROOT

SCRIPT = """
import json
from qiskit import QuantumCircuit
from qgt.qiskit import QgtBackend
qc = QuantumCircuit(6)
qc.h(0)
for i in range(5):
    qc.cx(i, i + 1)
qc.measure_all()
backend = QgtBackend(ranks=2, launcher="srun")
res = backend.run(qc, shots=200, seed_simulator=4).result()
print(json.dumps({"counts": res.get_counts(),
                  "ranks": res.results[0].metadata["num_mpi_processes"]}))
backend.close()
"""


def test_launcher_srun_starts_worker_ranks_under_slurm(slurm_cluster, tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(SCRIPT)
    proc = slurm_cluster.run([sys.executable, str(script)], timeout=240,
                             env={"PYTHONPATH": str(ROOT)})
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ranks"] == 2
    assert set(out["counts"]) == {"000000", "111111"}
    assert sum(out["counts"].values()) == 200
