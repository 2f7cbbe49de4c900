"""Launched worker ranks: a plain Python process (a notebook) runs batches on MPI ranks
that qgt starts and keeps.

Called by ``qgt.session.Session(ranks=P)``.  The ranks are ``mpiexec -n P`` (or ``srun
-n P --mpi=pmi2``) running ``python -m qgt.session.worker`` in their own process group.
Rank 0 of the workers connects back over an authenticated socket
(``multiprocessing.connection``); batches go out and Results come back pickled.

    parent (this process)            workers (mpiexec -n P)
    Listener(host, port, key)  <---  rank 0 connects; bcasts each message to all ranks
    send(("run", tasks))       --->  every rank: SpmdRanks.run(tasks)
    recv(("ok", results))      <---  rank 0

Failures never hang: while waiting the parent polls the launcher process, so a dead
worker (killed, out of memory, MPI abort) fails the batch with its exit status and the
end of its stderr; ``cancel()`` kills the process group.  The next batch starts fresh
ranks.
"""

from __future__ import annotations

import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Listener

from qgt.api import _as_config
from qgt.errors import InternalError, QgtError, UserError

START_TIMEOUT = 120.0  # seconds for the launcher to start the ranks and rank 0 to call
# the worker's connection details; not QGT_*: every QGT_* variable is a qgt setting
ADDRESS_VAR, KEY_VAR = "QGTSESSION_ADDRESS", "QGTSESSION_KEY"
PARENT_VAR = "QGTSESSION_PARENT"  # the workers end when this process is gone


def _dumps(tasks) -> tuple[str, bytes]:
    """A batch as bytes for the workers.  A class defined in the caller's ``__main__`` (a
    custom Gate written in a notebook) is pickled by reference, and the workers, whose
    ``__main__`` is qgt.session.worker, could not load it: such a batch goes by value,
    through dill (a qiskit dependency).  Others keep plain pickle, which is faster."""
    data = pickle.dumps(tasks)
    if b"__main__" not in data:
        return "pickle", data
    import dill

    return "dill", dill.dumps(tasks, recurse=True)


class WorkersDied(QgtError):
    """The launched worker ranks stopped (killed, crashed or cancelled) during a batch."""

    exit_code = 70


class LaunchedRanks:
    def __init__(self, config, ranks: int, launcher: str, launcher_args: tuple,
                 cache_size: int):
        if launcher not in ("mpiexec", "srun"):
            raise UserError(f"launcher must be 'mpiexec' or 'srun', got {launcher!r}")
        self.cfg = _as_config(config)
        self.size = ranks
        self.rank = 0
        self.launcher = launcher
        self.launcher_args = launcher_args
        self.cache_size = cache_size
        self.proc: subprocess.Popen | None = None
        self.conn = None
        self.pids: list[int] = []
        self._stats: dict = {}
        self._cancelled = False

    # ---- lifetime -----------------------------------------------------------------
    def _command(self) -> list[str]:
        worker = [sys.executable, "-m", "qgt.session.worker"]
        if self.launcher == "srun":
            return ["srun", "-n", str(self.size), "--mpi=pmi2", *self.launcher_args, *worker]
        exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep +
                           os.environ.get("PATH", ""))
        if exe is None:
            raise UserError("launcher 'mpiexec' not found on PATH (pip install mpich, or load "
                            "your site's MPI module)")
        return [exe, "-n", str(self.size), *self.launcher_args, *worker]

    def _start(self) -> None:
        key = secrets.token_bytes(32)
        host = "127.0.0.1" if self.launcher == "mpiexec" else socket.gethostname()
        listener = Listener((host, 0), authkey=key)
        self._drop_log()
        self._log = tempfile.TemporaryFile()
        env = dict(os.environ, **{ADDRESS_VAR: f"{host}:{listener.address[1]}",
                                  KEY_VAR: key.hex()})
        if self.launcher == "mpiexec":  # loopback, so rank 0 shares this host's PIDs
            env[PARENT_VAR] = str(os.getpid())
        self.proc = subprocess.Popen(self._command(), env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        got: dict = {}

        def accept():
            try:
                got["conn"] = listener.accept()
            except Exception as e:  # closed under us on timeout or failure
                got["error"] = e

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        deadline = time.monotonic() + START_TIMEOUT
        while t.is_alive() and time.monotonic() < deadline and self.proc.poll() is None:
            t.join(0.1)
        listener.close()
        if "conn" not in got:
            self._kill()
            raise WorkersDied(f"the {self.size} worker ranks did not start "
                              f"({' '.join(self._command()[:4])} ...): {self._tail()}")
        self.conn = got["conn"]
        self.conn.send(("init", self.cfg.to_dict(), self.cache_size))
        kind, payload = self._receive()
        self.pids = payload

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def _drop_log(self) -> None:
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()
            self._log = None

    def _tail(self) -> str:
        try:
            self._log.seek(0)
            text = self._log.read().decode(errors="replace").strip()
        except (OSError, AttributeError, ValueError):
            return "(no output)"
        lines = [ln for ln in text.splitlines() if ln.strip()][-8:]
        return " | ".join(lines) if lines else "(no output)"

    def _receive(self):
        """The workers' next reply; a dead launcher fails at once instead of hanging."""
        lost = False
        while True:
            if not lost:
                try:
                    if self.conn.poll(0.05):
                        msg = self.conn.recv()
                        break
                except (EOFError, OSError):
                    lost = True  # rank 0 is gone; the launcher exits after it
            if lost:
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is not None or lost:
                code = self.proc.poll()
                cancelled, self._cancelled = self._cancelled, False
                self._kill()
                if cancelled:
                    raise WorkersDied("the batch was cancelled: its worker ranks were stopped")
                raise WorkersDied(f"a worker rank died (launcher exit status {code}); the "
                                  f"batch is lost: {self._tail()}")
        kind = msg[0]
        if kind == "error":
            _, cls, message = msg
            if cls != "user" and "MPI" in message and self._launcher_exits(10.0):
                # rank 0 saw a peer die (an MPI error) just before the launcher ended
                self._kill()
                raise WorkersDied(f"a worker rank died (launcher exit status "
                                  f"{self.proc.returncode}); the batch is lost: {message}")
            raise (UserError if cls == "user" else InternalError)(message)
        return kind, msg[1]

    def _launcher_exits(self, seconds: float) -> bool:
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    # ---- the session's interface ----------------------------------------------------
    def run(self, tasks, progress=None) -> list[list]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        try:
            self.conn.send(("run", _dumps(tasks)))
        except OSError:
            pass  # the ranks went (cancelled or died) while a big batch was on its way:
            # _receive finds the launcher gone and says which
        _, (results, stats) = self._receive()
        self._stats = stats
        return results

    def cancel(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._cancelled = True
            os.killpg(self.proc.pid, signal.SIGKILL)

    def cache_stats(self) -> dict:
        return dict(self._stats)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None and self.conn is not None:
            try:
                self.conn.send(("close", None))
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()
        self._drop_log()
        self.proc = None
