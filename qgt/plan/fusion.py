"""Placing gate matrices on a fused op's bits: the arithmetic fusion and rebinding share.

A fused op records, per source gate, ``(plan item, own)``: ``own`` is the gate's physical
targets, or a ``Controlled`` placement when the gate's controls became bits of the block
(a CX fused into a dense block is the 4x4 permutation it is).  ``embed_src`` rebuilds a
source's matrix on the op's bits; ``compose`` multiplies them in order.  The fuser that
decides what to merge is ``qgt.plan.fuser``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qgt.plan.steps import DIAG


class Controlled(NamedTuple):
    """A gate's placement inside a block when its controls are block bits too."""

    targets: tuple[int, ...]
    controls: tuple[int, ...]
    values: tuple[int, ...]


def _controlled(m: np.ndarray, own: Controlled, generator: bool) -> tuple[np.ndarray, tuple]:
    """The gate on targets + controls: ``m`` where the controls hold their values, the
    identity (or, for a generator dU U^dagger, zero) elsewhere."""
    k, c = len(own.targets), len(own.controls)
    dim = 1 << (k + c)
    full = np.zeros((dim, dim), dtype=complex) if generator else np.eye(dim, dtype=complex)
    on = sum(v << (k + i) for i, v in enumerate(own.values))
    idx = [on | j for j in range(1 << k)]
    full[np.ix_(idx, idx)] = np.diag(m) if np.ndim(m) == 1 else m
    return full, own.targets + own.controls


def embed(m: np.ndarray, own, targets: tuple[int, ...], generator: bool = False) -> np.ndarray:
    """The matrix ``m`` (or a diagonal, as a vector) placed by ``own`` (targets, or a
    ``Controlled``), as a matrix on the ordered ``targets`` (a superset of its bits)."""
    if isinstance(own, Controlled):
        m, own = _controlled(m, own, generator)
    if np.ndim(m) == 1:
        m = np.diag(m)
    if tuple(own) == tuple(targets):  # a rotation chain on one qubit: nothing to place
        return np.asarray(m, dtype=complex)
    k = len(targets)
    pos = [targets.index(t) for t in own]
    # move the op's own bits to the front, tensor with the identity, move them back
    rest = [j for j in range(k) if j not in pos]
    big = np.kron(np.eye(1 << len(rest), dtype=complex), m)  # own bits low, rest high
    perm = _bit_permutation(pos + rest, k)
    return big[np.ix_(perm, perm)]


def _bit_permutation(order: list[int], k: int) -> np.ndarray:
    """Index map: position p of the block (bit order ``targets``) -> index of the
    kron-ordered matrix whose bit i is target ``order[i]``."""
    idx = np.arange(1 << k)
    out = np.zeros(1 << k, dtype=np.int64)
    for i, t in enumerate(order):
        out |= ((idx >> t) & 1) << i
    return out


def embed_diag(d: np.ndarray, own, targets: tuple[int, ...],
               generator: bool = False) -> np.ndarray:
    """A diagonal placed by ``own`` as the diagonal (a vector) on ``targets``."""
    if np.ndim(d) == 2:
        d = np.diag(d)
    if isinstance(own, Controlled):
        vals = own.values
        own_bits = own.targets + own.controls
        k = len(own.targets)
        full = np.full(1 << len(own_bits), 0.0 if generator else 1.0, dtype=complex)
        on = sum(v << (k + i) for i, v in enumerate(vals))
        full[[on | j for j in range(1 << k)]] = d
        d, own = full, own_bits
    idx = np.arange(1 << len(targets))
    sub = np.zeros_like(idx)
    for i, t in enumerate(own):
        sub |= ((idx >> targets.index(t)) & 1) << i
    return np.asarray(d, dtype=complex)[sub]


def compose(kind: str, parts, targets: tuple[int, ...]) -> np.ndarray:
    """The op of ``kind`` on ``targets`` that applies ``parts`` ((matrix, own) pairs) in
    order: a product of diagonals for DIAG, of embedded matrices otherwise."""
    out = None
    for m, own in parts:
        if kind == DIAG:
            e = embed_diag(m, own, targets)
            out = e if out is None else e * out
        else:
            e = embed(m, own, targets)
            out = e if out is None else e @ out
    return out
