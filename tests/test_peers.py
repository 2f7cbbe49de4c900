"""``qgt bench --peers``: every peer simulates the very gate list qgt does (its final state
equals Qiskit's Statevector), and the command prints each circuit's floor and ratio."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from qiskit import qasm2
from qiskit.quantum_info import Statevector

from qgt.bench.peer_bench import _installed
from qgt.bench.peer_run import PEERS, SETTINGS, run
from qgt.bench.peer_suite import BASIS, PEER_SUITE, build, gate_count


@pytest.mark.parametrize("name", PEER_SUITE)
def test_peer_circuits_use_the_common_basis(name):
    qc = build(name, 8)
    assert {ins.operation.name for ins in qc.data} <= set(BASIS)
    assert gate_count(qc) > 0


def test_the_suite_has_the_documented_gate_counts_at_26_qubits():
    counts = {name: gate_count(build(name, 26)) for name in PEER_SUITE}
    assert counts == {"qft": 364, "random": 762, "qaoa": 234, "ghz": 26, "qv": 1430,
                      "trotter": 510}


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_each_peer_computes_the_same_state(peer, tmp_path):
    if not _installed(peer):
        pytest.skip(f"{peer} is not installed (pip install 'qgt[peers]')")
    for name in PEER_SUITE:
        qc = build(name, 6)
        path = tmp_path / f"{name}.qasm"
        path.write_text(qasm2.dumps(qc))
        for setting in SETTINGS[peer]:
            seconds, psi = run(peer, str(path), 1, setting)
            assert seconds > 0
            assert abs(np.vdot(Statevector(qc).data, psi)) == pytest.approx(1, abs=1e-5), \
                (name, setting)


def test_bench_peers_prints_ratios_and_floors(tmp_path):
    out = tmp_path / "peers.json"
    p = subprocess.run([sys.executable, "-m", "qgt", "bench", "--peers", "aer", "--qubits",
                        "12", "--threads", "1", "--peer-circuits", "ghz,qv",
                        "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "floor" in p.stdout and "best peer / qgt" in p.stdout
    assert "qgt's fixed cost, plan + run of one h gate" in p.stdout
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    for prec, key in (("double", "qgt"), ("single", "qgt_single")):
        # one gate costs less than QV's plan and run
        assert 0 < doc["machine"][prec]["fixed_s"] < rows[1][key]["seconds"]
    assert [r["circuit"] for r in rows] == ["ghz", "qv"]
    for r in rows:
        for key in ("qgt", "qgt_single"):  # both precisions, each with its own floor
            assert 0 < r[key]["floor_s"] <= r[key]["seconds"] * 50
        assert r["qgt_single"]["plan"]["precision"] == "single"
        assert r["peers"]["aer"]["seconds"] > 0
        assert r["best_peer_over_qgt"] == pytest.approx(
            r["peers"]["aer"]["seconds"] / r["qgt"]["seconds"])


def test_an_unknown_peer_is_a_clear_error():
    p = subprocess.run([sys.executable, "-m", "qgt", "bench", "--peers", "aer,qiskit"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "unknown peer(s) ['qiskit']" in p.stderr and "Traceback" not in p.stderr


def test_the_floor_counts_only_the_part_of_a_sweep_it_touches():
    from qgt.bench.floor import plan_work
    from qgt.frontend import load_circuit
    from qgt.plan import make_plan

    # GHZ-26: the first sweep's outside bits are all |0> (1/1024 of a pass); the second
    # only moves blocks of 2^15 amplitudes (CX 15 -> 16 ... 24 -> 25), and of its 2048
    # blocks only the two whose bits 16-25 read 0 hold anything: one stays, the other
    # moves to the block of all ones, so two blocks are written
    work = plan_work(make_plan(load_circuit("ghz:26"), 1, restore=False))
    assert work["passes"] == 2.0 ** -10 + 2 / 2048
