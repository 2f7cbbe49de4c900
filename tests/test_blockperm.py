"""Sweeps that only permute amplitudes on high bits run as block moves
(qgt.runtime.blockperm, qgt_kern_permute_blocks): random permutation ops, controls on
local and rank bits, and zero blocks skipped, against the simple one-op reference, in
both precisions; and end to end, a GHZ chain on 1 and 2 ranks against Statevector."""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qiskit.quantum_info import Statevector

from qgt import _kern
from qgt.frontend import load_qiskit
from qgt.plan.steps import DENSE, DIAG, SWAPBITS, PhysOp
from qgt.runtime.blockperm import MIN_BLOCK_BYTES, block_permutation, moved_fraction
from qgt.runtime.engine import kernel_op
from tests.conftest import ROOT, run_mpi
from tests.test_kernels import ref_sweep

TOL = {np.complex128: 1e-12, np.complex64: 1e-6}


@st.composite
def perm_sweeps(draw):
    """(L, rank, lowest bit, ops, zero bits): permutation ops on bits >= low."""
    L = draw(st.integers(10, 12))
    low = draw(st.integers(7, L - 2))  # 7: blocks too small, swept instead
    rank = draw(st.integers(0, 3))
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        k = draw(st.integers(1, min(3, L - low)))
        tg = tuple(draw(st.permutations(range(low, L)))[:k])
        free = [b for b in range(low, L + 2) if b not in tg]  # L, L+1: rank bits
        cbits = draw(st.lists(st.sampled_from(free), max_size=2, unique=True))
        cm = sum(1 << b for b in cbits)
        cv = cm & draw(st.integers(0, (1 << (L + 2)) - 1))
        if k == 2 and draw(st.booleans()):
            ops.append(PhysOp(SWAPBITS, tg, np.zeros(0, dtype=complex), cm, cv))
            continue
        perm = draw(st.permutations(range(1 << k)))
        ops.append(PhysOp(DENSE, tg, np.eye(1 << k, dtype=complex)[:, perm], cm, cv))
    zero = draw(st.lists(st.integers(low, L - 1), max_size=3, unique=True))
    return L, rank, low, ops, zero


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@settings(max_examples=60, deadline=None)
@given(case=perm_sweeps())
def test_block_moves_match_the_reference(dtype, case):
    L, rank, low, ops, zero = case
    rng = np.random.default_rng(L * 31 + rank)
    psi = (rng.normal(size=1 << L) + 1j * rng.normal(size=1 << L)).astype(dtype)
    idx = np.arange(1 << L)
    zmask = sum(1 << b for b in zero)
    psi[(idx & zmask) != 0] = 0  # the planner's zero bits: those amplitudes are zero
    base = rank << L
    want = ref_sweep(psi.astype(complex), L, base, [kernel_op(op) for op in ops])
    moves = block_permutation(ops, L, base, zmask, psi.itemsize)
    used = [b for op in ops for b in op.targets] + [
        b for op in ops for b in range(L) if op.ctrl_mask >> b & 1]
    if psi.itemsize << min(used) < MIN_BLOCK_BYTES:
        assert moves is None
        return
    assert moves is not None and len(moves[0]) == 1 << (L - min(used))
    assert 0 <= moved_fraction(*moves) <= 1
    for threads in (1, 2):
        got = psi.copy()
        _kern.permute_blocks(got, *moves, threads)
        np.testing.assert_allclose(got, want, atol=TOL[dtype], rtol=0)


def test_a_sweep_that_does_arithmetic_or_moves_low_bits_is_swept():
    h = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)
    x = np.array([[0, 1], [1, 0]], dtype=complex)
    assert block_permutation([PhysOp(DENSE, (10,), h)], 12, 0, 0, 16) is None
    assert block_permutation([PhysOp(DIAG, (10,), np.ones(2, dtype=complex))], 12, 0, 0,
                             16) is None
    assert block_permutation([PhysOp(DENSE, (3,), x)], 12, 0, 0, 16) is None  # 128 B blocks
    # a control below the targets sets the block size too
    assert block_permutation([PhysOp(DENSE, (10,), x, 1 << 2, 1 << 2)], 12, 0, 0, 16) is None
    src, live = block_permutation([PhysOp(DENSE, (11,), x, 1 << 10, 1 << 10)], 12, 0, 0, 16)
    assert list(src) == [0, 3, 2, 1] and live.all()  # CX(10 -> 11): blocks 1 and 3 trade
    assert moved_fraction(src, live) == 0.5


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_blocks_larger_than_a_piece_move_whole(dtype):
    """Blocks of 2 and 4 MiB are rotated 1 MiB at a time (the scratch stays small)."""
    x = np.array([[0, 1], [1, 0]], dtype=complex)
    L = 20
    rng = np.random.default_rng(5)
    psi = (rng.normal(size=1 << L) + 1j * rng.normal(size=1 << L)).astype(dtype)
    ops = [PhysOp(DENSE, (19,), x), PhysOp(SWAPBITS, (18, 19), np.zeros(0, dtype=complex))]
    moves = block_permutation(ops, L, 0, 0, psi.itemsize)
    assert len(moves[0]) == 4 and psi.nbytes // 4 > 1 << 20
    want = ref_sweep(psi.astype(complex), L, 0, [kernel_op(op) for op in ops])
    got = psi.copy()
    _kern.permute_blocks(got, *moves, 2)
    np.testing.assert_array_equal(got, want.astype(dtype))


def test_a_cycle_of_zero_blocks_is_not_touched():
    x = np.array([[0, 1], [1, 0]], dtype=complex)
    psi = np.zeros(1 << 12, dtype=complex)
    psi[:1 << 11] = 1.0  # bit 11 reads 0 wherever the state is not zero
    # X on 10 where bit 11 reads 1 (CX 11 -> 10) trades blocks 2 and 3, both zero
    ops = [PhysOp(DENSE, (10,), x, 1 << 11, 1 << 11)]
    src, live = block_permutation(ops, 12, 0, 1 << 11, 16)
    assert list(src) == [0, 1, 3, 2] and list(live) == [1, 1, 0, 0]
    assert moved_fraction(src, live) == 0.0
    psi[(1 << 11) + 5] = 7.0  # a lie about a zero block: skipped, so it stays where it was
    _kern.permute_blocks(psi, src, live, 2)
    assert psi[(1 << 11) + 5] == 7.0 and psi[(3 << 10) + 5] == 0.0
    # told the truth (every block live), the same cycle is rotated
    _kern.permute_blocks(psi, src, np.ones(4, dtype=np.uint8), 2)
    assert psi[(1 << 11) + 5] == 0.0 and psi[(3 << 10) + 5] == 7.0


def test_a_cycle_with_one_live_block_copies_it_and_clears_its_old_place():
    """GHZ's chain: a cycle of 4 blocks of which one may hold anything.  Its content
    lands where the permutation sends it, its old block is cleared, and the blocks
    known to be zero are neither read nor written (a planted value in one stays)."""
    x = np.array([[0, 1], [1, 0]], dtype=complex)
    L = 13
    # CX 10 -> 11, then CX 11 -> 12: block bits (10, 11, 12) = j; j=1 -> 3 -> 7 -> 5 -> 1
    ops = [PhysOp(DENSE, (11,), x, 1 << 10, 1 << 10), PhysOp(DENSE, (12,), x, 1 << 11, 1 << 11)]
    rng = np.random.default_rng(4)
    psi = np.zeros(1 << L, dtype=complex)
    psi[1 << 10:2 << 10] = rng.normal(size=1 << 10)  # block 1 live, blocks 3, 5, 7 zero
    psi[:1 << 10] = 1.0  # block 0 is fixed
    want = ref_sweep(psi, L, 0, [kernel_op(op) for op in ops])
    zero = (1 << 11) | (1 << 12)  # bits 11 and 12 read 0 wherever the state is not zero
    src, live = block_permutation(ops, L, 0, zero, 16)
    assert list(live) == [1, 1, 0, 0, 0, 0, 0, 0] and moved_fraction(src, live) == 2 / 8
    got = psi.copy()
    got[(5 << 10) + 9] = 3.0  # a lie about block 5 (dead, and its source 7 is dead)
    _kern.permute_blocks(got, src, live, 2)
    assert got[(5 << 10) + 9] == 3.0  # untouched
    got[(5 << 10) + 9] = 0.0
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("threads", [1, 2])
def test_every_live_pattern_of_a_cycle_rotates_right(threads):
    """A cycle starts its rotation at a dead block when it has one (no scratch copy),
    at a live one otherwise: every pattern of live blocks on a cycle of 4, a cycle of 2
    and two fixed blocks, the dead ones zero, against new block j = old block src[j]."""
    src = np.array([3, 4, 2, 1, 0, 6, 5, 7])  # 0 <- 3 <- 1 <- 4 <- 0; 5 <-> 6
    nb, bb = len(src), 1 << 9
    rng = np.random.default_rng(9)
    for mask in range(1 << nb):
        live = np.array([mask >> j & 1 for j in range(nb)], dtype=np.uint8)
        psi = rng.normal(size=(nb, bb)) + 1j * rng.normal(size=(nb, bb))
        psi[live == 0] = 0
        want = psi[src].reshape(-1)
        got = psi.reshape(-1).copy()
        _kern.permute_blocks(got, src, live, threads)
        np.testing.assert_array_equal(got, want, err_msg=f"live {live}")


@pytest.mark.parametrize("ranks,cfg", [(1, {}), (2, {"shared_memory": False})])
def test_a_ghz_chain_moves_blocks_and_matches_qiskit(tmp_path, ranks, cfg):
    cfg = {**cfg, "block_qubits": 6}
    jobs = [{"name": "ghz", "circuit": "ghz:16", "config": cfg, "seed": 1, "shots": 500,
             "statevector": str(tmp_path / "ghz.h5")}]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    p = run_mpi(ranks, [sys.executable, str(ROOT / "tests" / "mpi_driver.py"),
                        str(tmp_path / "jobs.json"), str(tmp_path / "out.json")], timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())["ghz"]
    assert sum(io["block_move_sweeps"] for io in out["io"]) > 0
    with h5py.File(tmp_path / "ghz.h5", "r") as f:
        state = f["state"][...]
    want = Statevector(load_qiskit("ghz:16").remove_final_measurements(inplace=False)).data
    assert np.abs(state - want).max() < 1e-10
    assert set(out["counts"]) == {"0" * 16, "1" * 16}
