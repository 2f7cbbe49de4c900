"""The commands a new user tried that used to crash (issue 10), each now a clear user
error or a correct run: a dense state no disk can hold, output paths that cannot be
written, more ranks than qubits, page groups as small as the planner allows, and sparse
states of 56 and 60 qubits on two ranks."""

from __future__ import annotations

import json
import time

import h5py
import numpy as np
import pytest
from qiskit.quantum_info import Statevector

from qgt.frontend import load_qiskit
from tests.conftest import clean_env, run_qgt

THREE = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\n'


def _user_error(p, t0: float, *needles: str, limit: float = 60) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and time.monotonic() - t0 < limit
    assert p.stderr.count("qgt: error:") == 1, p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr


def test_dense_60_qubit_state_is_refused_by_preflight(tmp_path):
    t0 = time.monotonic()
    p = run_qgt(2, ["run", "qft:60", "--set", f"scratch_dir={tmp_path}"], timeout=90)
    _user_error(p, t0, "2^60 amplitudes", "scratch", "cannot be simulated")


def test_output_paths_are_checked_before_running(tmp_path):
    # trotter:26:60 runs for minutes: an error within seconds means nothing ran
    long = ["run", "trotter:26:60", "--quiet"]
    cases = [
        (["--output", "no/such/dir/r.json"], "--output 'no/such/dir/r.json'"),
        (["--statevector", str(tmp_path / "missing" / "s.h5")], "--statevector"),
        (["--trace", str(tmp_path / "missing" / "t.json")], "--trace"),
        (["--set", f"checkpoint_dir={tmp_path / 'afile'}"], "checkpoint_dir"),
        (["--output", str(tmp_path)], "is a directory"),
    ]
    (tmp_path / "afile").write_text("not a directory")
    for extra, needle in cases:
        t0 = time.monotonic()
        p = run_qgt(2, long + extra, timeout=120, cwd=tmp_path)
        _user_error(p, t0, needle, limit=30)


def test_more_ranks_than_the_state_allows_is_a_user_error(tmp_path):
    q = tmp_path / "three.qasm"
    q.write_text(THREE)
    t0 = time.monotonic()
    p = run_qgt(8, ["run", str(q)], timeout=120)
    _user_error(p, t0, "8 ranks is too many for 3 qubits", "at most 4 ranks", limit=100)


def test_page_groups_with_one_spare_bit_plan_and_run(tmp_path):
    # 4 KiB pages (8 in-page qubits), groups of 9 qubits: every bit swap of the final
    # reordering goes through an in-page bit
    env = clean_env(QGT_STORAGE="ssd", QGT_SSD_PAGE_SIZE="4KiB", QGT_MEMORY_LIMIT="48KiB",
                    QGT_BLOCK_QUBITS=6, QGT_PAGE_QUBITS=2, QGT_SCRATCH_DIR=tmp_path)
    p = run_qgt(2, ["run", "qft:12", "--statevector", str(tmp_path / "s.h5"), "--output",
                    str(tmp_path / "r.json"), "--quiet"], env=env)
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "s.h5", "r") as f:
        state = f["state"][...]
    want = Statevector(load_qiskit("qft:12").remove_final_measurements(inplace=False))
    assert np.abs(state - want.data).max() < 1e-10
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["metadata"]["io"][0]["group_bits"] == 9


def test_sparse_ghz_56_and_60_run_in_seconds_in_little_memory(tmp_path):
    for n in (56, 60):
        t0 = time.monotonic()
        out = tmp_path / f"r{n}.json"
        p = run_qgt(2, ["run", f"ghz:{n}", "--shots", "100", "--seed", "3", "--set",
                        f"scratch_dir={tmp_path}", "--output", str(out), "--quiet"], timeout=120)
        assert p.returncode == 0, p.stderr
        assert time.monotonic() - t0 < 30
        res = json.loads(out.read_text())
        assert set(res["counts"]) == {"0" * n, "1" * n} and sum(res["counts"].values()) == 100
        assert max(res["peak_memory_per_rank"]) < 1 << 30
        assert all(io["max_pages_stored"] <= 2 for io in res["metadata"]["io"])
        assert res["plan"]["decisions"]["support_log2"] == 1
    # the same size, dense: refused before anything is allocated
    t0 = time.monotonic()
    p = run_qgt(2, ["run", "qft:56", "--set", f"scratch_dir={tmp_path}"], timeout=90)
    _user_error(p, t0, "2^56 amplitudes")


def test_a_part_of_one_amplitude_is_still_a_view():
    # found by the configuration fuzzer: 4 ranks on 4 qubits swap both local bits, and
    # the part sent was a numpy scalar (a copy), so the received amplitude was dropped
    from qgt.runtime.exchange import part, split_view

    state = np.arange(4, dtype=complex)
    view, axes = split_view(state, 2, [0, 1])
    p = part(view, axes, 0b10)
    assert p.size == 1 and np.shares_memory(p, state)
    p[...] = 7
    assert state[2] == 7


def test_page_index_holds_only_stored_pages(tmp_path):
    # 2^39 pages of 16 amplitudes: a dense index would need 4 TiB
    import tracemalloc

    from qgt.runtime.pagestore import PageStore

    tracemalloc.start()
    store = PageStore(str(tmp_path), 0, 43, 4, direct_io=False)
    page = np.ones(16, dtype=complex)
    for pg in (5, (1 << 39) - 1, 1 << 20):
        store.write(pg, page)
    store.write(5, np.zeros(16, dtype=complex))  # turned zero: dropped, slot reused
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20
    assert store.stored().tolist() == [1 << 20, (1 << 39) - 1] and store.stored_pages() == 2
    assert store.zero_flags([5, 1 << 20]).tolist() == [True, False]
    out = np.empty(16, dtype=complex)
    store.read((1 << 39) - 1, out)
    assert (out == 1).all()
    store.close()


@pytest.mark.parametrize("ranks", [1, 2, 4])
@pytest.mark.parametrize("spec,operands", [("qft:10", 1), ("random:10:8:3", 2),
                                           ("random:10:8:4", 3)])
def test_smallest_page_groups_the_planner_allows(ranks, spec, operands):
    # page groups of exactly the in-page bits plus the widest gate: every outer sweep
    # must fit the group (the engine's ring buffers are that size) and the plan must be
    # right; no MPI needed (tests/plan_reference.py executes plans on the full vector)
    from qiskit.circuit.random import random_circuit

    from qgt.frontend import lower
    from qgt.plan.planner import make_plan
    from qgt.plan.steps import Sweep
    from qgt.plan.support import widest
    from tests.plan_reference import run_plan

    qc = (load_qiskit(spec).remove_final_measurements(inplace=False) if operands == 1 else
          random_circuit(10, 8, max_operands=operands, seed=int(spec[-1])))
    qc.swap(0, 9)  # relabellings leave rank-home qubits on in-page bits
    circ = lower(qc)
    k = widest(circ)
    for p in (2, 4):
        plan = make_plan(circ, ranks, 4, 1, ssd=(p, p + k))
        assert all(len(s.wbits) == p + k for s in plan.steps if isinstance(s, Sweep))
        psi, _ = run_plan(plan)
        assert np.allclose(psi, Statevector(qc).data, atol=1e-10)
