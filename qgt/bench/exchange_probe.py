"""The exchange bandwidth between two ranks, for ``qgt calibrate`` (which launches this
under ``mpiexec -n 2`` and stores the figure as ``exchange_Bps``; ``qgt report``
compares global swaps with it).

    mpiexec -n 2 python -m qgt.bench.exchange_probe [MiB]

Each rank sends and receives a ``MiB`` buffer (64 by default) with the runtime's own
non-blocking pairwise exchange, after a warm-up into the same buffers (a first exchange
into fresh buffers is several times slower: page faults).  Prints one JSON object from
rank 0: bytes per second per rank (sent bytes over the time), best of five.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from qgt.runtime.comm import Comm


def main() -> int:
    comm = Comm()
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    n = (mib << 20) // 16
    sbuf, rbuf = np.ones(n, dtype=complex), np.zeros(n, dtype=complex)
    partner = comm.rank ^ 1
    best = float("inf")
    for i in range(6):
        comm.barrier()
        t = time.perf_counter()
        comm.wait(comm.isendrecv(sbuf, rbuf, partner))
        dt = comm.allreduce_max(time.perf_counter() - t)
        if i:
            best = min(best, dt)
    if comm.rank == 0:
        print(json.dumps({"exchange_Bps": sbuf.nbytes / best, "exchange_bytes": sbuf.nbytes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
