"""End-to-end correctness on real MPI ranks: every circuit, on every configuration that
must agree (1, 2, 4 ranks; default and tiny working sets; a node's shared window and
MPI exchanges; 2 nodes of 2 ranks, each sharing a window), against Qiskit's Statevector
(amplitudes to 1e-10), with counts identical across rank counts for the same seed."""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np
import pytest
from qiskit.quantum_info import Pauli, Statevector

from qgt.frontend import load_qiskit
from tests.conftest import ROOT, run_mpi

CIRCUITS = ["random:10:12:7", "random:9:10:3", "qft:10", "ghz:10", "qpe:9", "trotter:8:3",
            "qaoa:9:2:5"]
OBSERVABLES = {"random:10:12:7": ["XIZYIIXZZY", "ZZZZZZZZZZ"], "trotter:8:3": ["IIIXXIII"]}
SHOTS = {"ghz:10": 2000, "random:9:10:3": 2000}
# (ranks, configuration): tiny working sets and runs force many sweeps and swaps
CONFIGS = {
    "1rank": (1, {}),
    "2ranks": (2, {}),
    "4ranks": (4, {}),
    "1rank-tiny": (1, {"block_qubits": 4, "page_qubits": 1}),
    "2ranks-tiny": (2, {"block_qubits": 4, "page_qubits": 2}),
    "4ranks-tiny": (4, {"block_qubits": 4, "page_qubits": 0, "exchange_chunk": 4096}),
    # ranks on one node share one window by default; these exchange through MPI instead
    "2ranks-exchange": (2, {"shared_memory": False}),
    "4ranks-tiny-exchange": (4, {"block_qubits": 4, "page_qubits": 0, "exchange_chunk": 4096,
                                 "shared_memory": False}),
    # two nodes (tests.conftest.nodes_args): windows of 2 ranks, exchanges between nodes
    "4ranks-2nodes": (4, {}),
    "4ranks-2nodes-tiny": (4, {"block_qubits": 4, "page_qubits": 0, "exchange_chunk": 4096}),
}
NODES = {"4ranks-2nodes": 2, "4ranks-2nodes-tiny": 2}
# the same on the SSD tier: 16-amplitude pages on disk, page groups of 2^8 amplitudes
SSD = {"storage": "ssd", "memory_limit": "16KiB", "ssd_page_size": 256, "direct_io": False,
       "block_qubits": 4, "page_qubits": 1}
CONFIGS.update({f"{r}rank{'s' if r > 1 else ''}-ssd": (r, SSD) for r in (1, 2, 4)})


def _strip_measurements(spec: str):
    qc = load_qiskit(spec)
    return qc.remove_final_measurements(inplace=False)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def run(request, tmp_path_factory):
    name = request.param
    ranks, cfg = CONFIGS[name]
    d = tmp_path_factory.mktemp(name)
    jobs = [{"name": c, "circuit": c, "config": cfg, "seed": 1234, "shots": SHOTS.get(c, 0),
             "observables": OBSERVABLES.get(c, []), "statevector": str(d / f"{i}.h5")}
            for i, c in enumerate(CIRCUITS)]
    (d / "jobs.json").write_text(json.dumps(jobs))
    p = run_mpi(ranks, [sys.executable, str(ROOT / "tests" / "mpi_driver.py"),
                        str(d / "jobs.json"), str(d / "out.json")], timeout=300,
                nodes=NODES.get(name, 1))
    assert p.returncode == 0, p.stderr[-3000:]
    return name, json.loads((d / "out.json").read_text()), {j["name"]: j for j in jobs}


@pytest.mark.parametrize("circuit", CIRCUITS)
def test_state_matches_qiskit(run, circuit):
    _, out, jobs = run
    with h5py.File(jobs[circuit]["statevector"], "r") as f:
        state = f["state"][...]
    want = Statevector(_strip_measurements(circuit)).data
    assert np.abs(state - want).max() < 1e-10


def test_ranks_on_one_node_share_a_window_unless_told_not_to(run):
    name, out, _ = run
    ranks, cfg = CONFIGS[name]
    nodes = NODES.get(name, 1)
    shared = ranks > 1 and cfg.get("shared_memory", True) and "storage" not in cfg
    for circuit in CIRCUITS:
        plan = out[circuit]["plan"]
        assert plan["shared_ranks"] == (ranks // nodes if shared else 1)
        if shared and nodes == 1:  # every qubit is reached in place: nothing is exchanged
            assert plan["global_swaps"] == 0 and out[circuit]["bytes"] == 0
    if ranks > 1 and (nodes > 1 or not shared):  # ranks on other nodes: exchanges
        assert any(out[c]["plan"]["global_swaps"] > 0 for c in CIRCUITS)
    if ranks > 1 and not shared and cfg.get("block_qubits", 16) < 10 and "storage" not in cfg:
        # some sweep hands the part its global swap keeps to a thread during the exchange
        assert any(io["overlapped_swaps"] > 0 for c in CIRCUITS for io in out[c]["io"])


def test_expectation_values_match_qiskit(run):
    _, out, _ = run
    for circuit, labels in OBSERVABLES.items():
        sv = Statevector(_strip_measurements(circuit))
        for lab in labels:
            got = out[circuit]["expect"][lab]
            assert got == pytest.approx(sv.expectation_value(Pauli(lab)).real, abs=1e-10)


def test_counts_follow_the_distribution(run):
    _, out, _ = run
    ghz = out["ghz:10"]["counts"]
    assert set(ghz) <= {"0" * 10, "1" * 10} and sum(ghz.values()) == 2000
    assert 900 < ghz["0" * 10] < 1100
    probs = Statevector(_strip_measurements("random:9:10:3")).probabilities_dict()
    counts = out["random:9:10:3"]["counts"]
    assert sum(counts.values()) == 2000
    assert all(probs.get(k, 0) > 1e-12 for k in counts)  # never an impossible outcome
    tv = 0.5 * sum(abs(counts.get(k, 0) / 2000 - p) for k, p in probs.items())
    assert tv < 0.15


_SEEN_COUNTS: dict = {}


def test_counts_do_not_depend_on_rank_count(run):
    name, out, _ = run
    for c in SHOTS:
        first = _SEEN_COUNTS.setdefault(c, (name, out[c]["counts"]))
        assert out[c]["counts"] == first[1], f"{c}: {name} differs from {first[0]}"
