"""``python -m qgt.serve.reaper PARENT_PID -- COMMAND...``: run COMMAND (``mpiexec ...``)
in this process group and kill the whole group if PARENT_PID dies first.

Started by ``qgt.serve.executor`` as the leader of a new session, so that a worker that is
SIGKILLed or crashes never leaves MPI ranks behind (nothing else would reap them: mpiexec
survives its parent).  The worker itself stops a task by killing this group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

POLL = 0.2  # seconds between checks of the parent


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m qgt.serve.reaper PARENT_PID -- COMMAND...", file=sys.stderr)
        return 2
    parent = int(argv[0])
    child = subprocess.Popen(argv[2:])
    while True:
        try:
            return child.wait(timeout=POLL)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:  # re-parented: the worker is gone
            os.killpg(0, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
