"""What a gate's matrix is, decided once per distinct matrix.

The fuser, the support bound and the block-move check ask of every op whether its
matrix only moves amplitudes, maps basis states to basis states, or has a half-cost
kernel.  Each answer is a few numpy reductions (about 10 us); a circuit repeats a few
matrices (h, cx, the same rz angle) many times, so the answers are kept per matrix
(its shape, dtype and bytes), which is what a 26-gate GHZ plan spends most of its
planning time on otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class MatrixClass:
    permutation: bool  # 0s and 1s, one 1 per column: X, CX, SWAP (no arithmetic)
    monomial: bool  # one non-zero per row and column: maps basis states to basis states
    cheap_1q: bool  # 2x2, real (h, ry) or rx's shape: the half-cost kernel


def classify(m) -> MatrixClass:
    m = np.asarray(m)
    return _classify(m.shape, m.dtype.str, m.tobytes())


@lru_cache(maxsize=4096)
def _classify(shape: tuple, dtype: str, data: bytes) -> MatrixClass:
    m = np.frombuffer(data, dtype=dtype).reshape(shape)
    square = m.ndim == 2 and m.shape[0] == m.shape[1]
    nz = np.abs(m) > 1e-12
    return MatrixClass(
        permutation=m.ndim == 2 and bool(np.all((m == 0) | (m == 1)))
        and bool(np.all(m.sum(axis=0) == 1)),
        monomial=square and bool((nz.sum(axis=0) == 1).all() and (nz.sum(axis=1) == 1).all()),
        cheap_1q=m.shape == (2, 2) and (bool(np.all(m.imag == 0)) or bool(
            m[0, 0].imag == 0 and m[1, 1].imag == 0 and m[0, 1].real == 0
            and m[1, 0].real == 0)))
