"""Qiskit's own consumers, unchanged, on qgt's primitives: a qiskit-algorithms VQE with
param-shift and SPSA gradients, and a qiskit-machine-learning EstimatorQNN's forward and
backward passes.  Each is checked against the same consumer on Qiskit's
``StatevectorEstimator`` (the reference), and against numpy's exact ground energy.  Plus
what those consumers rely on: the plan cache's counts, a custom gate branching on its
value, launched ranks that sleep between jobs, and the same noise on every SPMD rank.

Runs in ``make test``; 15-30 s on two cores, depending on the load.  The estimators use
one thread per rank: for a 4-qubit state OpenMP threads only cost (and on a shared,
loaded machine a spinning second thread costs ten times the work).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from qiskit.circuit import Gate, Parameter, ParameterExpression, ParameterVector, QuantumCircuit
from qiskit.circuit.library import real_amplitudes
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp
from qiskit_algorithms import VQE
from qiskit_algorithms.gradients import ParamShiftEstimatorGradient, SPSAEstimatorGradient
from qiskit_algorithms.optimizers import SLSQP, GradientDescent
from qiskit_machine_learning.gradients import (
    ParamShiftEstimatorGradient as MLParamShiftEstimatorGradient,
)
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qgt.qiskit import EstimatorV2, QgtBackend
from tests.conftest import clean_env, run_mpi

N = 4


def tfim(n: int = N, field: float = 0.8) -> SparsePauliOp:
    """Open transverse-field Ising chain: -sum Z_i Z_i+1 - field * sum X_i."""
    terms = [("ZZ", [i, i + 1], -1.0) for i in range(n - 1)]
    terms += [("X", [i], -field) for i in range(n)]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=n)


class Recording(EstimatorV2):
    """qgt's EstimatorV2, keeping every job it ran (to read the PUB metadata after)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.jobs = []

    def run(self, pubs, *, precision=None):
        job = super().run(pubs, precision=precision)
        self.jobs.append(job)
        return job


@pytest.fixture(scope="module")
def hamiltonian():
    return tfim()


@pytest.fixture(scope="module")
def exact(hamiltonian):
    return float(np.linalg.eigvalsh(hamiltonian.to_matrix())[0])


@pytest.fixture(scope="module")
def ansatz():
    return real_amplitudes(N, reps=3, entanglement="full")


def _points(ansatz, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, size=(k, ansatz.num_parameters))


def _gradients(grad, ansatz, hamiltonian, points) -> np.ndarray:
    k = len(points)
    res = grad.run([ansatz] * k, [hamiltonian] * k, list(points)).result()
    return np.array(res.gradients)


# ---- qiskit-algorithms VQE -----------------------------------------------------------
def test_vqe_param_shift_reaches_ground_energy_with_cached_plans(hamiltonian, exact, ansatz):
    est = Recording(threads=1)
    vqe = VQE(est, ansatz, SLSQP(maxiter=100), gradient=ParamShiftEstimatorGradient(est),
              initial_point=np.full(ansatz.num_parameters, 0.3))
    result = vqe.compute_minimum_eigenvalue(hamiltonian)
    assert result.eigenvalue == pytest.approx(exact, abs=1e-4)
    assert result.optimizer_result.njev > 5  # the gradient really drove the optimiser

    # one planner call per distinct (circuit structure, observables): the energy circuit
    # and the param-shift gradient's own copy of it; every other job is a cache hit
    caches = [pub.metadata["plan_cache"] for job in est.jobs for pub in job.result()]
    assert len(est.jobs) > 20
    assert caches[-1]["planner_calls"] == caches[-1]["misses"] <= 2
    assert caches[-1]["hits"] >= len(est.jobs) - 2
    assert [c["hits"] for c in caches] == sorted(c["hits"] for c in caches)
    assert est.backend.session.cache_stats()["planner_calls"] == caches[-1]["planner_calls"]

    # the gradient at the optimum and elsewhere is Qiskit's own, to 1e-8
    points = np.vstack([result.optimal_point, _points(ansatz, 3, seed=11)])
    ref = StatevectorEstimator()
    ours = _gradients(ParamShiftEstimatorGradient(est), ansatz, hamiltonian, points)
    theirs = _gradients(ParamShiftEstimatorGradient(ref), ansatz, hamiltonian, points)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)
    assert np.abs(ours[0]).max() < 1e-3  # a minimum: the gradient vanishes there
    assert est.backend.session.cache_stats()["planner_calls"] == caches[-1]["planner_calls"]


def test_vqe_spsa_gradient_matches_qiskit_and_descends(hamiltonian, exact, ansatz):
    est, ref = EstimatorV2(threads=1), StatevectorEstimator()
    # at precision 0 both estimators are exact, so the same seed gives the same
    # perturbations and the same SPSA estimates
    points = _points(ansatz, 3, seed=5)
    ours = _gradients(SPSAEstimatorGradient(est, epsilon=0.01, batch_size=4, seed=3),
                      ansatz, hamiltonian, points)
    theirs = _gradients(SPSAEstimatorGradient(ref, epsilon=0.01, batch_size=4, seed=3),
                        ansatz, hamiltonian, points)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)

    grad = SPSAEstimatorGradient(est, epsilon=0.01, batch_size=4, seed=3)
    vqe = VQE(est, ansatz, GradientDescent(maxiter=150, learning_rate=0.1), gradient=grad,
              initial_point=np.full(ansatz.num_parameters, 0.3))
    result = vqe.compute_minimum_eigenvalue(hamiltonian)
    # a stochastic gradient: close to the ground energy, not at it
    assert exact <= result.eigenvalue < exact + 0.02 * abs(exact)


# ---- qiskit-machine-learning EstimatorQNN ----------------------------------------------
def _qnn_circuit() -> tuple[QuantumCircuit, list, list]:
    x, w = ParameterVector("x", 2), ParameterVector("w", 6)
    qc = QuantumCircuit(3)
    for q in range(3):
        qc.ry(x[q % 2], q)
    for layer in range(2):
        for q in range(3):
            qc.rx(w[3 * layer + q], q)
        qc.cx(0, 1)
        qc.cx(1, 2)
    return qc, list(x), list(w)


def _qnn(estimator, **precision) -> EstimatorQNN:
    """The QNN with ``default_precision`` as given (qiskit-ml's own 1/64 if not)."""
    qc, x, w = _qnn_circuit()
    obs = [SparsePauliOp("ZII"), SparsePauliOp.from_list([("XXI", 0.5), ("IZZ", -1.0)])]
    return EstimatorQNN(circuit=qc, estimator=estimator, observables=obs, input_params=x,
                        weight_params=w, input_gradients=True,
                        gradient=MLParamShiftEstimatorGradient(estimator), **precision)


def test_estimator_qnn_forward_and_backward_match_qiskit():
    est = Recording(threads=1)
    ref = StatevectorEstimator()
    rng = np.random.default_rng(2)
    inputs, weights = rng.uniform(-1, 1, size=(5, 2)), rng.uniform(-np.pi, np.pi, size=6)
    # precision 0: both exact (qiskit-ml's 1/64 default is the next test)
    ours, theirs = _qnn(est, default_precision=0), _qnn(ref, default_precision=0)
    np.testing.assert_allclose(ours.forward(inputs, weights), theirs.forward(inputs, weights),
                               rtol=0, atol=1e-8)
    (din, dw), (rin, rw) = ours.backward(inputs, weights), theirs.backward(inputs, weights)
    assert dw.shape == (5, 2, 6) and din.shape == (5, 2, 2)
    np.testing.assert_allclose(dw, rw, rtol=0, atol=1e-8)
    np.testing.assert_allclose(din, rin, rtol=0, atol=1e-8)
    # the backward pass sends one PUB per (sample, observable, shifted parameter), all of
    # one circuit: one plan per observable serves them, and a second pass plans nothing
    caches = [pub.metadata["plan_cache"] for pub in est.jobs[-1].result()]
    assert len(caches) >= 5 * 2 * 16 and sum(not c["hit"] for c in caches) <= 2
    planned = caches[-1]["planner_calls"]
    assert planned <= 4  # {QNN circuit, its gradient copy} x {two observables}
    ours.backward(inputs, weights)
    assert est.jobs[-1].result()[-1].metadata["plan_cache"]["planner_calls"] == planned


def test_estimator_qnn_default_precision_is_noise_with_that_std():
    """qiskit-ml's default (precision 1/64) reaches qgt as Gaussian noise of that size."""
    precision = inspect.signature(EstimatorQNN.__init__).parameters["default_precision"].default
    assert precision == 1 / 64
    qnn = _qnn(EstimatorV2(threads=1, seed=4))  # default_precision not given
    rng = np.random.default_rng(3)
    inputs, weights = rng.uniform(-1, 1, size=(200, 2)), rng.uniform(-np.pi, np.pi, size=6)
    exact = _qnn(StatevectorEstimator(), default_precision=0).forward(inputs, weights)
    noisy = qnn.forward(inputs, weights)
    dev = (noisy - exact).ravel()
    assert 0 < np.abs(dev).max() < 6 * precision
    assert np.std(dev) == pytest.approx(precision, rel=0.15)
    # seeded: the same seed gives the same noise
    again = _qnn(EstimatorV2(threads=1, seed=4)).forward(inputs, weights)
    np.testing.assert_array_equal(noisy, again)

    # and the estimator reports the precision it was asked for as the stds
    qc, x, w = _qnn_circuit()
    values = np.hstack([inputs[:3], np.tile(weights, (3, 1))])
    params = {p: values[:, j] for j, p in enumerate(x + w)}
    ordered = np.stack([params[p] for p in qc.parameters], axis=-1)
    res = EstimatorV2(threads=1, seed=1).run([(qc, SparsePauliOp("ZII"), ordered)],
                                             precision=precision).result()[0]
    np.testing.assert_array_equal(res.data.stds, np.full(3, precision))
    assert res.metadata["target_precision"] == precision
    exact0 = EstimatorV2(threads=1).run([(qc, SparsePauliOp("ZII"), ordered)]).result()[0]
    np.testing.assert_array_equal(exact0.data.stds, np.zeros(3))


# ---- a custom gate whose definition branches on its value ------------------------------
class Branchy(Gate):
    """rzz(t) for t < 1 (and while unbound), else cx . ry(t) . cx: defines itself
    symbolically, but differently for large values."""

    def __init__(self, t):
        super().__init__("branchy", 2, [t])

    def _define(self):
        qc = QuantumCircuit(2)
        t = self.params[0]
        if (isinstance(t, ParameterExpression) and t.parameters) or float(t) < 1:
            qc.rzz(t, 0, 1)
        else:
            qc.cx(0, 1)
            qc.ry(t, 1)
            qc.cx(0, 1)
        self.definition = qc


def test_custom_gate_branching_on_its_value_is_replanned_not_frozen():
    """qiskit binds later values into a definition once built: qgt must not build the
    user's gate's definition while fingerprinting it, or every value would take the
    unbound branch (the wrong gates, silently)."""
    t = Parameter("t")
    qc = QuantumCircuit(2)
    qc.rx(0.3, 0)
    qc.ry(0.7, 1)
    qc.append(Branchy(t), [0, 1])
    qc.rx(0.2, 1)
    pub = (qc, ["XY", "YZ", "ZY"], [[0.5], [2.0], [3.0]])
    res = EstimatorV2(threads=1).run([pub]).result()[0]
    want = StatevectorEstimator().run([pub]).result()[0].data.evs  # after qgt's run
    np.testing.assert_allclose(res.data.evs, want, rtol=0, atol=1e-10)
    assert res.metadata["plan_cache"]["planner_calls"] == 3  # the template + 2 re-plans


# ---- launched ranks -------------------------------------------------------------------
def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_NOTEBOOK_GATE = """
import json
import numpy as np
from qiskit.circuit import Gate, Parameter, ParameterExpression, QuantumCircuit
from qiskit.primitives import StatevectorEstimator
from qgt.qiskit import EstimatorV2, QgtBackend

class Branchy(Gate):  # defined in __main__, as in a notebook
    def __init__(self, t):
        super().__init__("branchy", 2, [t])

    def _define(self):
        qc = QuantumCircuit(2)
        t = self.params[0]
        if (isinstance(t, ParameterExpression) and t.parameters) or float(t) < 1:
            qc.rzz(t, 0, 1)
        else:
            qc.cx(0, 1)
            qc.ry(t, 1)
            qc.cx(0, 1)
        self.definition = qc

t = Parameter("t")
qc = QuantumCircuit(4)
qc.rx(0.3, 0)
qc.ry(0.7, 1)
qc.append(Branchy(t), [0, 1])
qc.rx(0.2, 1)
qc.cx(1, 3)
pub = (qc, ["IIXY", "IZYZ", "ZIZY"], [[0.5], [2.0], [3.0]])
backend = QgtBackend(ranks=2, threads=1)
got = EstimatorV2(backend=backend).run([pub]).result()[0].data.evs
backend.close()
want = StatevectorEstimator().run([pub]).result()[0].data.evs
print(json.dumps(float(np.abs(got - want).max())))
"""


def test_launched_ranks_take_a_gate_class_defined_in_main():
    """A custom Gate written in a notebook lives in ``__main__``, which the worker ranks
    cannot import: the batch must reach them by value, and run right."""
    out = subprocess.run([sys.executable, "-c", _NOTEBOOK_GATE], capture_output=True,
                         text=True, timeout=180, env=clean_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) < 1e-10


def test_param_shift_gradient_on_two_launched_ranks(hamiltonian, ansatz):
    backend = QgtBackend(ranks=2, threads=1)
    try:
        est = EstimatorV2(backend=backend)
        points = _points(ansatz, 2, seed=8)
        ours = _gradients(ParamShiftEstimatorGradient(est), ansatz, hamiltonian, points)
        theirs = _gradients(ParamShiftEstimatorGradient(StatevectorEstimator()), ansatz,
                            hamiltonian, points)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)
        res = est.run([(ansatz, hamiltonian, points)]).result()[0]
        assert res.metadata["plan_cache"]["hit"] and backend.session.size == 2

        # between jobs the ranks sleep: a notebook keeps its cores for its own work
        pids = backend.session._impl.pids
        before = [_cpu_seconds(p) for p in pids]
        time.sleep(2.0)
        idle = [_cpu_seconds(p) - b for p, b in zip(pids, before)]
        assert max(idle) < 0.5, f"idle worker ranks used {idle} s of CPU in 2 s"
    finally:
        backend.close()


# ---- SPMD: every rank the same numbers, noise included ----------------------------------
_SPMD_NOISE = """
import json, sys
from mpi4py import MPI
from qiskit.circuit.library import real_amplitudes
from qgt.qiskit import EstimatorV2
qc = real_amplitudes(4, reps=1)
est = EstimatorV2(threads=1)                      # no seed: qiskit-ml's default use
pubs = [(qc, ["IIZZ", "XXII"], [[0.1] * 8, [0.2] * 8])]
evs = [est.run(pubs, precision=1 / 64).result()[0].data.evs.tolist() for _ in range(2)]
every = MPI.COMM_WORLD.gather(evs)
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps(every))
"""


def test_unseeded_noise_is_the_same_on_every_rank():
    """An EstimatorQNN (precision 1/64, no seed) under mpiexec: every rank must see the same
    values, or the ranks' optimisers part ways and send different circuits."""
    out = run_mpi(2, [sys.executable, "-c", _SPMD_NOISE], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    rank0, rank1 = json.loads(out.stdout.strip().splitlines()[-1])
    assert rank0 == rank1
    assert rank0[0] != rank0[1]  # and a fresh draw for every job
