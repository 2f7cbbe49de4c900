"""qgt inside Qiskit: QgtBackend, SamplerV2 and EstimatorV2 against Statevector and Aer,
on 1, 2 and 4 ranks, in RAM and on the SSD tier; the plan cache; launcher mode.

The distributed cases run tests/qiskit_driver.py under ``mpiexec -n K`` (SPMD, every rank
runs the user's script) and check what it printed here.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Gate, Parameter
from qiskit.circuit.library import efficient_su2, real_amplitudes
from qiskit.circuit.random import random_circuit
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_aer import AerSimulator

from qgt.qiskit import EstimatorV2, QgtBackend
from tests import qiskit_driver as drv
from tests.conftest import ROOT, clean_env, run_mpi

SSD = {"storage": "ssd", "memory_limit": "16KiB", "ssd_page_size": 256, "direct_io": False,
       "block_qubits": 4, "page_qubits": 1}
TINY = {"block_qubits": 4, "page_qubits": 1}
CONFIGS = {"1rank": (1, TINY), "2ranks": (2, TINY), "4ranks": (4, {"block_qubits": 4,
           "page_qubits": 0}), "1rank-ssd": (1, SSD), "2ranks-ssd": (2, SSD),
           "4ranks-ssd": (4, SSD)}


def _state(pairs) -> np.ndarray:
    a = np.asarray(pairs)
    return a[:, 0] + 1j * a[:, 1]


def _tv(counts: dict, probs: dict) -> float:
    """Total variation distance between sampled counts and exact probabilities."""
    shots = sum(counts.values())
    keys = set(counts) | set(probs)
    return 0.5 * sum(abs(counts.get(k, 0) / shots - probs.get(k, 0.0)) for k in keys)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def driven(request):
    ranks, config = CONFIGS[request.param]
    proc = run_mpi(ranks, [sys.executable, str(ROOT / "tests" / "qiskit_driver.py"),
                           json.dumps(config)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ranks, json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_rank_gets_the_same_result(driven):
    ranks, out = driven
    assert out["same_on_every_rank"]
    assert out["registers"]["ranks"] == ranks


def test_registers_counts_memory_state_and_expectation(driven):
    _, out = driven
    qc = drv.registers_circuit()
    body = qc.copy_empty_like()
    for inst in qc.data:
        if not inst.operation.name.startswith(("save", "measure")):
            body.append(inst)
    sv = Statevector(body)
    r = out["registers"]
    np.testing.assert_allclose(_state(r["state"]), sv.data, atol=1e-10)
    pad = "I" * (drv.PAD + 2)
    want = sv.expectation_value(SparsePauliOp([pad + "ZZ", pad + "XX"], [1.0, 0.5])).real
    assert abs(r["e01"] - want) < 1e-10
    # qiskit's key format: register b then register a, separated by a space
    assert all(len(k.split(" ")) == 2 for k in r["counts"])
    probs = {}
    for idx, p in enumerate(np.abs(sv.data) ** 2):
        if p > 1e-12:
            key = f"{(idx >> 2) & 3:02b} {idx & 3:02b}"
            probs[key] = probs.get(key, 0) + p
    assert set(r["counts"]) <= set(probs)
    assert _tv(r["counts"], probs) < 0.03
    assert r["n_memory"] == drv.SHOTS and set(r["memory"]) <= set(r["counts"])
    aer_counts = AerSimulator(seed_simulator=5).run(
        transpile(_measured(qc), AerSimulator()), shots=drv.SHOTS).result().get_counts()
    assert _tv(r["counts"], {k: v / drv.SHOTS for k, v in aer_counts.items()}) < 0.05


def _measured(qc: QuantumCircuit) -> QuantumCircuit:
    out = qc.copy_empty_like()
    for inst in qc.data:
        if not inst.operation.name.startswith("save"):
            out.append(inst)
    return out


def test_midcircuit_measurement_counts(driven):
    _, out = driven
    counts = out["midcircuit"]["counts"]
    aer = AerSimulator(seed_simulator=3).run(drv.midcircuit_circuit(), shots=4000).result()
    ref = {k: v / 4000 for k, v in aer.get_counts().items()}
    assert set(counts) <= set(ref)  # the conditional x makes q1 follow m: only those keys
    assert _tv(counts, ref) < 0.1


def test_transpiled_random_circuit_state(driven):
    _, out = driven
    rc = random_circuit(8, 6, seed=11)
    np.testing.assert_allclose(_state(out["random"]["state"]), Statevector(rc).data,
                               atol=1e-10)


def test_parameter_binds_and_cache(driven):
    _, out = driven
    c0, c1, c2 = out["binds"]["counts"]
    assert c0 == {"00": drv.SHOTS} and c2 == {"11": drv.SHOTS}
    assert set(c1) == {"00", "11"} and abs(c1["00"] / drv.SHOTS - 0.5) < 0.05
    cache = out["binds"]["cache"]
    assert [c["hit"] for c in cache] == [False, True, True]


def test_estimator_broadcasting(driven):
    _, out = driven
    qc = drv.ansatz()
    vals = np.asarray(out["estimator"]["values"])
    ref = StatevectorEstimator().run([(qc, drv.OBSERVABLES, vals)]).result()[0].data.evs
    evs = np.asarray(out["estimator"]["evs"])
    assert evs.shape == (3, 2)
    np.testing.assert_allclose(evs, ref, atol=1e-10)
    assert out["estimator"]["precision"] == 0.0
    assert np.all(np.asarray(out["estimator"]["stds"]) == 0)


def test_sampler_bitarray_per_register(driven):
    _, out = driven
    assert out["sampler"]["shape"] == [2, 3] and out["sampler"]["num_shots"] == drv.SHOTS
    qc = drv.ansatz()
    vals = np.asarray(out["sampler"]["values"]).reshape(6, -1)
    for counts, v in zip(out["sampler"]["counts"], vals):
        probs = Statevector(qc.assign_parameters(v)).probabilities_dict()
        for q in range(qc.num_qubits):  # each qubit's marginal, within 4 sigma
            got = sum(c for k, c in counts.items() if k[-1 - q] == "1") / drv.SHOTS
            want = sum(p for k, p in probs.items() if k[-1 - q] == "1")
            assert abs(got - want) < 4 * np.sqrt(max(want * (1 - want), 1e-4) / drv.SHOTS)


# ---- in one process --------------------------------------------------------------------

def test_plan_cache_counts_planner_calls_in_a_200_evaluation_loop(monkeypatch):
    import qgt.api

    calls = []
    real = qgt.api.make_plan

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(qgt.api, "make_plan", counting)
    qc = efficient_su2(5, reps=2)
    H = SparsePauliOp(["ZZIII", "IIXXI", "YIYII", "IIIIZ"], [1.0, -0.5, 0.3, 0.7])
    est = EstimatorV2()
    rng = np.random.default_rng(0)
    ref = StatevectorEstimator()
    for i in range(200):
        v = rng.uniform(-np.pi, np.pi, qc.num_parameters)
        res = est.run([(qc, H, v)]).result()[0]
        if i % 50 == 0:
            want = ref.run([(qc, H, v)]).result()[0].data.evs
            assert abs(res.data.evs - want) < 1e-10
    assert len(calls) == 1
    stats = res.metadata["plan_cache"]
    assert stats["planner_calls"] == 1 and stats["hits"] == 199 and stats["misses"] == 1
    est.backend.close()


def test_values_that_make_gates_trivial_stay_exact():
    """rx(0) is the identity and cp(0) diagonal-trivial: the cached (generic) plan still
    gives the exact state."""
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(3)
    qc.h([0, 1, 2])
    qc.rx(a, 0)
    qc.cp(b, 0, 1)
    qc.cu(a, b, 0.2, a, 1, 2)
    qc.rzz(a, 0, 2)
    qc.save_statevector()
    backend = QgtBackend()
    vals = [[0.0, 0.0], [0.3, 2 * np.pi], [1.0, -0.4]]
    res = backend.run(qc, parameter_binds=[{a: [v[0] for v in vals], b: [v[1] for v in vals]}]
                      ).result()
    body = qc.copy_empty_like()
    for inst in qc.data[:-1]:
        body.append(inst)
    for i, v in enumerate(vals):
        want = Statevector(body.assign_parameters(v)).data
        np.testing.assert_allclose(np.asarray(res.get_statevector(i)), want, atol=1e-12)
    assert [r.metadata["plan_cache"]["hit"] for r in res.results] == [False, True, True]
    backend.close()


def test_ghz35_with_a_1gib_memory_limit_gives_only_all_zeros_and_all_ones():
    qc = QuantumCircuit(35)
    qc.h(0)
    for i in range(34):
        qc.cx(i, i + 1)
    qc.measure_all()
    backend = QgtBackend(memory_limit="1GiB")
    res = backend.run(transpile(qc, backend), shots=1024, seed_simulator=1).result()
    counts = res.get_counts()
    assert set(counts) == {"0" * 35, "1" * 35}
    assert sum(counts.values()) == 1024 and min(counts.values()) > 400
    assert res.results[0].metadata["storage"] == "ssd"
    backend.close()


def test_target_neither_routes_nor_refuses_wide_circuits():
    backend = QgtBackend()
    assert backend.target.num_qubits is None
    qc = QuantumCircuit(40)
    qc.h(0)
    qc.cx(0, 39)
    qc.ccx(0, 5, 39)
    qc.measure_all()
    out = transpile(qc, backend)
    assert out.num_qubits == 40
    names = {inst.operation.name for inst in out.data}
    assert names <= {"h", "cx", "ccx", "measure", "barrier"}
    for name in ("cx", "rzz", "measure", "reset", "delay", "if_else", "unitary", "cswap"):
        assert name in backend.target


def test_unknown_run_option_warns_and_bad_config_key_names_the_nearest():
    backend = QgtBackend()
    qc = QuantumCircuit(1)
    qc.x(0)
    qc.measure_all()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = backend.run(qc, shots=10, not_an_option=1).result()
    assert any("not_an_option" in str(w.message) for w in caught)
    assert res.get_counts() == {"1": 10}
    from qgt.errors import ConfigError

    with pytest.raises(ConfigError, match="memory_limit"):
        QgtBackend(memory_limt="1GiB")
    with pytest.raises(Exception, match="unbound parameters"):
        backend.run(real_amplitudes(2, reps=1)).result()
    backend.close()


def test_estimator_precision_adds_seeded_noise():
    qc = real_amplitudes(3, reps=1)
    v = np.linspace(0, 1, qc.num_parameters)
    exact = EstimatorV2().run([(qc, "ZZZ", v)]).result()[0].data.evs
    a = EstimatorV2(seed=4).run([(qc, "ZZZ", [v] * 2000)], precision=0.05).result()[0]
    b = EstimatorV2(seed=4).run([(qc, "ZZZ", [v] * 2000)], precision=0.05).result()[0]
    np.testing.assert_array_equal(a.data.evs, b.data.evs)
    assert abs(np.std(a.data.evs) - 0.05) < 0.005 and abs(np.mean(a.data.evs) - exact) < 0.01
    assert np.all(a.data.stds == 0.05) and a.metadata["target_precision"] == 0.05


def test_many_term_hamiltonian_is_grouped_by_xy_pattern():
    """300 terms with few X/Y patterns: one pass per pattern, and exact values."""
    rng = np.random.default_rng(2)
    n = 8
    labels = set()
    patterns = ["IIIIIIII", "IIIIIIXX", "XXIIIIII", "IIIXXIII"]
    while len(labels) < 300:
        base = list(patterns[len(labels) % 4])
        z = rng.integers(0, 2, n)
        lab = "".join(("Y" if zz else "X") if c == "X" else ("Z" if zz else "I")
                      for c, zz in zip(base, z))
        labels.add(lab)
    H = SparsePauliOp(sorted(labels), rng.normal(size=len(labels)))
    qc = efficient_su2(n, reps=1)
    v = rng.uniform(size=qc.num_parameters)
    res = EstimatorV2().run([(qc, H, v)]).result()[0]
    want = StatevectorEstimator().run([(qc, H, v)]).result()[0].data.evs
    assert abs(res.data.evs - want) < 1e-9
    from qgt.api import plan_for
    from qgt.config import load_config
    from qgt.frontend import lower

    plan = plan_for(lower(qc.assign_parameters(v)), load_config(), 1, [str(p) for p in H.paulis])
    n_expect = sum(type(s).__name__ == "ExpectStep" for s in plan.steps)
    distinct = len({lab.replace("Z", "I").replace("Y", "X") for lab in labels})
    assert n_expect == distinct <= 8


# ---- launcher mode -----------------------------------------------------------------------

def _ghz(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n)
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure_all()
    return qc


@pytest.fixture
def launched(monkeypatch):
    monkeypatch.setenv("PATH", clean_env()["PATH"])
    backend = QgtBackend(ranks=2)
    yield backend
    backend.close()


def test_launcher_runs_on_its_own_ranks(launched):
    job = launched.run(_ghz(8), shots=500, seed_simulator=2)
    res = job.result(timeout=120)
    assert set(res.get_counts()) == {"0" * 8, "1" * 8}
    assert res.results[0].metadata["num_mpi_processes"] == 2
    assert job.status().name == "DONE"
    qc = real_amplitudes(6, reps=2)
    v = np.random.default_rng(1).uniform(size=(4, qc.num_parameters))
    est = EstimatorV2(backend=launched)
    got = est.run([(qc, "ZIZIZI", v)]).result()[0].data.evs
    want = StatevectorEstimator().run([(qc, "ZIZIZI", v)]).result()[0].data.evs
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_launcher_worker_killed_mid_job_fails_the_job_then_recovers(launched):
    launched.run(_ghz(4), shots=10).result(timeout=120)  # ranks up
    pids = launched.session._impl.pids
    qc = real_amplitudes(12, reps=3)
    qc.measure_all()
    binds = [{p: list(np.linspace(0, 1, 20000)) for p in qc.parameters}]
    job = launched.run(qc, shots=10, parameter_binds=binds)
    deadline = time.monotonic() + 30
    while job.status().name != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(pids[1], signal.SIGKILL)
    t = time.monotonic()
    # rank 0 may see the dead peer in MPI first and report that before the launcher ends:
    # still "a worker rank died"
    with pytest.raises(Exception, match="worker rank died"):
        job.result(timeout=60)
    assert time.monotonic() - t < 30
    assert job.status().name == "ERROR"
    res = launched.run(_ghz(5), shots=100, seed_simulator=1).result(timeout=120)
    assert set(res.get_counts()) == {"00000", "11111"}
    assert launched.session._impl.pids != pids


def test_launcher_cancel_stops_the_ranks(launched):
    launched.run(_ghz(4), shots=10).result(timeout=120)
    proc = launched.session._impl.proc
    qc = real_amplitudes(12, reps=3)
    qc.measure_all()
    binds = [{p: list(np.linspace(0, 1, 20000)) for p in qc.parameters}]
    job = launched.run(qc, shots=10, parameter_binds=binds)
    while job.status().name != "RUNNING":
        time.sleep(0.05)
    assert job.cancel()
    with pytest.raises(Exception, match="cancelled"):
        job.result(timeout=60)
    assert job.status().name == "CANCELLED"
    assert proc.wait(timeout=30) is not None


class Branchy(Gate):
    """A custom gate whose definition has one more gate for negative angles."""

    def __init__(self, t):
        super().__init__("branchy", 1, [t])

    def _define(self):
        qc = QuantumCircuit(1)
        t = float(self.params[0])
        qc.rx(t, 0)
        if t < 0:
            qc.h(0)
        self.definition = qc


def test_a_value_that_changes_the_lowering_is_planned_afresh():
    """A custom gate whose definition branches on its parameter: the binding that lowers
    differently gets its own plan (never a stale one) and the state is still exact."""
    t = Parameter("t")
    qc = QuantumCircuit(2)
    qc.append(Branchy(t), [0])
    qc.cx(0, 1)
    qc.save_statevector()
    backend = QgtBackend()
    res = backend.run(qc, parameter_binds=[{t: [0.4, -0.4]}]).result()
    body = qc.copy_empty_like()
    for inst in qc.data[:-1]:
        body.append(inst)
    for i, v in enumerate([0.4, -0.4]):
        want = Statevector(body.assign_parameters([v])).data
        np.testing.assert_allclose(np.asarray(res.get_statevector(i)), want, atol=1e-12)
    assert res.results[1].metadata["plan_cache"]["planner_calls"] == 2
    backend.close()


def test_estimator_takes_every_observable_form():
    """str, Pauli, SparsePauliOp (complex dtype), SparseObservable (with projectors) and
    mappings all give Statevector's values."""
    from qiskit.quantum_info import Pauli, SparseObservable

    qc = efficient_su2(3, reps=1)
    v = np.linspace(-1, 1, qc.num_parameters)
    forms = ["XZY", Pauli("ZZI"), SparsePauliOp(["XXI", "IZZ"], np.array([0.5, 2.0 + 0j])),
             SparseObservable("+ZI"), {"ZIZ": 0.25, "XII": -1.0}]
    est = EstimatorV2()
    for obs in forms:
        got = est.run([(qc, obs, v)]).result()[0].data.evs
        if isinstance(obs, SparseObservable):  # the reference through Paulis: (I + X)/2
            ref = SparsePauliOp.from_sparse_observable(obs.as_paulis())
            want = Statevector(qc.assign_parameters(v)).expectation_value(ref).real
        else:
            want = StatevectorEstimator().run([(qc, obs, v)]).result()[0].data.evs
        assert abs(got - want) < 1e-12, obs
    est.backend.close()


def test_backend_progress_callback_sees_every_step():
    events = []
    backend = QgtBackend(progress=events.append, block_qubits=4, page_qubits=1)
    res = backend.run(_ghz(8), shots=100, seed_simulator=1).result()
    assert set(res.get_counts()) == {"0" * 8, "1" * 8}
    assert events and events[-1].step == events[-1].n_steps
    assert all(0.0 <= e.fraction <= 1.0 for e in events)
    backend.close()


ORPHAN = """
import os
from qiskit import QuantumCircuit
from qgt.qiskit import QgtBackend
qc = QuantumCircuit(3)
qc.h(0)
qc.measure_all()
b = QgtBackend(ranks=2)
b.run(qc, shots=10).result()
print(" ".join(map(str, b.session._impl.pids)), flush=True)
os._exit(0)  # no close(): the workers must notice on their own
"""


def test_launched_ranks_end_when_their_parent_dies_without_closing():
    import subprocess

    proc = subprocess.run([sys.executable, "-c", ORPHAN], capture_output=True, text=True,
                          timeout=120, env=clean_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    pids = [int(p) for p in proc.stdout.split()]
    deadline = time.monotonic() + 20

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids)
