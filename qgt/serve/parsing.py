"""OpenQASM checks for ``qgt serve``'s submissions, in a child process.

Called by ``qgt.serve.model.validate`` from the server's request threads.  qiskit's
native extension is not built to be driven from many threads of one process: under 20
concurrent clients ``qgt serve`` died of a segmentation fault inside qiskit's
``_accelerate`` (twice in about a dozen 500-task benchmark runs).  So the server never
imports qiskit; each submission's text goes to a long-lived parser process (spawned,
not forked: the server is multi-threaded) and only plain facts come back:

    request thread --text--> parser process: parse_qasm -> (qubits, unbound names)
                   <--facts-- or the parser's message (a 422)

A parser process that dies is replaced and the circuit tried once more, alone in a fresh
process (a crash fails every circuit then waiting, not only the one that caused it); a
circuit that crashes that one too is refused with that reason, and one that takes over
``TIMEOUT`` to parse is refused as well (its process is ended).
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, TimeoutError
from concurrent.futures.process import BrokenProcessPool

from qgt.errors import UserError


def facts(text: str, where: str) -> tuple[int, list[str], str | None]:
    """In the parser process: (qubits, unbound parameter names, parse error or None)."""
    from qgt.frontend.load import parse_qasm

    try:
        qc = parse_qasm(text, where)
    except UserError as e:
        return 0, [], str(e)
    return qc.num_qubits, sorted(p.name for p in qc.parameters), None


WORKERS = 2  # parser processes: one slow OpenQASM 3 file does not hold up the others
TIMEOUT = 60.0  # seconds a circuit may take to parse


class Parser:
    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    @staticmethod
    def _new_pool(workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers,
                                   mp_context=multiprocessing.get_context("spawn"))

    def _shared(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool(WORKERS)
            return self._pool

    def _drop(self, pool: ProcessPoolExecutor) -> None:
        """Retire ``pool`` (broken, or stuck on a circuit): its processes are ended."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, pool, text: str, where: str):
        try:
            return pool.submit(facts, text, where).result(timeout=TIMEOUT)
        except TimeoutError:
            self._drop(pool)
            raise UserError(f"{where}: parsing the OpenQASM took over {TIMEOUT:.0f} s") \
                from None

    def check(self, text: str, where: str = "circuit.qasm") -> tuple[int, list[str]]:
        """(qubits, unbound parameter names) of an OpenQASM 2/3 text; UserError with the
        parser's message if it does not parse."""
        pool = self._shared()
        try:
            n, unbound, error = self._run(pool, text, where)
        except BrokenProcessPool:
            # a crash fails every circuit waiting on that pool, whichever one caused it:
            # try this one again alone, so that only a circuit that crashes the parser by
            # itself is refused
            self._drop(pool)
            alone = self._new_pool(1)
            try:
                n, unbound, error = self._run(alone, text, where)
            except BrokenProcessPool:
                raise UserError(f"{where}: the OpenQASM parser crashed on this circuit") \
                    from None
            finally:
                alone.shutdown(wait=False, cancel_futures=True)
        if error:
            raise UserError(error)
        return n, unbound

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


PARSER = Parser()
