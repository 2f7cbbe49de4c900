"""From a PennyLane tape to a qiskit circuit with Parameters, and from results back.

Called by the device (``qgt.pennylane.device``).  Every scalar angle of a gate becomes a
qiskit ``Parameter``, so all tapes of one structure (a training loop, parameter-shift's
shifted tapes) give one circuit structure: one plan in the session's cache, rebound per
value set.  PennyLane wire order -> qiskit qubits, reversed, so state vectors, samples and
Pauli labels come out in PennyLane's order without a permutation:

    PennyLane wires   w0  w1 ... w(n-1)        (w0 is the most significant bit)
    qiskit qubits    n-1 n-2 ...  0            (qubit 0 is the least significant bit)
    Pauli label      "c0 c1 ... c(n-1)"        char j acts on wire j (rightmost = qubit 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import DiagonalGate, UnitaryGate, get_standard_gate_name_mapping

from qgt.errors import UserError

# PennyLane name -> (qiskit standard gate name, number of angles).  Conventions agree
# (PennyLane's IsingXX(phi) = exp(-i phi/2 XX) = qiskit's RXX(phi); U3 = qiskit's U).
GATES = {
    "Identity": ("id", 0), "PauliX": ("x", 0), "PauliY": ("y", 0), "PauliZ": ("z", 0),
    "Hadamard": ("h", 0), "S": ("s", 0), "T": ("t", 0), "SX": ("sx", 0),
    "CNOT": ("cx", 0), "CZ": ("cz", 0), "CY": ("cy", 0), "CH": ("ch", 0),
    "SWAP": ("swap", 0), "ISWAP": ("iswap", 0), "CSWAP": ("cswap", 0),
    "Toffoli": ("ccx", 0), "CCZ": ("ccz", 0),
    "RX": ("rx", 1), "RY": ("ry", 1), "RZ": ("rz", 1), "PhaseShift": ("p", 1),
    "U1": ("p", 1), "ControlledPhaseShift": ("cp", 1), "CRX": ("crx", 1),
    "CRY": ("cry", 1), "CRZ": ("crz", 1), "IsingXX": ("rxx", 1), "IsingYY": ("ryy", 1),
    "IsingZZ": ("rzz", 1), "U2": ("u2", 2), "U3": ("u", 3),
}
# ops converted by hand: Rot (three rotations), matrices, the global phase
OTHER = {"Rot", "QubitUnitary", "DiagonalQubitUnitary", "GlobalPhase"}
NATIVE = frozenset(GATES) | OTHER
MATRIX_WIRES = 10  # an operation without a decomposition runs as its matrix up to this
_STANDARD = get_standard_gate_name_mapping()


def _angles(op) -> list:
    """The op's angles: floats, or (batch,) arrays for a broadcast parameter."""
    return [np.real(p) if np.ndim(p) else float(np.real(p)) for p in op.parameters]


def value_rows(values: list, batch: int | None) -> np.ndarray:
    """A converted tape's values as (batch or 1, parameters) rows: a broadcast tape has one
    value set per batch element (scalar angles repeat)."""
    if batch is None:
        return np.array([values], dtype=float).reshape(1, len(values))
    return np.stack([np.broadcast_to(np.asarray(v, dtype=float), (batch,)) for v in values],
                    axis=1) if values else np.zeros((batch, 0))


def structure_key(tape, wire_order, measured: bool) -> tuple:
    """Tapes with equal keys differ only in their angles: one task, many value sets."""
    return (tuple(wire_order), tuple(_op_key(op) for op in tape.operations), measured)


def _op_key(op) -> tuple:
    """A gate by name, wires and number of angles; any other op with its values too."""
    if op.name not in GATES and op.name != "Rot":  # matrices: their values
        data = tuple(np.round(np.concatenate([np.ravel(p) for p in op.parameters] or [[]]),
                              15).tolist())
    else:
        data = len(op.parameters)
    return (op.name, tuple(op.wires), data)


@dataclass
class Converted:
    circuit: QuantumCircuit
    values: list = field(default_factory=list)  # one per Parameter, in circuit order
    # per tape parameter (ops' data in order): its Parameter's index, None for data qgt
    # does not differentiate (matrices), -1 for a global phase (no effect on <O>)
    param_of: list = field(default_factory=list)
    structure: tuple = ()  # structure_key(...) when a Converter made it


def to_qiskit(tape, wire_order, measure: bool = False, extra_ops=()) -> Converted:
    """The tape's operations (then ``extra_ops``) as a qiskit circuit on len(wire_order)
    qubits; with ``measure`` every qubit is measured into clbit of the same index."""
    n = len(wire_order)
    index = {w: n - 1 - i for i, w in enumerate(wire_order)}
    ops = list(tape.operations) + list(extra_ops)
    count = sum(GATES[op.name][1] if op.name in GATES else 3 if op.name == "Rot" else 0
                for op in ops)
    theta = ParameterVector("t", count)
    qc = QuantumCircuit(n, name="pennylane")
    values: list[float] = []

    def angle(v):
        values.append(v)
        return theta[len(values) - 1]

    param_of: list = []
    for op in ops:
        qubits = [index[w] for w in op.wires]
        name = op.name
        first = len(values)
        if name in GATES or name == "Rot":
            param_of += list(range(first, first + len(op.data)))
        else:
            param_of += [-1 if name == "GlobalPhase" else None] * len(op.data)
        if name in GATES:
            qname, k = GATES[name]
            angles = _angles(op)
            if len(angles) != k:
                raise UserError(f"{name} with {len(angles)} parameters: qgt expects {k}")
            gate = type(_STANDARD[qname])(*[angle(a) for a in angles])
            qc.append(gate, qubits)
        elif name == "Rot":  # Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)
            phi, th, om = _angles(op)
            qc.rz(angle(phi), qubits[0])
            qc.ry(angle(th), qubits[0])
            qc.rz(angle(om), qubits[0])
        elif name == "QubitUnitary":  # qiskit's first qarg is the least significant
            qc.append(UnitaryGate(np.asarray(op.matrix()), check_input=False), qubits[::-1])
        elif name == "DiagonalQubitUnitary":
            qc.append(DiagonalGate(list(np.asarray(op.parameters[0]).ravel())), qubits[::-1])
        elif op.has_matrix and len(op.wires) <= MATRIX_WIRES and name not in OTHER:
            qc.append(UnitaryGate(np.asarray(op.matrix()), check_input=False), qubits[::-1])
        elif name == "GlobalPhase":  # PennyLane's GlobalPhase(phi) is exp(-i phi)
            qc.global_phase -= float(np.real(op.parameters[0]))
        else:
            raise UserError(f"operation {name} reached the qgt device undecomposed (a bug "
                            "in its preprocessing)")
    if measure:
        creg = ClassicalRegister(n, "meas")
        qc.add_register(creg)
        for q in range(n):
            qc.measure(q, creg[q])
    return Converted(qc, values, param_of[:sum(len(op.data) for op in tape.operations)])


class Converter:
    """``to_qiskit`` with a cache by structure: a tape whose structure was converted
    before reuses that circuit (the same object, whose fingerprint the plan cache then
    reads without hashing it again) and only its angles are read off the tape."""

    def __init__(self, size: int = 64):
        self._cache: dict = {}
        self._size = size

    def __call__(self, tape, wire_order, measure: bool = False, extra_ops=()) -> Converted:
        key = (structure_key(tape, wire_order, measure),
               tuple(_op_key(o) for o in extra_ops))
        hit = self._cache.get(key)
        if hit is None:
            hit = to_qiskit(tape, wire_order, measure, extra_ops)
            hit.structure = key[0]
            from qgt.frontend.params import fingerprint

            hit.circuit._qgt_fingerprint = fingerprint(hit.circuit)  # never mutated
            if len(self._cache) >= self._size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = hit
            return hit
        values = [a for op in list(tape.operations) + list(extra_ops)
                  if op.name in GATES or op.name == "Rot" for a in _angles(op)]
        return Converted(hit.circuit, values, hit.param_of, key[0])


def pauli_label(word, wire_order) -> str | None:
    """A PauliWord as a label in wire order (char j acts on wire j); None = identity."""
    if not word:
        return None
    pos = {w: i for i, w in enumerate(wire_order)}
    chars = ["I"] * len(wire_order)
    for w, p in word.items():
        chars[pos[w]] = p
    return "".join(chars)


def samples_array(memory, n: int) -> np.ndarray:
    """Per-shot bitstrings (rightmost char = qubit 0 = the last wire) as (shots, n)
    integers in wire order."""
    if not memory:
        return np.zeros((0, n), dtype=np.int64)
    raw = np.frombuffer("".join(memory).encode(), dtype=np.uint8).reshape(len(memory), -1)
    return (raw[:, -n:] - ord("0")).astype(np.int64)
