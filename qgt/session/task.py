"""What a front end asks the session to run: a circuit, parameter value sets, outputs.

Built by the Qiskit backend and primitives (``qgt.qiskit``), and by anything else that
stands on ``qgt.session.Session``; picklable, so launched worker ranks receive it as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Task:
    """One circuit and B parameter value sets (B = 1 without parameters).

    ``circuit``: a qiskit QuantumCircuit (parameters allowed), a ``qgt.ops.Circuit``, a
    built-in spec or an OpenQASM path.  ``values``: (B, P) in the circuit's parameter
    order (qiskit's sorted ``circuit.parameters``), or None.  ``observables``: Pauli
    labels of ``n_qubits`` characters (rightmost is qubit 0), evaluated exactly.
    """

    circuit: object
    values: np.ndarray | None = None
    shots: int = 0
    observables: tuple[str, ...] = ()
    seed: int | None = None
    state: bool = False  # return the final state in Result.state
    memory: bool = False  # return per-shot outcomes in Result.memory
    name: str = ""
    extra: dict = field(default_factory=dict)  # front-end bookkeeping, passed through

    def n_bindings(self) -> int:
        return 1 if self.values is None else int(np.asarray(self.values).shape[0])
