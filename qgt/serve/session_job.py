"""Small tasks on persistent launched ranks: ``qgt.session.Session(ranks=R)`` kept by the
worker, one per slot and rank count (the session's launcher mode, DESIGN.md "Front doors,
one engine").

Called by qgt.serve.worker.Runner for tasks of at most ``worker.session_max_qubits``
qubits without configuration overrides or a kept state.  A fresh ``mpiexec`` + ``qgt
run`` per task costs seconds of start-up (MPI, Python, qiskit imports); a launched
session pays that once and then runs a task in milliseconds, which is what makes tens of
tasks per second possible.  No checkpoints: such a task is cheaper to rerun.  The ranks
are in their own process group and end when the worker dies (the launcher's parent
watch); a cancel or a lost lease kills them (``Session.cancel``) and the next task starts
fresh ones.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future

from qgt.errors import UserError
from qgt.serve.executor import Job


class SessionPool:
    """Idle sessions by rank count; a task takes one and gives it back."""

    def __init__(self):
        self._idle: dict[int, list] = {}
        self._lock = threading.Lock()

    def take(self, ranks: int):
        with self._lock:
            idle = self._idle.get(ranks)
            if idle:
                return idle.pop()
        from qgt.session import Session

        return Session(ranks=ranks)

    def give(self, ranks: int, session) -> None:
        with self._lock:
            self._idle.setdefault(ranks, []).append(session)

    def close(self) -> None:
        with self._lock:
            sessions = [s for idle in self._idle.values() for s in idle]
            self._idle.clear()
        for s in sessions:
            s.close()


def fits_session(rec: dict, max_qubits: int) -> bool:
    req = rec["request"]
    return rec["n_qubits"] <= max_qubits and not req["config"] and not req["keep_state"]


def _as_result(res) -> dict:
    return {"counts": res.counts, "expectation_values": res.expectation_values,
            "timings": res.timings, "n_qubits": res.n_qubits, "ranks": res.ranks,
            "shots": res.shots, "seed": res.seed, "statevector": None,
            "resumed_from": None}


class SessionJob(Job):
    def __init__(self, rec: dict, d: str, pool: SessionPool):
        from qgt.session import Task

        req = rec["request"]
        self.ranks = req["ranks"]
        self.pool = pool
        self.session = pool.take(self.ranks)
        self.future: Future = Future()
        with open(os.path.join(d, f"log-{rec['attempt']}.txt"), "w") as f:  # one per attempt
            f.write(f"attempt {rec['attempt']}: on the worker's launched session of "
                    f"{self.ranks} rank(s)\n")
        task = Task(os.path.join(d, "circuit.qasm"), shots=req["shots"],
                    observables=tuple(req["observables"]), seed=req["seed"])
        threading.Thread(target=self._run, args=(task,), daemon=True).start()

    def _run(self, task) -> None:
        try:
            self.future.set_result(("done", _as_result(self.session.run([task])[0][0])))
        except UserError as e:
            self.future.set_result(("user_error", str(e)))
        except Exception as e:  # dead or cancelled ranks (WorkersDied), or a bug
            self.future.set_result(("failed", f"the session's ranks failed: {e}"))

    def wait(self, timeout: float) -> int | None:
        try:
            self.future.result(timeout)
        except TimeoutError:
            return None
        self.pool.give(self.ranks, self.session)
        return 0

    def kill(self) -> None:
        self.session.cancel()
        self.future.result(60)
        self.pool.give(self.ranks, self.session)

    def outcome(self, rc: int) -> tuple[str, object]:
        return self.future.result()
