"""The ``qgt.qubit`` PennyLane device against ``default.qubit``: measurements, observables,
shots and shot vectors, configuration keywords, the plan cache and ``qml.Tracker``.

PennyLane's own conformance suite is tests/test_pennylane_suite.py; adjoint gradients are
tests/test_pennylane_adjoint.py.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

qml = pytest.importorskip("pennylane")

from qgt.errors import ConfigError  # noqa: E402
from tests.conftest import ROOT, clean_env, run_mpi  # noqa: E402


def _circuit(x, n):
    for w in range(n):
        qml.RY(x[w % len(x)], w)
    for w in range(n - 1):
        qml.CNOT([w, w + 1])
    qml.Rot(x[0], x[1], x[2], wires=n - 1)
    qml.CRX(x[1], [n - 1, 0])
    qml.IsingZZ(x[2], [0, 2])
    qml.PauliRot(x[0], "XYZ", wires=[0, 1, 3])


def _both(fn, n, **kw):
    return (qml.QNode(fn, qml.device("qgt.qubit", wires=n, **kw)),
            qml.QNode(fn, qml.device("default.qubit", wires=n)))


X = np.array([0.31, -0.72, 1.13])


def test_entry_point_and_name():
    dev = qml.device("qgt.qubit", wires=3)
    assert dev.name == "qgt.qubit"
    assert type(dev).__module__ == "qgt.pennylane.device"


def test_analytic_measurements_match_default_qubit():
    n = 4
    ham = qml.Hamiltonian([0.5, -0.2, 0.7, 0.1],
                          [qml.Z(0) @ qml.Z(1), qml.X(2), qml.Y(0) @ qml.X(3), qml.Identity(0)])
    herm = np.array([[1.0, 0.3 - 0.2j], [0.3 + 0.2j, -0.5]])

    def f(x):
        _circuit(x, n)
        return (qml.expval(qml.X(0) @ qml.Z(3)), qml.expval(ham), qml.var(ham),
                qml.var(qml.Y(1)), qml.expval(qml.Hermitian(herm, 2)),
                qml.expval(qml.Hermitian(np.kron(herm, herm), [1, 3])),
                qml.probs(wires=[0, 2]), qml.state(),
                qml.expval(qml.Projector([1, 0], wires=[1, 2])))

    ours, ref = _both(f, n)
    for a, b in zip(ours(X), ref(X)):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_string_wire_labels():
    def f(x):
        qml.RX(x[0], "a")
        qml.CNOT(["a", "b"])
        qml.RY(x[1], "c")
        return qml.expval(qml.Z("b") @ qml.X("c")), qml.probs(wires=["c", "a"])

    ours = qml.QNode(f, qml.device("qgt.qubit", wires=["a", "b", "c"]))
    ref = qml.QNode(f, qml.device("default.qubit", wires=["a", "b", "c"]))
    for a, b in zip(ours(X), ref(X)):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_shots_and_shot_vectors():
    n = 3

    def f(x):
        _circuit(x, 4)
        return (qml.expval(qml.X(0)), qml.var(qml.Z(1) @ qml.Y(2)), qml.probs(wires=[0, 1]),
                qml.expval(qml.Hermitian(np.diag([1.0, 2.0, 3.0, -1.0]), [2, 3])))

    ours, ref = _both(f, n + 1, seed=11)
    exact = ref(X)
    got = qml.set_shots(ours, shots=[40000, (20000, 2)])(X)
    assert len(got) == 3
    for part in got:
        for a, b in zip(part, exact):
            np.testing.assert_allclose(a, b, atol=0.05)

    def g():
        qml.Hadamard(0)
        qml.CNOT([0, 1])
        return qml.sample(wires=[0, 1]), qml.counts(wires=[0, 1])

    samples, counts = qml.set_shots(qml.QNode(g, qml.device("qgt.qubit", wires=2, seed=3)),
                                    shots=500)()
    assert samples.shape == (500, 2)
    assert np.all(samples[:, 0] == samples[:, 1])
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 500


def test_seed_makes_samples_repeat():
    def g():
        qml.Hadamard(0)
        qml.RX(0.4, 1)
        return qml.sample(wires=[0, 1])

    a = qml.set_shots(qml.QNode(g, qml.device("qgt.qubit", wires=2, seed=5)), shots=50)()
    b = qml.set_shots(qml.QNode(g, qml.device("qgt.qubit", wires=2, seed=5)), shots=50)()
    np.testing.assert_array_equal(a, b)


def test_templates_and_decomposition():
    n = 4
    weights = np.random.default_rng(1).uniform(0, np.pi, size=(2, n, 3))

    def f(w):
        qml.BasisState(np.array([1, 0, 1, 0]), wires=range(n))
        qml.StronglyEntanglingLayers(w, wires=range(n))
        qml.QFT(wires=[0, 1, 2])
        qml.MultiControlledX(wires=[0, 1, 2, 3])
        return qml.expval(qml.Z(0) @ qml.Z(3)), qml.probs(wires=[1, 2])

    ours, ref = _both(f, n)
    for a, b in zip(ours(weights), ref(weights)):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_config_keywords():
    dev = qml.device("qgt.qubit", wires=2, threads=1, fusion=False)
    assert dev.config.threads == 1 and dev.config.fusion is False
    with pytest.raises(ConfigError, match="threds|threads"):
        qml.device("qgt.qubit", wires=2, threds=1)


def test_one_plan_per_structure_and_tracker():
    """A training loop: new angles every step, one structure, one planner call; the
    tracker shows batches, executions, cache hits and where the time went."""
    n = 5
    dev = qml.device("qgt.qubit", wires=n)

    @qml.qnode(dev, diff_method="parameter-shift")
    def f(x):
        _circuit(x, n)
        return qml.expval(qml.Z(0) @ qml.X(4))

    x = qml.numpy.array(X, requires_grad=True)
    with qml.Tracker(dev) as tracker:
        for _ in range(3):
            qml.grad(f)(x)
            x = x + 0.1
    stats = dev.session.cache_stats()
    assert stats["planner_calls"] == 1, stats
    hist = tracker.history
    assert sum(hist["batches"]) >= 6
    # each gradient: the forward tape + 2 shifted tapes per parameter (3 parameters)
    assert sum(hist["executions"]) >= 3 * 7
    assert sum(hist["plan_cache_hits"]) == sum(hist["executions"]) - 1
    for key in ("plan_seconds", "compute_seconds", "communication_seconds"):
        assert key in hist and all(v >= 0 for v in hist[key])
    assert tracker.totals["plan_seconds"] > 0


def test_unsupported_measurement_is_named():
    dev = qml.device("qgt.qubit", wires=2)

    @qml.qnode(dev)
    def f():
        qml.Hadamard(0)
        return qml.sample(wires=[0])

    with pytest.raises(qml.exceptions.DeviceError, match="qgt.qubit"):
        f()


def test_ssd_tier_measurements(tmp_path):
    """The out-of-core tier behind the device: the same values as in RAM."""
    n = 6
    cfg = {"storage": "ssd", "memory_limit": "16KiB", "ssd_page_size": 256,
           "direct_io": False, "block_qubits": 4, "page_qubits": 1,
           "scratch_dir": str(tmp_path), "threads": 1}

    def f(x):
        _circuit(x, n)
        return (qml.expval(qml.X(0) @ qml.Z(5) + 0.5 * qml.Y(3)), qml.var(qml.Z(2)),
                qml.probs(wires=[0, 4]), qml.state())

    ours, ref = _both(f, n, **cfg)
    for a, b in zip(ours(X), ref(X)):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_progress_callback_sees_the_runs():
    events = []
    dev = qml.device("qgt.qubit", wires=3, progress=events.append)

    @qml.qnode(dev)
    def circuit(x):
        qml.RX(x, 0)
        qml.CNOT([0, 1])
        return qml.expval(qml.PauliZ(1))

    assert abs(circuit(0.3) - np.cos(0.3)) < 1e-12
    assert events and events[-1].step == events[-1].n_steps


@pytest.mark.timeout(400)
@pytest.mark.parametrize("ranks", [1, 2])
def test_docs_classifier_trains_on_one_and_two_ranks(ranks):
    """docs/pennylane_classifier.py as written (adjoint gradients, a broadcast batch of 10
    inputs, 5 epochs of Adam): the loss falls, and the printed losses are the same in one
    process and under mpiexec -n 2."""
    import re

    script = str(ROOT / "docs" / "pennylane_classifier.py")
    proc = run_mpi(ranks, [sys.executable, script], timeout=300,
                   env=clean_env(QGT_THREADS="1", OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = [float(x) for x in re.findall(r"epoch \d: loss ([0-9.]+)", proc.stdout)]
    assert len(losses) == 5, proc.stdout  # rank 0 alone prints
    assert losses[-1] < losses[0] - 0.1, losses
    assert losses[:2] == [1.0089, 0.9465], losses  # the fixed start and first Adam step
