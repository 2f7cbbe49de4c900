"""The floor of a plan on this machine: what its passes and its arithmetic must cost.

Called by ``qgt bench --peers``.  Two lower bounds, each measured here with qgt's own
kernels on a state of the benchmark's size:

- memory: the plan's passes times one in-place read+write pass over the state's bytes
  (``qgt.bench.calibrate``'s memory pass, on all threads); a sweep that skips the
  qubits still in |0> counts as the part of a pass it touches, and one that only moves
  whole blocks (``qgt.runtime.blockperm``) as the blocks that must move;
- arithmetic: the plan's complex multiply-adds (2^k per amplitude for a k-qubit dense
  block, one for a phase table; permutations none) at the kernels' peak rate, the best
  of dense 1- to 4-qubit op lists on a cache-resident working set.

The floor is the larger of the two; a run cannot beat it without a better plan.
"""

from __future__ import annotations

import time

import numpy as np

from qgt.plan.fuser import is_permutation
from qgt.plan.steps import DENSE, DIAG, Sweep
from qgt.runtime.blockperm import block_permutation, moved_fraction


def _best(fn, reps: int = 3) -> float:
    fn()
    out = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def machine_rates(n: int, threads: int, wbits: int = 14, dtype=np.complex128) -> dict:
    """Seconds per memory pass of 2^n amplitudes, and peak complex multiply-adds per
    second of the dense kernels (measured now, with ``threads`` threads, on a state of
    ``dtype``: complex64 for single precision)."""
    from scipy.stats import unitary_group

    from qgt import _kern
    from qgt.bench.calibrate import _memory_pass

    amp = np.dtype(dtype).itemsize
    t_pass = 2 * amp * (1 << n) / _memory_pass(amp << n, threads)
    psi = np.zeros(1 << n, dtype=dtype)
    psi[0] = 1
    wmap = list(range(min(wbits, n)))
    peak = 0.0
    for k in (1, 2, 3, 4):
        ops = _kern.OpList([(0, tuple(range(2 + j % 3, 2 + j % 3 + k)), 0, 0,
                             unitary_group.rvs(1 << k, random_state=j)) for j in range(24)])
        t = _best(lambda: _kern.sweep(psi, n, 0, wmap, ops, threads))  # noqa: B023
        peak = max(peak, 24 * (1 << n) * (1 << k) / t)
    return {"pass_s": t_pass, "peak_cmadd_per_s": peak}


def plan_work(plan) -> dict:
    """Passes and complex multiply-adds (all ranks together) of a plan."""
    madds = 0.0
    passes = 0.0
    for s in plan.steps:
        if not isinstance(s, Sweep):
            passes += 1  # an exchange reads and writes the slices too
            continue
        # a sweep touches only the part where the bits still in |0> read 0; one that
        # only moves whole blocks, the blocks that must move
        part = _moved_part(plan, s)
        if part is None:
            part = 2.0 ** -bin(s.zero_mask).count("1")
        amps = part * (1 << plan.n_qubits)
        passes += part
        for op in s.ops:
            if op.kind == DENSE and not is_permutation(op.matrix):
                madds += amps * (1 << len(op.targets))
            elif op.kind == DIAG:
                madds += amps
    return {"passes": passes, "cmadds": madds}


def _moved_part(plan, s: Sweep) -> float | None:
    """The part of the state a block-move sweep must read and write (all ranks), or
    None for a sweep that gathers (qgt.runtime.blockperm)."""
    L = plan.local_bits
    amp = 8 if plan.precision == "single" else 16
    parts = []
    for rank in range(1 << plan.rank_bits):
        moves = block_permutation(list(s.ops), L, rank << L, s.zero_mask | s.zero_wbits, amp)
        if moves is None:
            return None
        parts.append(moved_fraction(*moves))
    return sum(parts) / len(parts)


def floor_seconds(work: dict, rates: dict) -> dict:
    memory = work["passes"] * rates["pass_s"]
    arithmetic = work["cmadds"] / rates["peak_cmadd_per_s"]
    return {"memory_s": memory, "arithmetic_s": arithmetic, "floor_s": max(memory, arithmetic)}
