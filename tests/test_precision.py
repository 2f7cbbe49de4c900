"""precision=single: complex64 kernels against the simple reference, complex64 runs on
1, 2 and 4 ranks in RAM and on the SSD tier against Qiskit's Statevector, the files
they write, and checkpoints that record their precision.

Single precision is checked to 1e-5 per amplitude (a float has 24 bits; a few dozen
gates each add about 6e-8 of rounding); double keeps its 1e-10.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit import qasm2
from qiskit.quantum_info import Statevector

from qgt import _kern
from tests.conftest import clean_env, run_qgt
from tests.test_kernels import DENSE, SWAP, WMAPS, rand_ops, rand_state, rand_unitary, ref_sweep

TOL = {np.complex128: 1e-10, np.complex64: 1e-5}


@pytest.mark.parametrize("L,wmap", WMAPS)
def test_complex64_sweep_matches_the_reference(L, wmap):
    rng = np.random.default_rng(7 * L + len(wmap))
    ops = rand_ops(rng, wmap, L + 3, 40)
    psi = rand_state(L, rng)
    want = ref_sweep(psi, L, 3 << L, ops)
    for nthreads in (1, 2):
        got = _kern.aligned_zeros(psi.size, np.complex64)
        got[:] = psi
        _kern.sweep(got, L, 3 << L, wmap, _kern.OpList(ops), nthreads)
        assert got.dtype == np.complex64
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), L=st.integers(3, 11), w=st.integers(0, 8),
       count=st.integers(1, 30), single=st.booleans())
def test_random_op_mixes_in_both_precisions(seed, L, w, count, single):
    rng = np.random.default_rng(seed)
    wmap = sorted(int(b) for b in rng.choice(L, size=min(w, L), replace=False))
    ops = rand_ops(rng, wmap, L + 2, count)
    psi = rand_state(L, rng)
    want = ref_sweep(psi, L, 1 << L, ops)
    dtype = np.complex64 if single else np.complex128
    got = psi.astype(dtype)
    _kern.sweep(got, L, 1 << L, wmap, _kern.OpList(ops), 2)
    assert np.abs(got - want).max() < TOL[dtype] * max(1, count / 10)


# The complex64 build with AVX-512 holds 8 amplitudes per vector, so buffer bits 0-2
# live inside a vector (lane shuffles), where the complex128 build has bits 0-1.
LANE_WMAPS = [(9, list(range(9))), (10, [0, 1, 2, 4, 6, 7, 9]), (11, [3, 4, 6, 8, 10, 9])]


@pytest.mark.parametrize("L,wmap", LANE_WMAPS)
@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_complex64_ops_on_every_lane_bit(L, wmap, k):
    """Dense ops whose targets take every subset of the first three buffer bits (the
    lanes of one complex64 vector), with and without a low control, and swaps of each
    lane bit with a high bit, against the reference."""
    rng = np.random.default_rng(31 * L + k)
    wmap = sorted(wmap)
    lane, high = wmap[:3], wmap[3:]
    ops = []
    for sub in range(8):
        low = [lane[j] for j in range(3) if sub >> j & 1]
        if len(low) > k or k - len(low) > len(high):
            continue
        tg = low + [int(b) for b in rng.choice(high, size=k - len(low), replace=False)]
        free = [b for b in wmap if b not in tg]
        ops.append((DENSE, tuple(tg), 0, 0, rand_unitary(1 << k, rng)))
        if free:
            c = free[0]
            ops.append((DENSE, tuple(tg), 1 << c, 1 << c, rand_unitary(1 << k, rng)))
    for b in lane:
        ops.append((SWAP, (b, high[-1]), 0, 0, np.zeros(0, dtype=complex)))
        ops.append((SWAP, (b, high[0]), 1 << lane[(lane.index(b) + 1) % 3], 0,
                    np.zeros(0, dtype=complex)))
    psi = rand_state(L, rng)
    want = ref_sweep(psi, L, 0, ops)
    for nthreads in (1, 2):
        got = _kern.aligned_zeros(psi.size, np.complex64)
        got[:] = psi
        _kern.sweep(got, L, 0, wmap, _kern.OpList(ops), nthreads)
        np.testing.assert_allclose(got, want, atol=2e-5 * max(1, len(ops) / 10), rtol=0)


def test_complex64_reductions_on_every_lane_pattern():
    """Marginals over the lane bits and Pauli terms whose X part flips any of them
    (each of the 8 lane patterns has its own shuffle) agree with complex128."""
    rng = np.random.default_rng(12)
    L = 11
    exact = rand_state(L, rng).astype(np.complex64).astype(np.complex128)
    s = exact.astype(np.complex64)
    for bits in ([0], [2], [1, 2], [2, 0, 5], [0, 1, 2, 3], [7, 2, 11]):
        np.testing.assert_allclose(_kern.marginal(s, L, 0, bits, 2),
                                   _kern.marginal(exact, L, 0, bits, 2), atol=1e-8, rtol=0)
    for x in list(range(8)) + [0b1100101, 0b10000000110]:
        z = int(rng.integers(0, 1 << L))
        assert abs(_kern.pauli_expect(s, L, 0, x, z, 2)
                   - _kern.pauli_expect(exact, L, 0, x, z, 2)) < 1e-8
        for nterms in (3, 20):
            zs = rng.integers(0, 1 << L, size=nterms).astype(np.uint64)
            np.testing.assert_allclose(_kern.pauli_group(s, L, 0, x, zs, 2),
                                       _kern.pauli_group(exact, L, 0, x, zs, 2),
                                       atol=1e-8, rtol=0)


def test_complex64_reductions_add_in_double():
    """Squares and products are summed in float lanes over runs of at most 256
    amplitudes, then in double: relative errors stay near 1e-9, not 1e-4."""
    rng = np.random.default_rng(5)
    L = 14
    psi = rand_state(L, rng)
    s = psi.astype(np.complex64)
    exact = s.astype(np.complex128)  # the same amplitudes, summed in double by numpy
    p = np.abs(exact) ** 2
    idx = (np.arange(1 << L) >> 3 & 1) | ((np.arange(1 << L) >> 11 & 1) << 1)
    np.testing.assert_allclose(_kern.marginal(s, L, 0, [3, 11], 2),
                               np.bincount(idx, weights=p, minlength=4), rtol=1e-8)
    np.testing.assert_allclose(_kern.block_norms(s, 256, 2), p.reshape(-1, 256).sum(axis=1),
                               rtol=1e-6)
    got = _kern.pauli_group(s, L, 0, 0b101, np.array([0b110, 0b11], dtype=np.uint64), 2)
    want = _kern.pauli_group(exact, L, 0, 0b101, np.array([0b110, 0b11], dtype=np.uint64), 2)
    np.testing.assert_allclose(got, want, atol=1e-8, rtol=0)
    t = np.sort(rng.random(500))
    assert (_kern.sample_sorted(s, t) == _kern.sample_sorted(exact, t)).all()


QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[9];
h q[0]; h q[3]; cx q[0],q[8]; u(0.3,0.2,0.1) q[5]; cp(0.7) q[8],q[2];
rzz(0.4) q[1],q[7]; ccx q[0],q[3],q[6]; swap q[2],q[5]; ry(1.1) q[8]; cswap q[6],q[1],q[4];
rx(0.9) q[7]; cx q[7],q[0]; crz(0.5) q[4],q[8]; h q[8]; t q[2];
creg c[9];
measure q -> c;
"""
SSD = ["--set", "storage=ssd", "--set", "memory_limit=16KiB", "--set", "ssd_page_size=256",
       "--set", "block_qubits=5",
       "--set", "direct_io=false"]


@pytest.mark.parametrize("ranks", [1, 2, 4])
@pytest.mark.parametrize("tier", ["ram", "ssd"])
def test_single_precision_runs_match_statevector(tmp_path, ranks, tier):
    (tmp_path / "c.qasm").write_text(QASM)
    sv, out = tmp_path / "s.h5", tmp_path / "r.json"
    extra = SSD if tier == "ssd" else []
    p = run_qgt(ranks, ["run", str(tmp_path / "c.qasm"), "--set", "precision=single",
                        "--statevector", str(sv), "--output", str(out), "--shots", "2000",
                        "--seed", "3", "--quiet", *extra],
                env=clean_env(QGT_SCRATCH_DIR=tmp_path, QGT_THREADS=1), timeout=180)
    assert p.returncode == 0, p.stderr
    with h5py.File(sv) as f:
        state, dtype, prec = f["state"][...], f["state"].dtype, f.attrs["precision"]
    assert dtype == np.complex64 and prec == "single"
    qc = qasm2.loads(QASM, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    qc.remove_final_measurements()
    want = Statevector(qc)
    assert np.abs(state - want.data).max() < 1e-5
    res = json.loads(out.read_text())
    assert res["plan"]["precision"] == "single"
    assert res["state_bytes_per_rank"] == 8 * (1 << 9) // ranks
    assert sum(res["counts"].values()) == 2000
    probs = want.probabilities()
    assert all(probs[int(k, 2)] > 1e-6 for k in res["counts"])  # only outcomes that exist


def test_plan_halves_the_state_in_single_precision():
    from qgt.api import plan_for
    from qgt.config import load_config
    from qgt.frontend import load_circuit
    from qgt.plan.summary import plan_figures

    circ = load_circuit("qft:20")
    figs = {prec: plan_figures(plan_for(circ, load_config(env={}, overrides={
        "precision": prec}), 2)) for prec in ("double", "single")}
    assert figs["double"]["state_bytes_per_rank"] == 16 << 19
    assert figs["single"]["state_bytes_per_rank"] == 8 << 19
    assert figs["single"]["bytes_exchanged_per_rank"] * 2 == \
        figs["double"]["bytes_exchanged_per_rank"]


def _checkpointed(tmp_path, precision: str):
    ck = tmp_path / "ck"
    p = run_qgt(2, ["run", "qpe:10", "--seed", "4", "--set", f"checkpoint_dir={ck}",
                    "--set", "checkpoint_at_end=true", "--set", f"precision={precision}",
                    "--quiet"], env=clean_env(QGT_THREADS=1), timeout=180)
    assert p.returncode == 0, p.stderr
    return ck


def test_a_checkpoint_records_its_precision_and_refuses_the_other(tmp_path):
    ck = _checkpointed(tmp_path, "single")
    (master,) = ck.glob("ckpt-*/master.h5")
    with h5py.File(master) as f:
        assert f.attrs["precision"] == "single" and f["state"].dtype == np.complex64
    p = run_qgt(2, ["run", "qpe:10", "--resume", str(ck), "--quiet"],
                env=clean_env(QGT_THREADS=1), timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "single-precision state" in p.stderr and "precision=single" in p.stderr
    sv = tmp_path / "s.h5"
    p = run_qgt(2, ["run", "qpe:10", "--resume", str(ck), "--set", "precision=single",
                    "--statevector", str(sv), "--quiet"], env=clean_env(QGT_THREADS=1),
                timeout=120)
    assert p.returncode == 0, p.stderr
    with h5py.File(sv) as f:
        assert f["state"].dtype == np.complex64


def test_a_checkpoint_from_before_precision_still_loads(tmp_path):
    ck = _checkpointed(tmp_path, "double")
    (master,) = ck.glob("ckpt-*/master.h5")
    with h5py.File(master, "a") as f:
        del f.attrs["precision"]  # as written by qgt before the key existed
    p = run_qgt(2, ["run", "qpe:10", "--resume", str(ck), "--quiet"],
                env=clean_env(QGT_THREADS=1), timeout=120)
    assert p.returncode == 0, p.stderr


def test_pennylane_adjoint_gradient_in_single_precision():
    """The adjoint pass runs on complex64 psi and lambda (csrc/f32/ adjoint kernels)."""
    import pennylane as qml
    from pennylane import numpy as pnp

    def circuit(x):
        for i in range(6):
            qml.RY(x[i], wires=i)
        for i in range(5):
            qml.CNOT(wires=[i, i + 1])
        qml.CRX(x[6], wires=[0, 5])
        return qml.expval(qml.PauliZ(0) @ qml.PauliX(5) + 0.5 * qml.PauliY(2))

    x = pnp.array(np.linspace(0.1, 1.3, 7), requires_grad=True)
    dev = qml.device("qgt.qubit", wires=6, precision="single", threads=1)
    assert dev.config.precision == "single"
    got = qml.QNode(circuit, dev, diff_method="adjoint")
    want = qml.QNode(circuit, qml.device("default.qubit", wires=6))
    assert abs(got(x) - want(x)) < 1e-5
    assert np.abs(qml.grad(got)(x) - qml.grad(want)(x)).max() < 1e-5
    state = qml.QNode(lambda: (qml.Hadamard(0), qml.state())[1], dev)()
    assert state.dtype == np.complex64
