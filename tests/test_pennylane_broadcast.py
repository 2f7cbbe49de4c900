"""Parameter broadcasting on ``qgt.qubit``: a broadcast tape of analytic Pauli expectation
values runs whole (one tape, one task of batch_size value sets, one adjoint pass per set);
anything else is split by broadcast_expand.  Values and adjoint gradients against
``default.qubit``, through the Jacobian and the VJP paths.
"""

from __future__ import annotations

import numpy as np
import pytest

qml = pytest.importorskip("pennylane")
from pennylane import numpy as pnp  # noqa: E402

N, B = 4, 5
pytestmark = pytest.mark.filterwarnings(
    "ignore:Casting complex values to real:numpy.exceptions.ComplexWarning")


def _circuit(weights, x, measurements):
    qml.AngleEmbedding(x, wires=range(N), rotation="Y")
    for w in range(N):
        qml.RX(weights[w, 0], wires=w)
        qml.CRZ(weights[w, 1], wires=[w, (w + 1) % N])
    qml.IsingXX(weights[0, 0] * 0.5, wires=[0, 2])
    return measurements()


H = qml.Hamiltonian([0.4, -1.1, 0.7], [qml.Z(0) @ qml.Z(1), qml.X(2), qml.Y(1) @ qml.Y(3)])


def _qnodes(measurements, **kw):
    dev = qml.device("qgt.qubit", wires=N, threads=1)
    ref = qml.device("default.qubit", wires=N)
    ours = qml.QNode(lambda w, x: _circuit(w, x, measurements), dev, diff_method="adjoint",
                     **kw)
    theirs = qml.QNode(lambda w, x: _circuit(w, x, measurements), ref,
                       diff_method="backprop")
    return dev, ours, theirs


def _data(seed=3):
    rng = np.random.default_rng(seed)
    weights = pnp.array(rng.normal(0, 1, size=(N, 2)), requires_grad=True)
    x = rng.uniform(0, np.pi, size=(B, N))
    return weights, x


@pytest.mark.parametrize("device_vjp", [False, True], ids=["jacobian", "vjp"])
def test_broadcast_values_and_gradients_match_default_qubit(device_vjp):
    dev, ours, theirs = _qnodes(lambda: (qml.expval(H), qml.expval(qml.Z(3))),
                                device_vjp=device_vjp)
    weights, x = _data()
    got, want = ours(weights, x), theirs(weights, x)
    assert np.shape(got) == np.shape(want) == (2, B)
    np.testing.assert_allclose(got, want, atol=1e-10)

    def loss(qnode):
        return lambda w: qml.math.sum(qml.math.stack(qnode(w, x)) *
                                      np.array([[1.0], [0.5]]) * np.arange(1, B + 1))

    g_ours = qml.grad(loss(ours))(weights)
    g_ref = qml.grad(loss(theirs))(weights)
    np.testing.assert_allclose(g_ours, g_ref, atol=1e-8)
    # the full Jacobian too (per element, per weight)
    j_ours = qml.jacobian(lambda w: ours(w, x)[0])(weights)
    j_ref = qml.jacobian(lambda w: theirs(w, x)[0])(weights)
    assert j_ours.shape == (B, N, 2)
    np.testing.assert_allclose(j_ours, j_ref, atol=1e-8)


def test_a_broadcast_tape_runs_whole_as_one_task():
    dev, ours, _ = _qnodes(lambda: qml.expval(H))
    weights, x = _data(5)
    with qml.Tracker(dev) as tracker:
        qml.grad(lambda w: qml.math.sum(ours(w, x)))(weights)
    # one tape reached the device (not B of them), and it ran B value sets
    assert tracker.totals["batch_len"] == 1, tracker.totals
    assert tracker.totals["executions"] == B, tracker.totals
    assert dev.session.cache_stats()["entries"] == 1


def test_trainable_broadcast_inputs():
    """A broadcast parameter that is trainable: d out_b / d x_b per element."""
    dev, ours, theirs = _qnodes(lambda: qml.expval(qml.Z(0) @ qml.X(1)))
    weights, x = _data(7)
    xs = pnp.array(x, requires_grad=True)
    w = pnp.array(weights, requires_grad=False)
    j_ours = qml.jacobian(lambda v: ours(w, v))(xs)
    j_ref = qml.jacobian(lambda v: theirs(w, v))(xs)
    np.testing.assert_allclose(j_ours, j_ref, atol=1e-8)


@pytest.mark.parametrize("kind", ["probs", "shots"])
def test_what_runs_per_element_is_split(kind):
    """probs (from the state) and finite shots: the tape is split into B tapes, with the
    same results as default.qubit's."""
    weights, x = _data(11)
    dev = qml.device("qgt.qubit", wires=N, threads=1, seed=1)
    ref = qml.device("default.qubit", wires=N, seed=1)
    if kind == "probs":
        def fn(w, v):
            _circuit(w, v, lambda: None)
            return qml.probs(wires=[0, 3])
        got = qml.QNode(fn, dev)(weights, x)
        want = qml.QNode(fn, ref)(weights, x)
        np.testing.assert_allclose(got, want, atol=1e-10)
        return

    def fs(w, v):
        _circuit(w, v, lambda: None)
        return qml.expval(qml.Z(0))
    got = qml.set_shots(qml.QNode(fs, dev), shots=20000)(weights, x)
    want = qml.QNode(fs, ref)(weights, x)
    assert np.shape(got) == (B,)
    np.testing.assert_allclose(got, want, atol=0.04)


def test_broadcast_variances_and_several_measurements():
    """expval and var together on a broadcast tape (run whole): (B,) arrays each, as
    default.qubit gives."""
    dev, ours, theirs = _qnodes(lambda: (qml.var(qml.X(1) @ qml.Z(2)), qml.expval(H),
                                         qml.var(H)))
    weights, x = _data(13)
    weights = np.asarray(weights)  # a plain evaluation (adjoint gradients are of expvals)
    with qml.Tracker(dev) as tracker:
        got = ours(weights, x)
    want = theirs(weights, x)
    assert tracker.totals["batch_len"] == 1 and tracker.totals["executions"] == B
    assert len(got) == 3 and all(np.shape(g) == (B,) for g in got)
    np.testing.assert_allclose(np.stack(got), np.stack(want), atol=1e-10)
