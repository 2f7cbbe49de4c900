"""Micro-benchmark of the sweep kernel (qgt._kern) on one rank's slice.

Run by hand, not by the test suite:
    .venv/bin/python tools/kernbench.py [--qubits 26] [--w 16] [--threads 2]

Times ``sweep`` over a 2^qubits state (2^26 = 1 GiB) with a working set of w
bits and prints ms per sweep and per op for: one memory pass (a phase on
every amplitude), 1 H, 20 H on distinct buffer bits, 20 cp, a few dense
2- and 4-qubit blocks, with W = {0..w-1} (in place) and with a scattered W
(gathered).  One memory pass is the floor a sweep can reach; the gap between
"20 H" and 20 x "1 H" is what cache blocking saves.
"""

import argparse
import time

import numpy as np

from qgt import _kern

H = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)


def unitary(dim, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)) + 1j * rng.normal(size=(dim, dim)))
    return q


def cases(w):
    """name -> list of ops, all targets on buffer bits 0..w-1 (mapped by wmap)."""
    cp = np.array([1, 1, 1, np.exp(0.3j)])
    pairs = [(i % w, (i + 1 + i // w) % w) for i in range(20)]
    return {
        "memory pass (phase on all)": [(_kern.KIND_DIAG, (), 0, 0, np.array([-1.0 + 0j]))],
        "1 H (bit 5)": [(_kern.KIND_DENSE, (5,), 0, 0, H)],
        "1 H (bit 0)": [(_kern.KIND_DENSE, (0,), 0, 0, H)],
        "20 H distinct bits": [(_kern.KIND_DENSE, (i % w,), 0, 0, H) for i in range(20)],
        "20 cp": [(_kern.KIND_DIAG, p, 0, 0, cp) for p in pairs],
        "10 dense 2q": [
            (_kern.KIND_DENSE, (2 * i % w, (2 * i + 3) % w), 0, 0, unitary(4, i)) for i in range(10)
        ],
        "5 dense 4q": [
            (_kern.KIND_DENSE, tuple((3 * i + j) % w for j in range(4)), 0, 0, unitary(16, i))
            for i in range(5)
        ],
    }


def bench(state, L, wmap, ops, threads, repeat):
    opl = _kern.OpList(ops)
    _kern.sweep(state, L, 0, wmap, opl, threads)  # compile and warm up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        _kern.sweep(state, L, 0, wmap, opl, threads)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qubits", type=int, default=26)
    ap.add_argument("--w", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--unaligned", action="store_true", help="numpy's default 16-byte alignment")
    args = ap.parse_args()
    L, w = args.qubits, args.w
    if args.unaligned:
        state = np.zeros(1 << L, dtype=complex)
    else:
        state = _kern.aligned_zeros(1 << L)
    state[:] = 1 / np.sqrt(1 << L)
    print(
        f"kernels: {_kern.build_info()}; state 2^{L} = {16 << L >> 20} MiB, "
        f"w={w}, {args.threads} threads, state 64-byte aligned: "
        f"{state.ctypes.data % 64 == 0}"
    )
    scattered = list(range(w // 2)) + list(range(L - (w - w // 2), L))
    layouts = {"W={0..w-1} in place": list(range(w)), f"W={scattered} gathered": scattered}
    for lname, wmap in layouts.items():
        print(f"\n{lname}")
        for name, ops in cases(w).items():
            # ops name buffer bits; translate to the physical bits of this wmap
            phys = [(k, tuple(wmap[t] for t in tg), cm, cv, m) for k, tg, cm, cv, m in ops]
            ms = bench(state, L, wmap, phys, args.threads, args.repeat)
            print(f"  {name:28s} {ms:8.1f} ms/sweep {ms / len(ops):8.2f} ms/op")


if __name__ == "__main__":
    main()
