"""From a qiskit circuit to a session Task and from session Results back to qiskit's.

Called by the backend (``qgt.qiskit.backend``): it strips the save directives (theirs:
``qgt.qiskit.save``, or qiskit_aer's) into outputs, turns ``parameter_binds`` into value
arrays, and formats counts and memory in qiskit's keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qiskit import QuantumCircuit

from qgt.errors import UserError

_SAVE_STATE = {"save_statevector"}
_SAVE_EXPVAL = {"save_expectation_value", "save_expval"}
_PASSIVE = {"barrier", "measure"}  # may follow a save directive


@dataclass
class Prepared:
    """A circuit without its save directives, and what they asked for."""

    circuit: QuantumCircuit
    state_label: str | None = None
    expvals: list = field(default_factory=list)  # (label, {full Pauli label: coeff})

    def observables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(lab for _, terms in self.expvals for lab in terms))


def _operator_terms(op) -> list[tuple[str, complex]]:
    if hasattr(op, "operator"):  # qgt's SaveExpectationValue
        return [(str(p), complex(c)) for p, c in zip(op.operator.paulis, op.operator.coeffs)]
    out = []  # qiskit_aer's save_expval: [(label, (re, im)), ...]
    for label, coeff in op.params:
        re, im = (coeff if isinstance(coeff, (tuple, list)) else (coeff, 0.0))
        out.append((str(label), complex(float(re), float(im))))
    return out


def _widen(label: str, qubits: list[int], n: int) -> str:
    """A Pauli label on ``qubits`` (rightmost char = qubits[0]) as an n-qubit label."""
    chars = ["I"] * n
    for pos, ch in enumerate(reversed(label)):
        chars[n - 1 - qubits[pos]] = ch
    return "".join(chars)


def prepare(qc: QuantumCircuit) -> Prepared:
    """Strip the save directives; each must come after every gate (only measurements
    and barriers may follow), since qgt saves the final state."""
    out = qc.copy_empty_like()
    prepared = Prepared(out)
    seen_save = None
    for inst in qc.data:
        name = inst.operation.name
        if name in _SAVE_STATE or name in _SAVE_EXPVAL:
            seen_save = name
            label = inst.operation.label or ("statevector" if name in _SAVE_STATE
                                             else "expectation_value")
            if name in _SAVE_STATE:
                prepared.state_label = label
            else:
                qubits = [qc.find_bit(b).index for b in inst.qubits]
                terms: dict[str, complex] = {}
                for lab, c in _operator_terms(inst.operation):
                    full = _widen(lab, qubits, qc.num_qubits)
                    terms[full] = terms.get(full, 0) + c
                prepared.expvals.append((label, terms))
            continue
        if seen_save and name not in _PASSIVE:
            raise UserError(f"circuit '{qc.name}': '{inst.operation.name}' after {seen_save}: "
                            "qgt saves the final state, so save instructions must come last "
                            "(only measurements and barriers may follow)")
        out.append(inst)
    return prepared


def bind_values(qc: QuantumCircuit, binds) -> np.ndarray | None:
    """``parameter_binds`` entry {Parameter: [v0, v1, ...]} -> (B, P) values in
    ``qc.parameters`` order."""
    if not qc.parameters:
        if binds:
            raise UserError(f"circuit '{qc.name}' has no parameters, but parameter_binds "
                            "gives values for it")
        return None
    if not binds:
        names = ", ".join(p.name for p in qc.parameters)
        raise UserError(f"circuit '{qc.name}' has unbound parameters ({names}): pass "
                        "parameter_binds=[{param: [values...]}] or assign_parameters() first")
    by_name = {getattr(k, "name", k): np.atleast_1d(np.asarray(v, dtype=float))
               for k, v in binds.items()}
    missing = [p.name for p in qc.parameters if p.name not in by_name]
    if missing:
        raise UserError(f"circuit '{qc.name}': parameter_binds has no values for "
                        f"{', '.join(missing)}")
    cols = [by_name[p.name] for p in qc.parameters]
    if len({len(c) for c in cols}) != 1:
        raise UserError(f"circuit '{qc.name}': every parameter in parameter_binds needs the "
                        "same number of values")
    return np.stack(cols, axis=1)


def header(qc: QuantumCircuit) -> dict:
    return {"name": qc.name, "creg_sizes": [[c.name, c.size] for c in qc.cregs],
            "memory_slots": qc.num_clbits, "n_qubits": qc.num_qubits,
            "metadata": dict(qc.metadata or {}), "global_phase": float(0)}


def hex_key(bits: str) -> str:
    return hex(int(bits, 2))


def expectation(terms: dict, values: dict) -> float | complex:
    """sum_k c_k <P_k>: real when the imaginary part is rounding."""
    total = sum(c * values[lab] for lab, c in terms.items())
    total = complex(total)
    return total.real if abs(total.imag) <= 1e-12 * max(1.0, abs(total.real)) else total
