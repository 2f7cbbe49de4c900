"""Tests of the C kernels through qgt._kern against a deliberately simple numpy
reference: every op kind, control placement and working-set shape a planner
can produce, the reductions, and the mapping of C status codes to exceptions.

Run: /work/main/.venv/bin/python -m pytest tests/test_kernels.py
"""

import numpy as np
import pytest

from qgt import _kern
from qgt.errors import InternalError

DENSE, DIAG, SWAP = _kern.KIND_DENSE, _kern.KIND_DIAG, _kern.KIND_SWAPBITS
ATOL = 1e-12


# ---- reference ------------------------------------------------------------


def ref_apply(state, L, rank_base, op):
    """Apply one op to a slice, the obvious way, on global physical indices."""
    kind, targets, cmask, cval, mat = op
    n = 1 << L
    loc = np.arange(n, dtype=np.int64)
    glob = loc | rank_base
    on = (glob & cmask) == cval
    out = state.copy()
    if kind == DIAG:
        idx = np.zeros(n, dtype=np.int64)
        for j, t in enumerate(targets):
            idx |= ((glob >> t) & 1) << j
        d = np.asarray(mat, dtype=complex).reshape(-1)
        out[on] = state[on] * d[idx[on]]
        return out
    if kind == SWAP:
        a, b = targets
        src = loc ^ (
            ((((loc >> a) ^ (loc >> b)) & 1) << a) | ((((loc >> a) ^ (loc >> b)) & 1) << b)
        )
        out[on] = state[src[on]]
        return out
    tmask = sum(1 << t for t in targets)
    base = loc[((loc & tmask) == 0) & on]
    k = len(targets)
    offs = np.array(
        [sum(((c >> j) & 1) << t for j, t in enumerate(targets)) for c in range(1 << k)]
    )
    m = np.asarray(mat, dtype=complex).reshape(1 << k, 1 << k)
    blk = state[base[:, None] + offs[None, :]]
    out[base[:, None] + offs[None, :]] = blk @ m.T
    return out


def rand_state(L, rng):
    s = rng.normal(size=1 << L) + 1j * rng.normal(size=1 << L)
    return s / np.linalg.norm(s)


def rand_unitary(dim, rng):
    z = rng.normal(size=(dim, dim)) + 1j * rng.normal(size=(dim, dim))
    q, r = np.linalg.qr(z)
    return q * (np.diag(r) / np.abs(np.diag(r)))


def rand_phases(dim, rng, ones=0.0):
    d = np.exp(1j * rng.uniform(0, 2 * np.pi, dim))
    d[rng.random(dim) < ones] = 1.0
    return d


H = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)
X = np.array([[0, 1], [1, 0]], dtype=complex)
CX = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]], dtype=complex)


def rand_controls(rng, free_bits, nmax=2):
    """A control mask/value on up to nmax bits drawn from free_bits."""
    free_bits = list(free_bits)
    nc = int(rng.integers(0, min(nmax, len(free_bits)) + 1))
    cbits = rng.choice(free_bits, size=nc, replace=False) if nc else []
    cm = sum(1 << int(b) for b in cbits)
    cv = sum(int(rng.integers(0, 2)) << int(b) for b in cbits)
    return cm, cv


def rand_ops(rng, wmap, nbits, count):
    """Ops a planner may emit for working set wmap in an nbits-bit index space."""
    ops = []
    allbits = list(range(nbits))
    for _ in range(count):
        r = rng.random()
        if wmap and r < 0.45:
            k = int(rng.integers(1, min(6, len(wmap)) + 1))
            tg = [int(b) for b in rng.choice(wmap, size=k, replace=False)]
            kind_pick = rng.random()
            if k == 1 and kind_pick < 0.2:
                m = X
            elif k == 1 and kind_pick < 0.4:
                m = H
            elif k == 2 and kind_pick < 0.3:
                m = CX
            elif kind_pick < 0.4:
                m = np.diag(rand_phases(1 << k, rng))  # diagonal given as dense
            else:
                m = rand_unitary(1 << k, rng)
            cm, cv = rand_controls(rng, [b for b in allbits if b not in tg])
            ops.append((DENSE, tuple(tg), cm, cv, m))
        elif len(wmap) >= 2 and r < 0.55:
            tg = tuple(int(b) for b in rng.choice(wmap, size=2, replace=False))
            cm, cv = rand_controls(rng, [b for b in allbits if b not in tg])
            ops.append((SWAP, tg, cm, cv, np.zeros(0, dtype=complex)))
        else:
            k = int(rng.integers(0, 5))
            tg = [int(b) for b in rng.choice(allbits, size=k, replace=False)]
            cm, cv = rand_controls(rng, [b for b in allbits if b not in tg], nmax=3)
            ops.append((DIAG, tuple(tg), cm, cv, rand_phases(1 << k, rng, ones=0.5)))
    return ops


def ref_sweep(state, L, rank_base, ops):
    for op in ops:
        state = ref_apply(state, L, rank_base, op)
    return state


# ---- sweep -----------------------------------------------------------------

WMAPS = [
    (10, list(range(10))),  # whole slice, one unit, in place
    (11, list(range(7))),  # contiguous low bits: in place units
    (11, [0, 1, 2, 5, 7, 9]),  # low run of 3 plus scattered bits
    (12, [3, 4, 6, 8, 10, 11]),  # no low bits: every run is one amplitude
    (10, [1, 2, 3, 4, 9]),  # bit 0 outside W
    (10, [0, 5]),  # tiny, non-contiguous
    (10, [4]),  # one bit: narrower than a vector on AVX-512
    (10, []),  # no working set: diagonals only
]


@pytest.mark.parametrize("L,wmap", WMAPS)
@pytest.mark.parametrize("rank", [0, 5])
def test_sweep_matches_reference(L, wmap, rank):
    rng = np.random.default_rng(1000 * L + 17 * len(wmap) + rank)
    rank_base = rank << L
    nbits = L + 3
    ops = rand_ops(rng, wmap, nbits, 40)
    psi = rand_state(L, rng)
    want = ref_sweep(psi, L, rank_base, ops)
    for nthreads, aligned in ((1, False), (2, True), (3, False)):
        # states off a 64-byte boundary are copied per unit, aligned ones are not
        got = _kern.aligned_zeros(psi.size) if aligned else _kern.aligned_zeros(psi.size + 1)[1:]
        got[:] = psi
        _kern.sweep(got, L, rank_base, wmap, _kern.OpList(ops), nthreads)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("k,low", [(k, low) for k in range(1, 7) for low in range(3) if low <= k])
def test_dense_every_size_and_low_targets(k, low):
    """Dense k-qubit ops whose targets include `low` of the in-vector bits 0, 1."""
    rng = np.random.default_rng(10 * k + low)
    L = 11
    wmap = list(range(L))
    low_bits = [0, 1][:low]
    high = [int(b) for b in rng.choice(range(2, L), size=k - len(low_bits), replace=False)]
    tg = low_bits + high
    rng.shuffle(tg)
    ops = [(DENSE, tuple(tg), 0, 0, rand_unitary(1 << k, rng))]
    # same op with a control on a low bit, a high bit and a rank bit
    spare = [b for b in range(L) if b not in tg]
    ops.append(
        (
            DENSE,
            tuple(tg),
            (1 << spare[0]) | (1 << spare[-1]),
            1 << spare[0],
            rand_unitary(1 << k, rng),
        )
    )
    ops.append((DENSE, tuple(tg), 1 << (L + 1), 1 << (L + 1), rand_unitary(1 << k, rng)))
    psi = rand_state(L, rng)
    for rank_base in (0, 2 << L):
        want = ref_sweep(psi, L, rank_base, ops)
        got = psi.copy()
        _kern.sweep(got, L, rank_base, wmap, _kern.OpList(ops), 2)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_structured_matrices():
    """Real, rx-like (real diagonal, imaginary off-diagonal), permutation and
    phase-permutation matrices take their own kernels."""
    rng = np.random.default_rng(11)
    L = 11
    wmap = list(range(L))

    def real_orth(dim):
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        return q.astype(complex)

    def phase_perm(dim):
        return np.eye(dim)[rng.permutation(dim)] * rand_phases(dim, rng)[:, None]

    ops = []
    for tg in [(4, 7), (9, 3), (2, 5, 8), (0, 6), (1, 0), (0, 4, 9)]:
        dim = 1 << len(tg)
        for m in (real_orth(dim), phase_perm(dim), np.eye(dim)[rng.permutation(dim)]):
            for cm, cv in ((0, 0), (1 << 10, 1 << 10), ((1 << 1) | (1 << 6), 1 << 6)):
                if cm & sum(1 << t for t in tg):
                    continue
                ops.append((DENSE, tg, cm, cv, m))
    ops.append((DENSE, (3,), 0, 0, np.eye(2)))  # identity: nothing to do
    for t, theta in ((5, 0.7), (0, -1.3), (9, 2.9)):  # rx, X.rx: real diagonal, i off it
        c, s = np.cos(theta / 2), np.sin(theta / 2)
        ops.append((DENSE, (t,), 0, 0, np.array([[c, -1j * s], [-1j * s, c]])))
        ops.append((DENSE, (t,), 1 << 10, 1 << 10, np.array([[-1j * s, c], [c, -1j * s]])))
        ops.append((DENSE, (t,), 0, 0, np.array([[c, 0.3j], [-2j * s, -c]])))
    psi = rand_state(L, rng)
    want = ref_sweep(psi, L, 0, ops)
    got = psi.copy()
    _kern.sweep(got, L, 0, wmap, _kern.OpList(ops), 2)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_controlled_phases_and_rank_bit_diagonals():
    """cp, cz, mcp, rzz and diagonals on rank bits / bits outside W."""
    rng = np.random.default_rng(7)
    L, wmap = 11, [0, 1, 2, 3, 4, 5, 6]
    th = 0.37
    cp = np.array([1, 1, 1, np.exp(1j * th)])
    rzz = np.exp(-0.5j * th * np.array([1, -1, -1, 1]))
    ops = [
        (DIAG, (0, 5), 0, 0, cp),
        (DIAG, (3, 9), 0, 0, cp),  # one target outside W
        (DIAG, (12, 13), 0, 0, cp),  # both on rank bits
        (DIAG, (1, 2), 0, 0, np.array([1, 1, 1, -1])),  # cz
        (
            DIAG,
            (4,),
            (1 << 0) | (1 << 8) | (1 << 11),
            (1 << 0) | (1 << 8) | (1 << 11),
            np.array([1, np.exp(1j * th)]),
        ),  # mcp over low, outside and rank bits
        (DIAG, (6, 10), 0, 0, rzz),
        (DIAG, (), 1 << 12, 1 << 12, np.array([np.exp(0.5j)])),  # phase on a rank bit
        (DIAG, (0, 1, 2, 3, 4, 5), 0, 0, rand_phases(64, rng, ones=0.7)),
    ]
    psi = rand_state(L, rng)
    for rank in range(4):
        want = ref_sweep(psi, L, rank << L, ops)
        got = psi.copy()
        _kern.sweep(got, L, rank << L, wmap, _kern.OpList(ops), 2)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_split_inside_one_unit():
    """Fewer units than threads: the threads share each op inside a unit."""
    rng = np.random.default_rng(3)
    L = 10
    for wmap in (list(range(10)), list(range(9)), [0, 1, 2, 3, 4, 5, 6, 7, 9]):
        ops = rand_ops(rng, wmap, L + 2, 30)
        psi = rand_state(L, rng)
        want = ref_sweep(psi, L, 1 << L, ops)
        for nthreads in (4, 5):
            got = psi.copy()
            _kern.sweep(got, L, 1 << L, wmap, _kern.OpList(ops), nthreads)
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("wmap", [list(range(13)), list(range(14)),
                                  [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]])
def test_runs_of_ops_in_l1_tiles(wmap, dtype):
    """Working sets wider than an L1 tile (2^10 amplitudes in complex128, 2^11 in
    complex64): runs of ops whose targets fit a tile (the low bits, or the bits below
    some bit plus up to three high ones) go tile by tile, with controls on the pinned
    bits, outside W and on rank bits selecting tiles."""
    rng = np.random.default_rng(len(wmap) + (dtype == np.complex64))
    L = 14
    low = [b for b in wmap if wmap.index(b) < 10]
    mixed = [b for b in wmap if wmap.index(b) < 7] + wmap[-3:]
    ops = []
    for _ in range(8):  # runs of tile-sized ops between ops on any bit of W
        ops += rand_ops(rng, low, L + 2, int(rng.integers(1, 8)))
        ops += rand_ops(rng, wmap, L + 2, int(rng.integers(1, 3)))
        ops += rand_ops(rng, mixed, L + 2, int(rng.integers(2, 8)))
    psi = rand_state(L, rng)
    want = ref_sweep(psi, L, 2 << L, ops)
    for nthreads in (1, 2):
        got = _kern.aligned_zeros(psi.size, dtype)
        got[:] = psi
        _kern.sweep(got, L, 2 << L, wmap, _kern.OpList(ops), nthreads)
        tol = ATOL if dtype == np.complex128 else 5e-5
        np.testing.assert_allclose(got, want, atol=tol, rtol=0)


def test_oplist_reused_across_wmaps():
    rng = np.random.default_rng(4)
    L = 10
    ops = [(DENSE, (3,), 0, 0, H), (DIAG, (0, 9), 0, 0, rand_phases(4, rng))]
    opl = _kern.OpList(ops)
    psi = rand_state(L, rng)
    want = ref_sweep(psi, L, 0, ops)
    for wmap in ([3], [0, 3, 4], [3], list(range(10))):
        got = psi.copy()
        _kern.sweep(got, L, 0, wmap, opl, 2)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_apply_block_is_one_unit_of_sweep():
    rng = np.random.default_rng(5)
    L, rank = 10, 3
    rank_base = rank << L
    wmap = [0, 2, 3, 6, 7]
    ops = rand_ops(rng, wmap, L + 2, 30)
    opl = _kern.OpList(ops)
    psi = rand_state(L, rng)
    want = ref_sweep(psi, L, rank_base, ops)
    outside = [b for b in range(L) if b not in wmap]
    got = psi.copy()
    offs = np.array([sum(((j >> i) & 1) << b for i, b in enumerate(wmap)) for j in range(32)])
    for u in range(1 << len(outside)):
        bl = sum(((u >> i) & 1) << b for i, b in enumerate(outside))
        buf = got[bl + offs].copy()
        _kern.apply_block(buf, wmap, rank_base | bl, opl)
        got[bl + offs] = buf
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_aligned_zeros_and_build_info():
    a = _kern.aligned_zeros(1000)
    assert a.dtype == np.complex128 and a.shape == (1000,) and a.ctypes.data % 64 == 0
    assert not a.any()
    assert "vectors" in _kern.build_info()


# ---- adjoint sweep ------------------------------------------------------------


def dagger(op):
    kind, tg, cm, cv, m = op
    if kind == SWAP:
        return op
    m = np.asarray(m, dtype=complex)
    return (kind, tg, cm, cv, m.conj() if kind == DIAG else m.conj().T)


def ref_transition(lam, psi, L, rank_base, op, a):
    """<lam| A |psi> where A acts on op's targets and controls (zero elsewhere)."""
    kind, tg, cm, cv, _ = op
    glob = np.arange(1 << L, dtype=np.int64) | rank_base
    on = (glob & cm) == cv
    t = ref_apply(psi, L, rank_base, (kind, tg, cm, cv, a))
    return np.vdot(lam[on], t[on])


@pytest.mark.parametrize("L,wmap", [w for w in WMAPS if w[1]])
@pytest.mark.parametrize("rank", [0, 3])
def test_adjoint_sweep_matches_op_by_op_reference(L, wmap, rank):
    """One cache-blocked reverse sweep (csrc/qgt_kern_adjsweep.c) against the reverse
    pass op by op: derivatives <lam|A|psi> before each op's dagger, on both states."""
    rng = np.random.default_rng(77 * L + len(wmap) + rank)
    rank_base = rank << L
    ops = rand_ops(rng, wmap, L + 2, 30)
    psi, lam = rand_state(L, rng), rand_state(L, rng)
    want, inverse, ders, at = [], [], [], []
    p, q = psi.copy(), lam.copy()
    for k, op in enumerate(reversed(ops)):
        kind, tg, cm, cv, m = op
        for _ in range(int(rng.integers(0, 3)) if kind != SWAP else 0):
            dim = np.asarray(m).shape[0]
            a = rng.normal(size=np.asarray(m).shape) + 1j * rng.normal(size=np.asarray(m).shape)
            want.append(ref_transition(q, p, L, rank_base, op, a))
            ders.append((kind, tg, cm, cv, a + (1.0 if kind == DIAG else np.eye(dim))))
            at.append(k)
        inverse.append(dagger(op))
        p = ref_apply(p, L, rank_base, dagger(op))
        q = ref_apply(q, L, rank_base, dagger(op))
    assert ders, "the draw gave no derivative"
    for nthreads, aligned in ((1, True), (2, False), (2, True)):
        gp, gq = (_kern.aligned_zeros(psi.size + (0 if aligned else 1))[(0 if aligned else 1):]
                  for _ in range(2))
        gp[:], gq[:] = psi, lam
        got = _kern.adjoint_sweep(gp, gq, L, rank_base, wmap, _kern.OpList(inverse),
                                  _kern.OpList(ders), at, nthreads)
        np.testing.assert_allclose(got, want, atol=1e-11, rtol=0)
        np.testing.assert_allclose(gp, p, atol=ATOL, rtol=0)
        np.testing.assert_allclose(gq, q, atol=ATOL, rtol=0)


def test_adjoint_sweep_refuses_a_bad_order():
    psi, lam = _kern.aligned_zeros(16), _kern.aligned_zeros(16)
    ops = _kern.OpList([(DENSE, (0,), 0, 0, H)])
    with pytest.raises(InternalError):
        _kern.adjoint_sweep(psi, lam, 4, 0, [0, 1], ops, ops, [2], 1)  # after the last op
    with pytest.raises(InternalError):
        _kern.adjoint_sweep(psi, psi, 4, 0, [0, 1], ops, ops, [0], 1)  # the same buffer


# ---- reductions ------------------------------------------------------------


@pytest.mark.parametrize("L", [1, 3, 10, 12])
def test_marginal(L):
    rng = np.random.default_rng(L)
    psi = rand_state(L, rng)
    rank_base = 6 << L
    p = np.abs(psi) ** 2
    glob = np.arange(1 << L) | rank_base
    choices = [[0], [L - 1, 0], list(range(min(L, 4))), [L, L + 1, L + 2]]
    if L >= 10:
        choices += [[9, 2, 5, 0], [3, 1, L + 1, 7, 0, 2], list(range(L)) + [L + 1]]
    for bits in (list(dict.fromkeys(c)) for c in choices):
        idx = np.zeros(1 << L, dtype=np.int64)
        for j, b in enumerate(bits):
            idx |= ((glob >> b) & 1) << j
        want = np.bincount(idx, weights=p, minlength=1 << len(bits))
        for nthreads in (1, 3):
            got = _kern.marginal(psi, L, rank_base, bits, nthreads)
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("L", [1, 2, 5, 11])
def test_pauli_expect(L):
    rng = np.random.default_rng(100 + L)
    psi = rand_state(L, rng)
    rank_base = 5 << L
    loc = np.arange(1 << L)
    glob = loc | rank_base
    for _ in range(25):
        x = int(rng.integers(0, 1 << L))
        z = int(rng.integers(0, 1 << (L + 3)))
        sign = (-1.0) ** np.array([bin(int(v)).count("1") for v in ((glob ^ x) & z)])
        want = np.sum(np.conj(psi) * sign * psi[loc ^ x])
        for nthreads in (1, 2):
            got = _kern.pauli_expect(psi, L, rank_base, x, z, nthreads)
            assert abs(got - want) < ATOL


@pytest.mark.parametrize("L", [1, 3, 6, 12])
@pytest.mark.parametrize("nterms", [1, 3, 7, 40, 300])
def test_pauli_group_matches_one_pass_per_term(L, nterms):
    """Terms sharing an X/Y pattern, in one pass (Walsh-Hadamard chunks above 8 terms),
    give what one pass per term gives, rank bits in the Z masks included."""
    rng = np.random.default_rng(300 + L + nterms)
    psi = rand_state(L, rng)
    rank_base = 3 << L
    for _ in range(4):
        x = int(rng.integers(0, 1 << L))
        zs = rng.integers(0, 1 << (L + 2), size=nterms).astype(np.uint64)
        for nthreads in (1, 2):
            got = _kern.pauli_group(psi, L, rank_base, x, zs, nthreads)
            want = [_kern.pauli_expect(psi, L, rank_base, x, int(z), 1) for z in zs]
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_block_norms():
    rng = np.random.default_rng(8)
    psi = rand_state(11, rng)
    p = np.abs(psi) ** 2
    for block in (1, 2, 4, 64, 2048):
        got = _kern.block_norms(psi, block, 2)
        np.testing.assert_allclose(got, p.reshape(-1, block).sum(axis=1), atol=ATOL, rtol=0)
    got = _kern.block_norms(psi[:1536].copy(), 3, 2)
    np.testing.assert_allclose(got, p[:1536].reshape(-1, 3).sum(axis=1), atol=ATOL, rtol=0)


def test_sample_sorted():
    rng = np.random.default_rng(9)
    psi = rand_state(10, rng)
    psi[rng.random(1024) < 0.5] = 0.0  # zero weights must never be sampled
    psi[-5:] = 0.0
    cum = np.cumsum(np.abs(psi) ** 2)
    t = np.sort(rng.random(2000) * cum[-1])
    got = _kern.sample_sorted(psi, t)
    want = np.searchsorted(cum, t, side="right")
    # the kernel sums in blocks: only ties at rounding level may differ
    assert np.mean(got == want) > 0.999
    assert np.all(np.abs(psi[got]) > 0)
    assert np.all(np.diff(got) >= 0)
    last = np.flatnonzero(psi)[-1]
    assert list(_kern.sample_sorted(psi, [cum[-1], cum[-1] + 1e-9])) == [last, last]
    assert _kern.sample_sorted(psi, np.zeros(0)).shape == (0,)


# ---- errors ----------------------------------------------------------------


_PSI = np.zeros(1 << 6, dtype=complex)
_PSI[0] = 1
_OK = [(DENSE, (0,), 0, 0, H)]
ERROR_CASES = {
    "target outside W": lambda: _kern.sweep(_PSI, 6, 0, [1], _kern.OpList(_OK), 1),
    "wmap unsorted": lambda: _kern.sweep(_PSI, 6, 0, [2, 1], _kern.OpList(_OK), 1),
    "wmap bit >= L": lambda: _kern.sweep(_PSI, 6, 0, [0, 6], _kern.OpList(_OK), 1),
    "control on target": lambda: _kern.sweep(
        _PSI, 6, 0, [0], _kern.OpList([(DENSE, (0,), 1, 1, H)]), 1
    ),
    "ctrl_val outside mask": lambda: _kern.sweep(
        _PSI, 6, 0, [0], _kern.OpList([(DENSE, (0,), 2, 6, H)]), 1
    ),
    "repeated target": lambda: _kern.sweep(
        _PSI, 6, 0, [0, 1], _kern.OpList([(DENSE, (0, 0), 0, 0, CX)]), 1
    ),
    "repeated low target": lambda: _kern.sweep(
        _PSI, 6, 0, [0, 1, 2, 3, 4, 5], _kern.OpList([(DENSE, (0, 3, 0), 0, 0, np.eye(8)[::-1])]), 1
    ),
    "control on a low target": lambda: _kern.sweep(
        _PSI, 6, 0, [0, 1, 2, 3, 4, 5], _kern.OpList([(DENSE, (0, 3, 4), 1, 1, np.eye(8)[::-1])]), 1
    ),
    "swap outside W": lambda: _kern.sweep(
        _PSI, 6, 0, [0, 1], _kern.OpList([(SWAP, (0, 3), 0, 0, [])]), 1
    ),
    "rank_base overlaps L": lambda: _kern.sweep(_PSI, 6, 1, [0], _kern.OpList(_OK), 1),
    "length != 2^L": lambda: _kern.sweep(_PSI, 5, 0, [0], _kern.OpList(_OK), 1),
    "dtype": lambda: _kern.sweep(_PSI.real.copy(), 6, 0, [0], _kern.OpList(_OK), 1),
    "not contiguous": lambda: _kern.sweep(_PSI[::2], 5, 0, [0], _kern.OpList(_OK), 1),
    "nthreads": lambda: _kern.sweep(_PSI, 6, 0, [0], _kern.OpList(_OK), 0),
    "matrix size": lambda: _kern.OpList([(DENSE, (0,), 0, 0, np.eye(4))]),
    "kind": lambda: _kern.OpList([(7, (0,), 0, 0, H)]),
    "too many targets": lambda: _kern.OpList([(DIAG, tuple(range(7)), 0, 0, np.ones(128))]),
    "X on a rank bit": lambda: _kern.pauli_expect(_PSI, 6, 0, 1 << 6, 0, 1),
    "unsorted targets": lambda: _kern.sample_sorted(_PSI, [0.5, 0.1]),
    "zero norm": lambda: _kern.sample_sorted(np.zeros(8, dtype=complex), [0.1]),
    "base inside W": lambda: _kern.apply_block(_PSI[:4].copy(), [0, 1], 1, _kern.OpList(_OK)),
    "repeated marginal bit": lambda: _kern.marginal(_PSI, 6, 0, [1, 1], 1),
    "block does not divide": lambda: _kern.block_norms(_PSI, 5, 1),
}


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_bad_arguments_raise_internal_error(name):
    with pytest.raises(InternalError, match="bug in qgt"):
        ERROR_CASES[name]()


def test_daggered_oplist_undoes_the_sweep():
    """OpList.daggered(): the ops backwards, each inverted, so a sweep with it after the
    sweep with the ops gives back the state (dense with controls, diagonal, bit swap)."""
    rng = np.random.default_rng(4)
    L = 6
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)))
    u1, _ = np.linalg.qr(rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)))
    ops = _kern.OpList([(DENSE, (0, 3), 0, 0, q), (DIAG, (2,), 0, 0,
                                                   np.exp(1j * rng.normal(size=2))),
                        (SWAP, (1, 4), 0, 0, np.zeros(0)), (DENSE, (5,), 0b10, 0b10, u1)])
    psi = rng.normal(size=64) + 1j * rng.normal(size=64)
    state = psi.copy()
    _kern.sweep(state, L, 0, list(range(L)), ops, 1)
    assert np.max(np.abs(state - psi)) > 0.1  # the ops did something
    back = ops.daggered()
    assert len(back) == len(ops)
    _kern.sweep(state, L, 0, list(range(L)), back, 1)
    np.testing.assert_allclose(state, psi, atol=1e-12)
