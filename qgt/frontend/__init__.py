"""The circuit frontend: the only part of qgt that imports qiskit.

Callers (command line, Python API, benchmark) use ``load_circuit`` to turn a user's circuit
spec into a ``qgt.ops.Circuit``; ``load_qiskit`` gives the qiskit circuit itself (the
benchmark runs Aer on it), ``lower`` converts a ``QuantumCircuit`` already in hand.
"""

from qgt.frontend.library import ghz, qaoa, qft, qpe, random_gates, trotter
from qgt.frontend.load import (
    BUILTINS,
    builtin_help,
    load_circuit,
    load_qasm,
    load_qiskit,
    with_measurements,
)
from qgt.frontend.lower import MAX_UNITARY_QUBITS, lower

__all__ = [
    "BUILTINS",
    "MAX_UNITARY_QUBITS",
    "builtin_help",
    "ghz",
    "load_circuit",
    "load_qasm",
    "load_qiskit",
    "lower",
    "qaoa",
    "qft",
    "qpe",
    "random_gates",
    "trotter",
    "with_measurements",
]
