"""The intra-node tier's parts, without MPI: a sweep cut into parts by fixed bits, or
shared through a chunk counter, is the whole sweep; and when the planner may share a
node's window.  Its MPI runs (2 and 4 ranks in one window, against Qiskit) are in
test_distributed.py."""

from __future__ import annotations

import numpy as np
import pytest

from qgt import _kern
from qgt.api import shared_rank_bits
from qgt.config import Config, load_config
from tests.test_kernels import rand_ops, rand_state


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_parts_and_a_shared_counter_make_the_whole_sweep(dtype):
    rng = np.random.default_rng(5)
    L, wmap = 12, [0, 1, 3, 4, 7, 8]
    ops = _kern.OpList(rand_ops(rng, wmap, L, 12))
    psi = rand_state(L, rng).astype(dtype)
    want = psi.copy()
    _kern.sweep(want, L, 0, wmap, ops, 2)
    tol = 1e-12 if dtype == np.complex128 else 1e-5
    mask = (1 << 5) | (1 << 10)  # two bits outside the working set: four parts
    parts = psi.copy()
    for value in (0, 1 << 5, 1 << 10, mask):
        _kern.sweep(parts, L, 0, wmap, ops, 2, fixed=(mask, value))
    np.testing.assert_allclose(parts, want, atol=tol, rtol=0)
    shared = psi.copy()
    counter = np.zeros(1, dtype=np.int64)
    _kern.sweep(shared, L, 0, wmap, ops, 2, counter)
    np.testing.assert_allclose(shared, want, atol=tol, rtol=0)
    assert counter[0] >= 1  # every chunk was taken from it


def test_a_fixed_bit_inside_the_working_set_is_refused():
    psi = np.zeros(1 << 6, dtype=complex)
    ops = _kern.OpList([(0, (1,), 0, 0, np.eye(2, dtype=complex))])
    with pytest.raises(Exception, match="argument"):
        _kern.sweep(psi, 6, 0, [0, 1], ops, 1, fixed=(1 << 1, 0))


def test_when_ranks_share_a_node_window():
    cfg = Config()
    assert shared_rank_bits(cfg, 4, 4) == 2  # every rank on one node
    assert shared_rank_bits(cfg, 4, 2) == 1  # two nodes: a window each, exchanges between
    assert shared_rank_bits(cfg, 8, 2) == 1
    assert shared_rank_bits(cfg, 6, 3) == 0  # 3 ranks a node: not a rank bit's worth
    assert shared_rank_bits(cfg, 4, 1) == 0  # one rank a node, or not in rank order
    assert shared_rank_bits(cfg, 1, 1) == 0
    assert shared_rank_bits(cfg, 2, 2, adjoint=True) == 0  # lambda sweeps rank by rank
    assert shared_rank_bits(load_config(None, env={}, overrides={"shared_memory": False}),
                            2, 2) == 0
    # a state larger than /dev/shm's free space (16 TiB): per-rank slices instead
    assert shared_rank_bits(cfg, 2, 2, n_qubits=40) == 0
    assert shared_rank_bits(cfg, 2, 2, n_qubits=10) == 1
