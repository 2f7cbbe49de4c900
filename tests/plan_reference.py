"""A deliberately simple executor of a Plan on the full state vector (all ranks at
once, indexed by physical bits), for testing the planner without MPI or C kernels.

It also checks the planner's invariants: every dense target is in the sweep's
working set, every working-set bit is local, global swaps pair a local bit with a
rank bit.
"""

from __future__ import annotations

import numpy as np

from qgt.plan.steps import DENSE, DIAG, SWAPBITS, ExpectStep, GlobalSwap, Sweep


def set_bits(bits) -> int:
    return sum(1 << b for b in bits)


def _axis(n: int, bit: int) -> int:
    return n - 1 - bit  # reshape((2,)*n) puts the most significant bit first


def apply_physop(psi: np.ndarray, n: int, op) -> np.ndarray:
    """Apply a PhysOp to the full vector (physical indexing)."""
    t = psi.reshape((2,) * n)
    idx = [slice(None)] * n
    for b in range(n):
        if op.ctrl_mask >> b & 1:
            idx[_axis(n, b)] = (op.ctrl_val >> b) & 1
    sub = t[tuple(idx)]
    # remaining axes of ``sub``: the non-control bits, in decreasing bit order
    rest = [b for b in reversed(range(n)) if not op.ctrl_mask >> b & 1]
    k = len(op.targets)
    if op.kind == SWAPBITS:
        a, b = (rest.index(x) for x in op.targets)
        sub[...] = np.swapaxes(sub, a, b).copy()
        return t.reshape(-1)
    axes = [rest.index(q) for q in reversed(op.targets)]  # target k-1 is the matrix MSB
    moved = np.moveaxis(sub, axes, list(range(k))).reshape(1 << k, -1)
    if op.kind == DIAG:
        new = op.matrix.reshape(-1, 1) * moved if k else op.matrix[0] * moved
    elif op.kind == DENSE:
        new = op.matrix @ moved
    else:
        raise ValueError(op.kind)
    back = np.moveaxis(new.reshape((2,) * k + sub.shape[k:] if k else sub.shape), list(range(k)),
                       axes)
    sub[...] = back
    return t.reshape(-1)


def run_plan(plan, check: bool = True, initial=None) -> tuple[np.ndarray, dict]:
    """Execute a plan without measurements from |0> (or ``initial``, in logical order);
    returns (the final state, expectation values)."""
    n, L = plan.n_qubits, plan.local_bits
    psi = np.zeros(1 << n, dtype=complex)
    psi[0] = 1
    if initial is not None:
        psi = np.array(initial, dtype=complex)
    expect = {}
    for s in plan.steps:
        if isinstance(s, Sweep):
            if check:
                assert all(b < n - plan.exchange_bits for b in s.wbits), (s.wbits, L)
                assert len(s.wbits) == len(set(s.wbits))
                # the bits the sweep may skip as |0> are |0>: their amplitudes are zero
                assert not s.zero_mask & set_bits(s.wbits)
                assert not np.any(psi[(np.arange(1 << n) & s.zero_mask) != 0]), s.zero_mask
                assert s.zero_wbits == s.zero_wbits & set_bits(s.wbits)
                assert not np.any(psi[(np.arange(1 << n) & s.zero_wbits) != 0]), s.zero_wbits
            if s.inner:
                psi = _run_inner(psi, n, s, check)
                continue
            for op in s.ops:
                if check and op.kind in (DENSE, SWAPBITS):
                    assert set(op.targets) <= set(s.wbits), (op, s.wbits)
                psi = apply_physop(psi, n, op)
        elif isinstance(s, GlobalSwap):
            for p, r in s.pairs:
                if check:
                    # an exchange trades part of a rank's own slice, never a bit of
                    # the node's shared window above it
                    assert plan.page_floor <= p < L and n - plan.exchange_bits <= r, s
                t = psi.reshape((2,) * n)
                psi = np.swapaxes(t, _axis(n, p), _axis(n, r)).reshape(-1).copy()
        elif isinstance(s, ExpectStep):
            i = np.arange(1 << n)
            j = i ^ s.xmask
            for index, zmask, ny in zip(s.indices, s.zmasks, s.nys):
                sign = (-1.0) ** np.array([bin(int(x)).count("1") for x in (j & zmask)])
                val = np.vdot(psi, sign * psi[j]) * (1j ** ny)
                expect[index] = val.real
        else:
            raise ValueError(f"plan reference does not run {type(s).__name__}")
    return psi, expect


def _run_inner(psi: np.ndarray, n: int, sweep, check: bool) -> np.ndarray:
    """An out-of-core sweep: permute to the group buffer's virtual bits, run the inner
    plan there, permute back."""
    group = len(sweep.wbits)
    # virtual axis order: axis a of the reshaped tensor is bit n-1-a
    phys_of_virtual = [0] * n
    for b, v in enumerate(sweep.vmap):
        phys_of_virtual[v] = b
    perm = [_axis(n, phys_of_virtual[n - 1 - a]) for a in range(n)]
    t = np.transpose(psi.reshape((2,) * n), perm).reshape(-1).copy()
    for inner in sweep.inner:
        if check:
            assert all(b < group for b in inner.wbits), (inner.wbits, group)
            # the group bits an inner sweep may skip as |0> are |0>, in every group
            assert not inner.zero_mask >> group, inner.zero_mask
            assert not np.any(t[(np.arange(1 << n) & inner.zero_mask) != 0]), inner.zero_mask
        for op in inner.ops:
            if check and op.kind in (DENSE, SWAPBITS):
                assert set(op.targets) <= set(inner.wbits), (op, inner.wbits)
            t = apply_physop(t, n, op)
    return np.transpose(t.reshape((2,) * n), np.argsort(perm)).reshape(-1).copy()


def logical_state(psi: np.ndarray, plan) -> np.ndarray:
    """A final state in logical order, whatever layout the plan ended in (a plan that does
    not restore the layout leaves logical qubit q on physical bit final_layout[q])."""
    n = plan.n_qubits
    phys = plan.final_layout or tuple(range(n))
    perm = [_axis(n, phys[n - 1 - a]) for a in range(n)]
    return np.transpose(psi.reshape((2,) * n), perm).reshape(-1)
