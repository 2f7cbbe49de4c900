"""The fuser's cost model, measured on this node (``qgt calibrate --kernels``).

Times qgt's own sweep kernel on lists of one kind of op (dense blocks of 1 to 6 qubits,
a permutation, a phase table) over a 2^22-amplitude state with a cache-sized working
set, and stores milliseconds per op scaled to 2^26 amplitudes in
``$XDG_CACHE_HOME/qgt/kernel_costs.json``, keyed by host and kernel build.  The planner
(``qgt.api.plan_for``) reads it through ``cost_model``; without it the fuser uses the
built-in figures of ``qgt.plan.fuser.DEFAULT_COSTS``.  Only ratios matter to the fuser.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from qgt.plan.fuser import DEFAULT_COSTS, CostModel

_X = np.array([[0, 1], [1, 0]], dtype=complex)
PROBE_QUBITS = 22
# bumped when the kernels' relative costs change (runs of ops in L1 tiles), so figures
# measured on an older build are measured again rather than used
KERNEL_GENERATION = "l1-tiles"
OPS_PER_SWEEP = 16


def _path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qgt" / "kernel_costs.json"


def _key() -> str:
    from qgt import _kern

    return f"{socket.gethostname()} | {_kern.build_info()} | {KERNEL_GENERATION}"


def measure(threads: int, n: int = PROBE_QUBITS, wbits: int = 14) -> dict:
    """Milliseconds per op at 2^26 amplitudes, by kind (best of 3 sweeps each)."""
    from scipy.stats import unitary_group

    from qgt import _kern

    psi = np.zeros(1 << n, dtype=complex)
    psi[0] = 1
    wmap = list(range(wbits))
    rng = np.random.default_rng(1)
    scale = (1 << 26) / (1 << n) * 1e3

    def per_op(ops) -> float:
        ol = _kern.OpList(ops)
        _kern.sweep(psi, n, 0, wmap, ol, threads)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            _kern.sweep(psi, n, 0, wmap, ol, threads)
            best = min(best, time.perf_counter() - t)
        return best / len(ops) * scale

    dense = [0.0]
    for k in range(1, 7):
        ops = [(0, tuple(sorted(rng.choice(np.arange(2, wbits), k, replace=False))), 0, 0,
                unitary_group.rvs(1 << k, random_state=j)) for j in range(OPS_PER_SWEEP)]
        dense.append(per_op(ops))
    rx = [(0, (int(rng.integers(2, wbits)),), 0, 0,
           np.array([[np.cos(a), -1j * np.sin(a)], [-1j * np.sin(a), np.cos(a)]]))
          for a in rng.uniform(0, np.pi, OPS_PER_SWEEP)]
    dense1_cheap = per_op(rx)
    perm = per_op([(0, (int(rng.integers(2, wbits)),), 1 << 1, 1 << 1, _X)
                   for _ in range(OPS_PER_SWEEP)])
    perm_block = per_op([(0, tuple(sorted(rng.choice(np.arange(2, wbits), 5, replace=False))),
                          0, 0, np.eye(32, dtype=complex)[rng.permutation(32)])
                         for _ in range(OPS_PER_SWEEP)])
    diag = per_op([(1, tuple(range(4, 8)), 0, 0, np.exp(1j * rng.random(16)))
                   for _ in range(OPS_PER_SWEEP)])
    return {"dense": dense, "dense1_cheap": dense1_cheap, "permutation": perm,
            "permutation_block": perm_block,
            "diagonal": diag, "threads": threads,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}


def store(res: dict) -> Path:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        entries = {}
    entries[_key()] = res
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    os.replace(tmp, path)
    return path


def cost_model() -> CostModel:
    """This node's measured costs, else the built-in ones."""
    try:
        res = json.loads(_path().read_text()).get(_key())
        if res:
            return CostModel(dense=tuple(float(x) for x in res["dense"]),
                             dense1_cheap=float(res.get("dense1_cheap", res["dense"][1])),
                             permutation=float(res["permutation"]),
                             permutation_block=float(res.get(
                                 "permutation_block", DEFAULT_COSTS.permutation_block)),
                             diagonal=float(res["diagonal"]),
                             source=f"measured {res['measured_at']}")
    except Exception:  # a missing, old or hand-edited file: never break planning
        pass
    return DEFAULT_COSTS


def format_costs(res: dict) -> str:
    dense = ", ".join(f"{k}q {v:.0f}" for k, v in enumerate(res["dense"]) if k)
    return (f"  kernel costs (ms per op at 2^26 amplitudes, {res['threads']} threads): dense "
            f"{dense}; 1q real or rx {res.get('dense1_cheap', float('nan')):.0f}; "
            f"permutation {res['permutation']:.0f} (a 5-qubit block "
            f"{res.get('permutation_block', float('nan')):.0f}); phase table "
            f"{res['diagonal']:.0f}")
