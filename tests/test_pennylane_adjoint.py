"""Adjoint differentiation on ``qgt.qubit`` (qgt.session.adjoint, csrc/qgt_kern_adjoint.c):
gradients of random circuits against ``default.qubit`` and finite differences to 1e-8 on
1, 2 and 4 ranks, in RAM and on the SSD tier; the memory bound (peak RSS) and its check;
parameter-shift and SPSA batching their shifted tapes into one plan.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

qml = pytest.importorskip("pennylane")

from qgt import _kern  # noqa: E402
from qgt.errors import CapacityError  # noqa: E402
from tests.conftest import ROOT, clean_env, run_mpi  # noqa: E402
from tests.pennylane_driver import check  # noqa: E402

DRIVER = str(ROOT / "tests" / "pennylane_driver.py")
TOL = 1e-8
ONE = {"threads": 1}  # the test machines are small and shared: no OpenMP spinning
TINY = {"block_qubits": 4, "page_qubits": 1, "exchange_chunk": 4096, "threads": 1}
# the SSD tier as in tests/test_distributed.py: 16-amplitude pages, groups of 2^4..
SSD = {"storage": "ssd", "memory_limit": "1MiB", "ssd_page_size": 256, "direct_io": False,
       "block_qubits": 4, "page_qubits": 1, "threads": 1}

pytestmark = pytest.mark.filterwarnings(
    # autograd's own cast while differentiating default.qubit's reference
    "ignore:Casting complex values to real:numpy.exceptions.ComplexWarning")


def _assert_close(out: dict) -> None:
    assert out["vs_default_qubit"] < TOL, out
    assert out["vs_finite_differences"] < TOL, out
    assert out["vjp"] < TOL, out
    assert out["values"] < 1e-10, out


def test_pauli_axpy_kernel_against_numpy():
    """lambda += c P psi, term by term (csrc/qgt_kern_adjoint.c)."""
    rng = np.random.default_rng(0)
    L = 6
    ket = rng.normal(size=64) + 1j * rng.normal(size=64)
    out = np.zeros(64, dtype=complex)
    _kern.pauli_axpy(out, ket, L, 0, 0b101, 0b110, 0.5 - 0.25j, 2)
    j = np.arange(64) ^ 0b101
    sign = np.array([(-1) ** bin(k & 0b110).count("1") for k in j])
    np.testing.assert_allclose(out, (0.5 - 0.25j) * sign * ket[j], atol=1e-14)


def test_adjoint_one_process():
    _assert_close(check({"threads": 1}, n=5))


def test_adjoint_one_process_fusion_off_tiny_blocks():
    _assert_close(check({"fusion": False, "block_qubits": 4, "threads": 1}, n=6, seeds=(3,)))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("ranks,config", [(2, ONE), (4, ONE), (2, TINY), (4, TINY),
                                          (2, SSD), (4, SSD)],
                         ids=["2ranks", "4ranks", "2ranks-tiny", "4ranks-tiny", "2ranks-ssd",
                              "4ranks-ssd"])
def test_adjoint_distributed(ranks, config, tmp_path):
    """8 qubits: every task is split over the ranks (none replicated), so the reverse
    pass crosses global swaps on both buffers (on the SSD tier: on both page stores).
    On the SSD tier the Hamiltonian's terms have at most 2 X/Y letters (the page groups
    of these tiny pages cannot hold wider patterns on 4 ranks), one random circuit."""
    extra = ["narrow"] if config.get("storage") == "ssd" else []
    if extra:
        config = dict(config, scratch_dir=str(tmp_path))
    proc = run_mpi(ranks, [sys.executable, DRIVER, json.dumps(config), "8", *extra],
                   timeout=800, env=clean_env(OMP_NUM_THREADS=1))
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    _assert_close(out)
    assert out["cache"]["misses"] >= 1, out  # planned on the ranks, not replicated


def test_adjoint_ssd_tier_one_process(tmp_path):
    """Out of core: psi and lambda in two page stores, each outer sweep's ops reversed
    group by group (one read and write of both stores per sweep)."""
    cfg = dict(SSD, scratch_dir=str(tmp_path), memory_limit="16KiB")
    _assert_close(check(cfg, n=6, seeds=(1,)))
    dev = qml.device("qgt.qubit", wires=6, **cfg)

    def f(x):
        qml.RY(x[0], 0)
        qml.CRX(x[1], [0, 5])
        return qml.expval(qml.Z(5))

    x = qml.numpy.array([0.3, 0.8], requires_grad=True)
    ref = qml.grad(qml.QNode(f, qml.device("default.qubit", wires=6)))(x)
    for method in ("adjoint", "parameter-shift"):
        got = qml.grad(qml.QNode(f, dev, diff_method=method))(x)
        np.testing.assert_allclose(got, ref, atol=TOL)


def test_adjoint_ssd_tier_after_a_run_that_kept_its_last_sweep(tmp_path):
    """The forward run of an adjoint task reads nothing after its plan (no shots, no
    state), so its last sweep (here a restore sweep: the SWAPs leave the layout permuted)
    is not written back; the adjoint pass then runs the plan again and must write it."""
    cfg = dict(SSD, scratch_dir=str(tmp_path), memory_limit="16KiB")
    dev = qml.device("qgt.qubit", wires=8, **cfg)

    def f(x):
        qml.SWAP([0, 7])
        qml.SWAP([1, 6])
        qml.RX(x[0], 0)
        qml.CNOT([0, 6])
        qml.RY(x[1], 6)
        return qml.expval(qml.Z(0) @ qml.X(6))

    x = qml.numpy.array([0.4, 1.1], requires_grad=True)
    ref = qml.grad(qml.QNode(f, qml.device("default.qubit", wires=8)))(x)
    got = qml.grad(qml.QNode(f, dev, diff_method="adjoint"))(x)
    np.testing.assert_allclose(got, ref, atol=TOL)


def test_adjoint_memory_is_checked_before_allocating():
    from qgt.config import load_config
    from qgt.runtime.capacity import ram_bytes

    n = 14
    cfg = load_config(overrides={"storage": "ram"})
    one = ram_bytes(n, cfg, 1)
    dev = qml.device("qgt.qubit", wires=n, storage="ram", threads=1,
                     memory_limit=int(1.5 * one))

    def f(x):
        for w in range(n):
            qml.RY(x, w)
        return qml.expval(qml.Z(0))

    assert abs(qml.QNode(f, dev)(0.4) - np.cos(0.4)) < 1e-12  # the state alone fits
    with pytest.raises(CapacityError, match="one more state-sized buffer"):
        qml.grad(qml.QNode(f, dev, diff_method="adjoint"))(qml.numpy.array(0.4,
                                                                           requires_grad=True))


MEMORY_SCRIPT = r"""
import json, resource, numpy as np, pennylane as qml
n = 20
dev = qml.device("qgt.qubit", wires=n, threads=1)
def f(x):
    for layer in range(2):
        for w in range(n):
            qml.RY(x[layer, w, 0], w)
            qml.RZ(x[layer, w, 1], w)
        for w in range(n - 1):
            qml.CNOT([w, w + 1])
    return qml.expval(qml.Z(0) @ qml.Z(n - 1)), qml.expval(0.5 * qml.X(3) + 0.2 * qml.Y(n - 2))
x = qml.numpy.array(np.random.default_rng(0).uniform(size=(2, n, 2)), requires_grad=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
qml.QNode(f, dev, diff_method=None)(x)
fwd = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
node = qml.QNode(f, dev, diff_method="adjoint")
jac = qml.jacobian(lambda x: qml.math.stack(node(x)))(x)
adj = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "forward": fwd, "adjoint": adj, "state": 16 << n,
                  "params": int(x.size), "finite": bool(np.all(np.isfinite(jac)))}))
"""


@pytest.mark.timeout(600)
def test_adjoint_peak_rss_within_state_plus_three_buffers():
    """20 qubits (a 16 MiB state), 80 parameters, 2 observables: the adjoint pass holds
    psi and lambda; peak RSS grows by less than the state + 3 state-sized buffers."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True,
                          text=True, timeout=500, env=clean_env(OMP_NUM_THREADS=1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["finite"] and m["params"] == 80
    grown = m["adjoint"] - m["base"]
    assert grown <= 4 * m["state"], (grown / m["state"], m)
    # the adjoint pass itself adds about one state (lambda) to the forward run's peak
    assert m["adjoint"] - m["forward"] <= 2 * m["state"], m


def test_parameter_shift_and_spsa_batch_into_one_plan():
    n = 4
    dev = qml.device("qgt.qubit", wires=n, seed=3, threads=1)

    def f(x):
        for w in range(n):
            qml.RY(x[w], w)
            qml.RZ(x[n + w], w)
        for w in range(n - 1):
            qml.CNOT([w, w + 1])
        return qml.expval(qml.Z(0) @ qml.X(3) + 0.4 * qml.Y(1))

    x = qml.numpy.array(np.linspace(0.1, 0.8, 2 * n), requires_grad=True)
    ref = qml.grad(qml.QNode(f, qml.device("default.qubit", wires=n)))(x)
    with qml.Tracker(dev) as tracker:
        ps = qml.grad(qml.QNode(f, dev, diff_method="parameter-shift"))(x)
    np.testing.assert_allclose(ps, ref, atol=1e-10)
    # the 2P shifted tapes of one batch are one session task: one plan, 2P bindings
    assert max(tracker.history["batch_len"]) == 4 * n
    assert tracker.history["tasks"][-1] == 1
    assert dev.session.cache_stats()["planner_calls"] == 1

    spsa = qml.QNode(f, dev, diff_method="spsa", gradient_kwargs={"h": 1e-3,
                                                                   "num_directions": 40})
    g = qml.grad(spsa)(x)
    assert np.dot(g, ref) > 0  # an unbiased estimate points along the gradient

    opt = qml.SPSAOptimizer(maxiter=20)
    cost = qml.QNode(f, dev)
    y, first = x, float(cost(x))
    for _ in range(20):
        y = opt.step(cost, y)
    assert float(cost(y)) < first
    assert dev.session.cache_stats()["planner_calls"] == 1


@pytest.mark.timeout(600)
def test_launched_ranks_values_and_adjoint_gradients():
    """A plain process with ``ranks=2``: qgt launches two worker ranks; values, samples
    and adjoint gradients come back as in one process."""
    n = 6
    dev = qml.device("qgt.qubit", wires=n, ranks=2, threads=1, seed=4)
    try:
        f, p = _small_circuit(n)
        x = qml.numpy.array(np.linspace(-1.0, 1.2, p), requires_grad=True)
        ref = qml.QNode(f, qml.device("default.qubit", wires=n))
        ours = qml.QNode(f, dev, diff_method="adjoint")
        assert abs(float(ours(x)) - float(ref(x))) < 1e-12
        np.testing.assert_allclose(qml.grad(ours)(x), qml.grad(ref)(x), atol=TOL)
        assert dev.session.mode == "launched" and dev.session.size == 2
    finally:
        dev.close()


def _small_circuit(n):
    def f(x):
        for w in range(n):
            qml.RY(x[w], w)
        for w in range(n - 1):
            qml.CNOT([w, w + 1])
        qml.CRX(x[n], [n - 1, 0])
        qml.IsingZZ(x[n + 1], [1, 4])
        return qml.expval(qml.X(0) @ qml.Z(n - 1) + 0.3 * qml.Y(2))

    return f, n + 2


def test_best_picks_adjoint_where_it_applies():
    """As on lightning.qubit: diff_method="best" (the default) is adjoint for analytic
    expectation values, parameter-shift for probabilities or shots; both give the
    right gradient."""
    dev = qml.device("qgt.qubit", wires=3, threads=1)

    def ev(x):
        qml.RX(x, 0)
        qml.CNOT([0, 2])
        return qml.expval(qml.Z(2))

    def probs(x):
        qml.RX(x, 0)
        return qml.probs(wires=[0])

    x = qml.numpy.array(0.3, requires_grad=True)
    resolved = qml.workflow.construct_execution_config
    assert resolved(qml.QNode(ev, dev))(x).gradient_method == "adjoint"
    assert resolved(qml.QNode(probs, dev))(x).gradient_method is qml.gradients.param_shift
    shots = qml.set_shots(qml.QNode(ev, dev), 100)
    assert resolved(shots)(x).gradient_method is qml.gradients.param_shift

    def hermitian(m):  # a trainable observable matrix: adjoint cannot, so parameter-shift
        qml.RX(0.3, 0)
        return qml.expval(qml.Hermitian(m, wires=0))

    m = qml.numpy.array([[1.0, 0.5], [0.5, -1.0]], requires_grad=True)
    assert resolved(qml.QNode(hermitian, dev))(m).gradient_method is \
        qml.gradients.param_shift
    assert abs(qml.grad(qml.QNode(ev, dev))(x) + np.sin(0.3)) < 1e-10
    np.testing.assert_allclose(qml.jacobian(qml.QNode(probs, dev))(x),
                               [-np.sin(0.3) / 2, np.sin(0.3) / 2], atol=1e-10)


def test_adjoint_moves_to_the_ssd_tier_when_two_states_do_not_fit(tmp_path):
    """storage="auto" with room for one state but not two: the forward run stays in RAM,
    the adjoint run is planned on the SSD tier (psi and lambda in page stores, groups
    sized for both) and gives the right gradient; qml.Tracker shows the disk traffic."""
    from qgt.config import load_config
    from qgt.runtime.capacity import ram_bytes

    n = 14
    one = ram_bytes(n, load_config(overrides={}), 1)
    dev = qml.device("qgt.qubit", wires=n, threads=1, memory_limit=int(1.5 * one),
                     scratch_dir=str(tmp_path), ssd_page_size=4096, direct_io=False)

    def f(x):
        for w in range(n):
            qml.RY(x[w], w)
        for w in range(n - 1):
            qml.CNOT([w, w + 1])
        return qml.expval(qml.Z(0) @ qml.X(n - 1))

    x = qml.numpy.array(np.linspace(0.1, 1.0, n), requires_grad=True)
    with qml.Tracker(dev) as forward:
        qml.QNode(f, dev, diff_method=None)(x)
    assert forward.totals["bytes_read"] == 0  # one state fits: RAM
    with qml.Tracker(dev) as adjoint:
        got = qml.grad(qml.QNode(f, dev, diff_method="adjoint"))(x)
    assert adjoint.totals["bytes_read"] > 0 and adjoint.totals["bytes_written"] > 0
    assert adjoint.totals["passes"] >= 3  # forward sweeps, lambda, reverse sweeps
    ref = qml.grad(qml.QNode(f, qml.device("default.qubit", wires=n)))(x)
    np.testing.assert_allclose(got, ref, atol=TOL)


SSD_MEMORY_SCRIPT = r"""
import json, resource, tempfile, numpy as np, pennylane as qml
n = 22
tmp = tempfile.mkdtemp()
dev = qml.device("qgt.qubit", wires=n, threads=1, storage="ssd", memory_limit="24MiB",
                 scratch_dir=tmp, direct_io=False, ssd_page_size=65536)
def f(x):
    for w in range(n):
        qml.RY(x[w], w)
    for w in range(n - 1):
        qml.CNOT([w, w + 1])
    return qml.expval(qml.Z(0) @ qml.Z(n - 1))
x = qml.numpy.array(np.linspace(0.1, 1.0, n), requires_grad=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
qml.QNode(f, dev, diff_method=None)(x)
fwd = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with qml.Tracker(dev) as tr:
    g = qml.grad(qml.QNode(f, dev, diff_method="adjoint"))(x)
adj = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "forward": fwd, "adjoint": adj, "state": 16 << n,
                  "read": tr.totals["bytes_read"], "finite": bool(np.all(np.isfinite(g)))}))
"""


@pytest.mark.timeout(300)
def test_adjoint_on_the_ssd_tier_keeps_lambda_out_of_ram():
    """22 qubits (a 64 MiB state) with memory_limit=24MiB on the SSD tier: the adjoint
    pass adds less than the limit to the forward run's peak RSS (lambda's pages are on
    disk, its engine's buffers fit beside psi's), and it reads the disk."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", SSD_MEMORY_SCRIPT], capture_output=True,
                          text=True, timeout=250, env=clean_env(OMP_NUM_THREADS=1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["finite"] and m["read"] > 2 * m["state"], m
    assert m["adjoint"] - m["forward"] <= 24 << 20, m
