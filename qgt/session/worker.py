"""The launched worker ranks' main loop: ``mpiexec -n P python -m qgt.session.worker``.

Started by ``qgt.session.launcher`` (never by hand).  Rank 0 connects to the parent at
$QGTSESSION_ADDRESS with $QGTSESSION_KEY, receives messages and broadcasts each to the
other ranks; every rank runs the batch on COMM_WORLD (``SpmdRanks``) and rank 0 sends
the results back.  A user error in a batch is reported and the ranks wait for the next
one; a lost parent ends every rank.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from multiprocessing.connection import Client


class _AdoptMain(pickle.Pickler):
    """Walks a batch as pickle would, making each class it meets from the caller's
    ``__main__`` an attribute of this process's ``__main__``, so that the ranks can pass
    the batch's plans on among themselves (plain pickle, by reference)."""

    def reducer_override(self, obj):
        if isinstance(obj, type) and obj.__module__ == "__main__" and \
                "." not in obj.__qualname__:
            setattr(sys.modules["__main__"], obj.__qualname__, obj)
        return NotImplemented


def _loads(fmt: str, data: bytes):
    """The batch that ``qgt.session.launcher._dumps`` sent."""
    import io

    from qgt.errors import UserError

    try:
        if fmt != "dill":
            return pickle.loads(data)
        import dill

        tasks = dill.loads(data)
        _AdoptMain(io.BytesIO()).dump(tasks)
        return tasks
    except Exception as e:  # every rank fails alike: the same bytes
        raise UserError(f"the worker ranks could not load the batch ({type(e).__name__}: "
                        f"{e}); what it holds must be importable or picklable") from e


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    from qgt.errors import QgtError, UserError
    from qgt.runtime.comm import Comm
    from qgt.session.launcher import ADDRESS_VAR, KEY_VAR, PARENT_VAR
    from qgt.session.spmd import SpmdRanks

    world = Comm()
    conn = None
    parent = int(os.environ.get(PARENT_VAR, "0"))
    if world.rank == 0:
        host, port = os.environ[ADDRESS_VAR].rsplit(":", 1)
        conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ[KEY_VAR]))

    def receive():
        msg = None
        if world.rank == 0:
            try:
                # a parent that died without closing (os._exit, SIGKILL) may leave the
                # socket open in a stray child: watch the parent itself as well
                while not conn.poll(0.5):
                    if not _alive(parent):
                        raise EOFError
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
            reply = ("ok", (ranks.run(_loads(*body)), ranks.cache_stats()))
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
