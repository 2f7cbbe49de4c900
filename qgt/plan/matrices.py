"""What a gate's matrix is, decided once per distinct small matrix.

The fuser, the support bound and the block-move check ask of every op whether its
matrix only moves amplitudes, maps basis states to basis states, or has a half-cost
kernel.  Each answer is a few numpy reductions (about 10 us); a circuit repeats a few
small matrices (h, cx, the same rz angle) many times, so the answers for matrices of
up to ``CACHED_BYTES`` are kept per matrix (its shape, dtype and bytes).  Without that,
those checks were most of a 26-gate GHZ plan's time.  Larger matrices (fused blocks,
distinct in QV and random circuits) are decided each time and not kept, so the cache
stays under a MiB whatever the circuit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CACHED_BYTES = 1024  # an 8x8 complex128 block, or a 16x16 float32 one


@dataclass(frozen=True)
class MatrixClass:
    permutation: bool  # square, 0s and 1s, one 1 per row and column: X, CX, SWAP
    monomial: bool  # one non-zero per row and column: maps basis states to basis states
    cheap_1q: bool  # 2x2, real (h, ry) or rx's shape: the half-cost kernel


def classify(m) -> MatrixClass:
    m = np.asarray(m)
    if m.nbytes > CACHED_BYTES:
        return _decide(m)
    return _classify(m.shape, m.dtype.str, m.tobytes())


@lru_cache(maxsize=1024)
def _classify(shape: tuple, dtype: str, data: bytes) -> MatrixClass:
    return _decide(np.frombuffer(data, dtype=dtype).reshape(shape))


def _decide(m: np.ndarray) -> MatrixClass:
    square = m.ndim == 2 and m.shape[0] == m.shape[1]
    nz = np.abs(m) > 1e-12
    one_each = square and bool((nz.sum(axis=0) == 1).all() and (nz.sum(axis=1) == 1).all())
    return MatrixClass(
        # (entries of 0 and 1 are non-zero exactly where they pass the tolerance)
        permutation=one_each and bool(np.all((m == 0) | (m == 1))),
        monomial=one_each,
        cheap_1q=m.shape == (2, 2) and (bool(np.all(m.imag == 0)) or bool(
            m[0, 0].imag == 0 and m[1, 1].imag == 0 and m[0, 1].real == 0
            and m[1, 0].real == 0)))
