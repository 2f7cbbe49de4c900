"""Amplitude precision: the ``precision`` configuration key, its numpy dtype and size.

``double`` (the default) keeps the state in complex128, ``single`` in complex64: half
the memory, exchanges and disk traffic, and kernels with twice the lanes per vector
(csrc/f32/).  Gate matrices stay complex128 until a kernel program rounds them once,
and every reduction (probabilities, expectation values, norms) adds in double.
A plan carries its precision, so every rank, engine and writer agrees on it.
"""

from __future__ import annotations

import numpy as np

PRECISIONS = ("double", "single")
_DTYPES = {"double": np.dtype(np.complex128), "single": np.dtype(np.complex64)}


def dtype(precision: str) -> np.dtype:
    return _DTYPES[precision]


def amp_bytes(precision: str = "double") -> int:
    """Bytes per amplitude: 16 in double, 8 in single."""
    return _DTYPES[precision].itemsize


def of_plan(plan) -> str:
    return getattr(plan, "precision", "double")


def precision_of(array: np.ndarray) -> str:
    for name, dt in _DTYPES.items():
        if array.dtype == dt:
            return name
    raise ValueError(f"not a state dtype: {array.dtype}")
