"""The command line end to end, on real MPI ranks: the issue's acceptance run, error
paths (one clear message, non-zero exit, every rank gone promptly), mid-circuit
measurement, plan printing and help."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from qiskit.quantum_info import Statevector

from qgt.frontend import load_qiskit
from tests.conftest import QGT, clean_env, run_qgt


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_acceptance_random_18_statevector(ranks, tmp_path):
    out = tmp_path / "s.h5"
    p = run_qgt(ranks, ["run", "random:18:30:7", "--statevector", str(out), "--output",
                        str(tmp_path / "r.json"), "--quiet"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    with h5py.File(out, "r") as f:
        state = f["state"][...]
    want = Statevector(load_qiskit("random:18:30:7").remove_final_measurements(inplace=False))
    assert np.abs(state - want.data).max() < 1e-10
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["ranks"] == ranks and res["n_qubits"] == 18
    for key in ("plan", "run", "compute", "communication"):
        assert key in res["timings"]
    assert len(res["peak_memory_per_rank"]) == ranks
    if ranks > 1:  # ranks on one node share a window: every qubit is reached in place
        assert res["plan"]["shared_ranks"] == ranks
        assert res["bytes_exchanged_per_rank"] == 0 and res["plan"]["global_swaps"] == 0


def _assert_fails_fast(p: subprocess.CompletedProcess, t0: float, *needles: str):
    assert p.returncode != 0
    assert time.monotonic() - t0 < 60
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr


def test_wrong_rank_count_is_a_clear_error():
    t0 = time.monotonic()
    p = run_qgt(3, ["run", "ghz:6"], timeout=90)
    _assert_fails_fast(p, t0, "power of two")
    assert p.stderr.count("qgt: error:") == 1  # one message, not one per rank


def test_unknown_circuit_and_bad_qasm(tmp_path):
    t0 = time.monotonic()
    p = run_qgt(2, ["run", "qtf:10"], timeout=90)
    _assert_fails_fast(p, t0, "qtf:10")
    bad = tmp_path / "bad.qasm"
    bad.write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nfoo q[0];\n')
    p = run_qgt(2, ["run", str(bad)], timeout=90)
    _assert_fails_fast(p, t0, "foo")


def test_misspelt_config_key_names_the_nearest(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"block_qbits": 10}))
    t0 = time.monotonic()
    p = run_qgt(2, ["run", "ghz:6", "--config", str(cfg)], timeout=90)
    _assert_fails_fast(p, t0, "block_qbits", "block_qubits")


def test_state_too_large_for_memory_is_refused_before_allocating():
    t0 = time.monotonic()
    p = run_qgt(2, ["run", "ghz:34", "--set", "storage=ram", "--set", "memory_limit=1GiB"],
                timeout=90)
    _assert_fails_fast(p, t0, "memory_limit")


def test_state_too_large_for_memory_goes_out_of_core_by_default(tmp_path):
    p = run_qgt(2, ["run", "ghz:34", "--set", "memory_limit=1GiB", "--set",
                    f"scratch_dir={tmp_path}", "--shots", "50", "--output",
                    str(tmp_path / "r.json"), "--quiet"], timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["metadata"]["storage"] == "ssd"
    assert set(res["counts"]) == {"0" * 34, "1" * 34}


def test_openqasm3_with_measurements(tmp_path):
    q = tmp_path / "c.qasm"
    q.write_text('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
                 'h q[0];\ncx q[0], q[1];\nc = measure q;\n')
    p = run_qgt(1, ["run", str(q), "--shots", "100", "--seed", "3", "--output",
                    str(tmp_path / "r.json"), "--quiet"])
    assert p.returncode == 0, p.stderr
    counts = json.loads((tmp_path / "r.json").read_text())["counts"]
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 100


def test_mid_circuit_measurement_reset_and_condition(tmp_path):
    q = tmp_path / "m.qasm"
    # c[0] is a fair coin; q[1] copies it through a classically conditioned X; q[2] is
    # set then reset, so c[2] is always 0
    # (qubits 3-8 idle: room for pages and groups on the SSD tier)
    q.write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[9];\ncreg c[3];\n'
                 'h q[0];\nmeasure q[0] -> c[0];\nif(c==1) x q[1];\nx q[2];\nreset q[2];\n'
                 'measure q[1] -> c[1];\nmeasure q[2] -> c[2];\n')
    ssd = ["--set", "storage=ssd", "--set", "memory_limit=16KiB", "--set", "ssd_page_size=256",
           "--set", "direct_io=false", "--set", "block_qubits=4", "--set", "page_qubits=1",
           "--set", f"scratch_dir={tmp_path}"]
    runs = {"1": (1, []), "2": (2, []), "2-ssd": (2, ssd)}  # the collapse on disk pages too
    for tag, (ranks, extra) in runs.items():
        p = run_qgt(ranks, ["run", str(q), "--shots", "400", "--seed", "5", "--output",
                            str(tmp_path / f"r{tag}.json"), "--quiet", *extra])
        assert p.returncode == 0, p.stderr
    counts = {tag: json.loads((tmp_path / f"r{tag}.json").read_text())["counts"] for tag in runs}
    c1 = counts["1"]
    assert set(c1) <= {"000", "011"} and sum(c1.values()) == 400
    assert 140 < c1.get("011", 0) < 260
    assert c1 == counts["2"] == counts["2-ssd"]


def test_plan_command_needs_no_mpi():
    p = subprocess.run([sys.executable, "-m", "qgt", "plan", "qft:24", "--ranks", "4", "--json"],
                       capture_output=True, text=True, timeout=120, env=clean_env())
    assert p.returncode == 0, p.stderr
    figs = json.loads(p.stdout)
    assert figs["ranks"] == 4 and figs["local_qubits"] == 22
    assert figs["global_swaps"] >= figs["lower_bound_global_swaps"] >= 1
    assert figs["state_bytes_per_rank"] == 16 << 22
    assert figs["bytes_exchanged_per_rank"] > 0
    assert "mpi4py" not in p.stderr


def test_help_lists_the_commands():
    p = subprocess.run([QGT, "--help"], capture_output=True, text=True, timeout=60,
                       env=clean_env())
    assert p.returncode == 0
    for cmd in ("run", "plan", "bench", "topology"):
        assert cmd in p.stdout
    p = subprocess.run([QGT, "run", "--help"], capture_output=True, text=True, timeout=60,
                       env=clean_env())
    assert "--statevector" in p.stdout and "qft:N" in p.stdout


def test_bad_environment_variable_is_reported_once():
    t0 = time.monotonic()
    p = run_qgt(2, ["run", "ghz:6"], env=clean_env(QGT_THREADS="many"), timeout=90)
    _assert_fails_fast(p, t0, "QGT_THREADS")
    assert p.stderr.count("qgt: error:") == 1
