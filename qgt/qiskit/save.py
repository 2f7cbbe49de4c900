"""Aer-style save instructions: the final state and exact expectation values.

``save_statevector(qc)`` / ``qc.save_statevector()`` and ``save_expectation_value(qc,
operator, qubits)`` / ``qc.save_expectation_value(operator, qubits)`` add directives that
``QgtBackend`` turns into outputs: ``result.get_statevector()`` and
``result.data()[label]``.  The QuantumCircuit methods are registered only when absent
(importing qiskit_aer registers its own; QgtBackend reads both).  Called by the backend
(``qgt.qiskit.backend``), which strips them before the circuit reaches the session.
"""

from __future__ import annotations

from qiskit import QuantumCircuit
from qiskit.circuit import Instruction
from qiskit.quantum_info import SparsePauliOp


class SaveStatevector(Instruction):
    """Save the state at this point (it must be the last operation before any terminal
    measurements)."""

    _directive = True

    def __init__(self, num_qubits: int, label: str = "statevector"):
        super().__init__("save_statevector", num_qubits, 0, [], label=label)


class SaveExpectationValue(Instruction):
    """Save <psi| operator |psi> on this instruction's qubits, exactly."""

    _directive = True

    def __init__(self, operator, label: str = "expectation_value"):
        self.operator = SparsePauliOp(operator) if not isinstance(operator, SparsePauliOp) \
            else operator
        super().__init__("save_expectation_value", self.operator.num_qubits, 0, [],
                         label=label)


def save_statevector(qc: QuantumCircuit, label: str = "statevector", **_aer_flags):
    return qc.append(SaveStatevector(qc.num_qubits, label), qc.qubits)


def save_expectation_value(qc: QuantumCircuit, operator, qubits=None,
                           label: str = "expectation_value", **_aer_flags):
    inst = SaveExpectationValue(operator, label)
    qubits = list(range(inst.num_qubits)) if qubits is None else qubits
    return qc.append(inst, qubits)


def register() -> None:
    """Give QuantumCircuit the two methods, as qiskit_aer does, unless it has them."""
    if not hasattr(QuantumCircuit, "save_statevector"):
        QuantumCircuit.save_statevector = save_statevector
    if not hasattr(QuantumCircuit, "save_expectation_value"):
        QuantumCircuit.save_expectation_value = save_expectation_value
