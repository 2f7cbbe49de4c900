"""OpenQASM checks for ``qgt serve``'s submissions, in a child process.

Called by ``qgt.serve.model.validate`` from the server's request threads.  qiskit's
native extension is not built to be driven from many threads of one process: under 20
concurrent clients ``qgt serve`` died of a segmentation fault inside qiskit's
``_accelerate`` (twice in about a dozen 500-task benchmark runs).  So the server never
imports qiskit; each submission's text goes to a long-lived parser process (spawned,
not forked: the server is multi-threaded) and only plain facts come back:

    request thread --text--> parser process: parse_qasm -> (qubits, unbound names)
                   <--facts-- or the parser's message (a 422)

A parser process that dies is replaced, and the circuit is tried once more; a circuit
that kills it twice is refused with that reason.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
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


class Parser:
    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def check(self, text: str, where: str = "circuit.qasm") -> tuple[int, list[str]]:
        """(qubits, unbound parameter names) of an OpenQASM 2/3 text; UserError with the
        parser's message if it does not parse."""
        for attempt in (1, 2):
            pool = self._executor()
            try:
                n, unbound, error = pool.submit(facts, text, where).result()
                break
            except BrokenProcessPool:
                self._reset(pool)
                if attempt == 2:
                    raise UserError(f"{where}: the OpenQASM parser crashed on this circuit "
                                    "(twice)") from None
        if error:
            raise UserError(error)
        return n, unbound

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


PARSER = Parser()
