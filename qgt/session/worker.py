"""The launched worker ranks' main loop: ``mpiexec -n P python -m qgt.session.worker``.

Started by ``qgt.session.launcher`` (never by hand).  Rank 0 connects to the parent at
$QGTSESSION_ADDRESS with $QGTSESSION_KEY, receives messages and broadcasts each to the
other ranks; every rank runs the batch on COMM_WORLD (``SpmdRanks``) and rank 0 sends
the results back.  A user error in a batch is reported and the ranks wait for the next
one; a lost parent ends every rank.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing.connection import Client


def main() -> int:
    from qgt.errors import QgtError, UserError
    from qgt.runtime.comm import Comm
    from qgt.session.launcher import ADDRESS_VAR, KEY_VAR
    from qgt.session.spmd import SpmdRanks

    world = Comm()
    conn = None
    if world.rank == 0:
        host, port = os.environ[ADDRESS_VAR].rsplit(":", 1)
        conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ[KEY_VAR]))

    def receive():
        msg = None
        if world.rank == 0:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = ("close", None)
        # idle ranks wait for rank 0 in a sleeping poll: MPI_Bcast busy-polls, and a rank
        # left spinning between batches takes a whole core from the caller's process
        arrived = world.c.Ibarrier()
        while not arrived.Test():
            time.sleep(0.002)
        return world.bcast(msg)

    kind, *payload = receive()
    ranks = SpmdRanks(payload[0], world.c, payload[1])
    pids = world.allgather(os.getpid())
    if conn is not None:
        conn.send(("ready", pids))
    while True:
        kind, body = receive()
        if kind != "run":
            break
        try:
            reply = ("ok", (ranks.run(body), ranks.cache_stats()))
        except UserError as e:
            reply = ("error", "user", str(e))
        except QgtError as e:
            reply = ("error", "internal", str(e))
        except Exception as e:  # a bug: report it; the ranks stay usable
            reply = ("error", "internal", f"internal error (a bug in qgt): "
                     f"{type(e).__name__}: {e}")
        if conn is not None:
            conn.send(reply)
    ranks.close()
    return 0


def _guarded() -> int:
    """Any escape from the loop aborts every rank: a rank left in a collective would
    otherwise keep the launcher (and the parent waiting on it) alive forever."""
    try:
        return main()
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        from mpi4py import MPI

        MPI.COMM_WORLD.Abort(70)
        return 70


if __name__ == "__main__":
    sys.exit(_guarded())
