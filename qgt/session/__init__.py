"""The session: one engine behind every front door (DESIGN.md, "Front doors, one engine").

    Session(config, comm=None)           SPMD: the caller's communicator (COMM_WORLD, or
                                         one process when not under mpiexec)
    Session(config, ranks=4)             launched: qgt starts 4 MPI worker ranks
    Session(config, ranks=8, launcher="srun")   and keeps them until close()

``run(tasks)`` runs a batch of ``Task`` (circuit, parameter value sets, outputs) back to
back on those ranks and returns, per task, one ``qgt.result.Result`` per value set.  A
plan cache keyed by circuit structure makes every binding after the first skip lowering
and planning.  The Qiskit backend and primitives (``qgt.qiskit``) are thin adapters on it.
"""

from qgt.session.core import Session
from qgt.session.task import Task

__all__ = ["Session", "Task"]
