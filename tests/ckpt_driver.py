"""Run under mpiexec by tests/test_checkpoint_files.py: exercise the checkpoint file layer
(qgt.io.checkpoint) on real ranks with the real ``qgt.runtime.comm.Comm``, and write one
JSON record per rank (gathered on rank 0) for the test to check.

usage: mpiexec -n K python tests/ckpt_driver.py OP ARGS.json OUT.json
  write  {"dir", "n_qubits", "count", "keep"}  write ``count`` checkpoints, steps 1..count
  read   {"path"}                              every rank reads its range with read_local
  find   {"dir", "hash"}                       find_latest, collectively

The test's state is ``amplitudes``: distinct per index and per step, so that a range read
from the wrong place, or from another checkpoint, cannot pass.
"""

from __future__ import annotations

import json
import sys

import numpy as np

PLAN_ITEMS = 16


def amplitudes(n_qubits: int, step: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
    i = np.arange(lo, (1 << n_qubits) if hi is None else hi, dtype=np.float64)
    return i + 1j * (step + i / (1 << n_qubits))


def executed(step: int) -> np.ndarray:
    done = np.zeros(PLAN_ITEMS, dtype=np.uint8)
    done[:step] = 1
    return done


def attrs(n_qubits: int, circuit_hash: str = "c0ffee") -> dict:
    return {"circuit_hash": circuit_hash, "plan_hash": "feed", "layout": list(range(n_qubits)),
            "clbits": 2**70 + 5, "rng_state": {"seed": 7, "draws": 3},
            "config": {"checkpoint_keep": 2}, "trajectory": 0, "elapsed": 12.5}


def _run(op: str, args: dict, comm) -> dict:
    from qgt.io import checkpoint as ck

    if op == "write":
        n, per = args["n_qubits"], (1 << args["n_qubits"]) // comm.size
        writer = ck.Checkpointer(args["dir"], args["keep"], comm)
        paths = []
        for step in range(1, args["count"] + 1):
            local = amplitudes(n, step, comm.rank * per, (comm.rank + 1) * per)
            paths.append(writer.write(local, attrs(n), executed(step)))
        return {"paths": paths}
    if op == "read":
        meta = ck.read_meta(args["path"])
        n, per = meta["n_qubits"], (1 << meta["n_qubits"]) // comm.size
        lo = comm.rank * per
        got = ck.read_local(args["path"], comm.rank, comm.size)
        want = amplitudes(n, meta["step"], lo, lo + per)
        return {"lo": lo, "len": len(got), "equal": bool(np.array_equal(got, want))}
    if op == "find":
        path, warnings = ck.find_latest(args["dir"], comm, args["hash"])
        return {"path": path, "warnings": warnings}
    raise SystemExit(f"unknown op {op!r}")


def main() -> None:
    from qgt.errors import QgtError
    from qgt.runtime.comm import Comm

    op, args_file, out_file = sys.argv[1:4]
    comm = Comm()
    try:
        record = _run(op, json.load(open(args_file)), comm)
    except QgtError as e:
        record = {"error": type(e).__name__, "message": str(e)}
    records = comm.allgather(record)
    if comm.rank == 0:
        with open(out_file, "w") as f:
            json.dump(records, f)


if __name__ == "__main__":
    main()
