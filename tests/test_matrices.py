"""qgt.plan.matrices: the class of a matrix (permutation, monomial, half-cost 1q),
decided once per distinct matrix, against entry-by-entry references, for the gates
qgt meets and for shapes and dtypes it must not misread."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import unitary_group

from qgt.plan.matrices import _classify, classify


def _ref_permutation(m) -> bool:
    rows, cols = m.shape if m.ndim == 2 else (0, -1)
    if rows != cols:
        return False
    ones = [(i, j) for i in range(rows) for j in range(cols) if m[i, j] != 0]
    return all(m[i, j] == 1 for i, j in ones) and sorted(i for i, _ in ones) == list(
        range(rows)) and sorted(j for _, j in ones) == list(range(cols))


def _ref_monomial(m) -> bool:
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        return False
    nz = [(i, j) for i in range(m.shape[0]) for j in range(m.shape[1]) if abs(m[i, j]) > 1e-12]
    return sorted(i for i, _ in nz) == list(range(m.shape[0])) and sorted(
        j for _, j in nz) == list(range(m.shape[1]))


def _ref_cheap(m) -> bool:
    if m.shape != (2, 2):
        return False
    real = all(complex(x).imag == 0 for x in m.flat)
    rx = (complex(m[0, 0]).imag == 0 and complex(m[1, 1]).imag == 0
          and complex(m[0, 1]).real == 0 and complex(m[1, 0]).real == 0)
    return real or rx


def _rx(a):
    c, s = np.cos(a / 2), np.sin(a / 2)
    return np.array([[c, -1j * s], [-1j * s, c]])


CX = np.eye(4)[:, [0, 3, 2, 1]]
CASES = {
    "x": np.array([[0, 1], [1, 0]], dtype=complex), "h": np.array([[1, 1], [1, -1]]) / 2 ** .5,
    "rx": _rx(0.3), "rz": np.diag([np.exp(-0.2j), np.exp(0.2j)]), "cx": CX.astype(complex),
    "cx real": CX, "cx float32": CX.astype(np.float32), "swap": np.eye(4)[:, [0, 2, 1, 3]],
    "phased x": np.array([[0, 1j], [1, 0]]), "u": unitary_group.rvs(2, random_state=1),
    "u4": unitary_group.rvs(4, random_state=2), "identity 8": np.eye(8, dtype=complex),
    "0/1 not a permutation": np.array([[0, 0], [1, 1]], dtype=complex),
    "two 1s in a row": np.array([[1, 1], [0, 0]]), "zero": np.zeros((2, 2)),
    "not square": np.eye(2, 3), "a vector": np.array([1.0, 0.0]), "empty": np.zeros((0, 0)),
    "tiny entry": np.array([[1, 1e-14], [0, 1]], dtype=complex),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_class_matches_its_reference(name):
    m = CASES[name]
    c = classify(m)
    assert c.permutation == _ref_permutation(m), name
    assert c.monomial == _ref_monomial(m), name
    assert c.cheap_1q == _ref_cheap(m), name


def test_the_same_matrix_is_decided_once_and_large_ones_are_not_kept():
    _classify.cache_clear()
    x = np.array([[0, 1], [1, 0]], dtype=complex)
    for _ in range(5):
        assert classify(x.copy()).permutation
    assert _classify.cache_info().misses == 1 and _classify.cache_info().hits == 4
    big = unitary_group.rvs(64, random_state=3)  # a fused 6-qubit block: 64 KiB
    assert not classify(big).permutation and not classify(big).monomial
    assert _classify.cache_info().currsize == 1
