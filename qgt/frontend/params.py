"""Parameterised qiskit circuits, lowered once and rebound many times.

Called by the session's plan cache (``qgt.session.cache``).  ``template(qc)`` lowers a
circuit whose parameters are unbound, at fixed *generic* values (irrational multiples of
pi, so no gate comes out diagonal or trivial by accident), and records which lowered ops
each parametric instruction produced.  ``Template.bind(values)`` then recomputes only those
ops' matrices: a closed form for the common rotations (rx, ry, rz, p, u, rxx, ryy, rzz,
rzx and their controlled forms), else qiskit's own binding and lowering of that one
instruction.

A value that would make a gate diagonal or the identity (rx(0), a cp at 2 pi) keeps the
gate's generic slot: the plan stays valid for every value and the result is exact.  A
value that changes the *structure* of the lowering (a custom gate whose definition
branches on its parameter) raises ``StructureChanged``; the cache then plans that binding
afresh.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ControlledGate, Parameter, ParameterExpression

from qgt.errors import CircuitError
from qgt.frontend.lower import _STANDARD, _angle, _Context, _Lowerer
from qgt.ops import Circuit, Gate


class StructureChanged(Exception):
    """These values lower the circuit to different gates than the template's."""


def _rx(t):
    c, s = math.cos(t / 2), math.sin(t / 2)
    return np.array([[c, -1j * s], [-1j * s, c]])


def _ry(t):
    c, s = math.cos(t / 2), math.sin(t / 2)
    return np.array([[c, -s], [s, c]], dtype=complex)


def _rz(t):
    return np.array([np.exp(-0.5j * t), np.exp(0.5j * t)])


def _p(t):
    return np.array([1.0, np.exp(1j * t)])


def _u(t, p, lam):
    c, s = math.cos(t / 2), math.sin(t / 2)
    return np.array([[c, -np.exp(1j * lam) * s],
                     [np.exp(1j * p) * s, np.exp(1j * (p + lam)) * c]])


class _Two:
    """exp(-i t/2 A (x) B) for Paulis A (on the second target) and B (on the first);
    a class, not a closure, so templates pickle (rank 0 broadcasts them)."""

    def __init__(self, pauli_a: np.ndarray, pauli_b: np.ndarray):
        self.k = np.kron(pauli_a, pauli_b)

    def __call__(self, t):
        return math.cos(t / 2) * np.eye(4, dtype=complex) - 1j * math.sin(t / 2) * self.k


_PX = np.array([[0, 1], [1, 0]], dtype=complex)
_PY = np.array([[0, -1j], [1j, 0]])
_PZ = np.diag([1.0, -1.0]).astype(complex)


def _rzz(t):
    e, f = np.exp(-0.5j * t), np.exp(0.5j * t)
    return np.array([e, f, f, e])


# name of the base gate -> (matrix from the float parameters, whether it is a diagonal)
_CLOSED = {
    "rx": (_rx, False), "ry": (_ry, False), "rz": (_rz, True), "p": (_p, True),
    "u1": (_p, True), "u": (_u, False), "u3": (_u, False),
    "rxx": (_Two(_PX, _PX), False), "ryy": (_Two(_PY, _PY), False), "rzz": (_rzz, True),
    "rzx": (_Two(_PX, _PZ), False),
}


# dE/dt E^dagger of the one-angle closed forms: constant in t (E = exp(-i t G / 2), and
# p(t) = diag(1, e^{it})), the form adjoint differentiation takes; diagonals as vectors
_GENERATORS = {
    _rx: -0.5j * np.array([[0, 1], [1, 0]], dtype=complex),
    _ry: -0.5j * np.array([[0, -1j], [1j, 0]]),
    _rz: np.array([-0.5j, 0.5j]),
    _p: np.array([0.0, 1j]),
    _rzz: -0.5j * np.array([1.0, -1.0, -1.0, 1.0]),
}


def generator(slot, k: int) -> np.ndarray | None:
    """dE/dv_k E^dagger of a slot whose closed form takes parameter k as its only angle
    (rx(theta), rzz(gamma), ...), or None (an expression, u, no closed form)."""
    if slot.closed is None:
        return None
    fn, getters = slot.closed
    if len(getters) != 1 or not isinstance(getters[0], _Column) or getters[0].j != k:
        return None
    if isinstance(fn, _Two):
        return -0.5j * fn.k
    return _GENERATORS.get(fn)


def _generic(parameters) -> dict:
    """Values no real ansatz hits exactly: (k + golden ratio) * pi / 7."""
    phi = (1 + 5 ** 0.5) / 2
    return {p: ((k % 11) + phi) * math.pi / 7 for k, p in enumerate(parameters)}


@dataclass
class _Slot:
    """One parametric instruction of the circuit and the lowered ops it produced."""

    op: object
    qubits: list[int]
    clbits: list[int]
    start: int
    stop: int
    phase: float  # the global phase it contributed at the generic values
    closed: tuple | None  # (matrix function, diagonal, [parameter getters]) or None


class _Column:
    """A gate parameter that is one circuit parameter: column j of the value vector."""

    def __init__(self, j: int):
        self.j = j

    def __call__(self, v) -> float:
        return float(v[self.j])


class _Expression:
    """A gate parameter that is an expression of circuit parameters (2*gamma, a+b)."""

    def __init__(self, expr: ParameterExpression, index: dict):
        self.expr = expr
        self.params = sorted(expr.parameters, key=lambda p: index[p])
        self.cols = [index[p] for p in self.params]

    def __call__(self, v) -> float:
        bound = self.expr.bind({p: float(v[c]) for p, c in zip(self.params, self.cols)})
        return _angle(bound, "a gate parameter")


class _Constant:
    def __init__(self, x: float):
        self.x = x

    def __call__(self, v) -> float:
        return self.x


def _getter(value, index: dict):
    """A picklable function of the value vector giving one gate parameter."""
    if isinstance(value, Parameter) and value in index:
        return _Column(index[value])
    if isinstance(value, ParameterExpression) and value.parameters:
        return _Expression(value, index)
    return _Constant(_angle(value, "a gate parameter"))


def _base_name(op) -> str | None:
    base = op.base_gate if isinstance(op, ControlledGate) else op
    standard = _STANDARD.get(base.name)
    if standard is None or base.base_class is not standard.base_class:
        return None
    return base.name if base.name in _CLOSED else None


class Template:
    """A parameterised circuit lowered at generic values; ``bind`` gives new matrices."""

    def __init__(self, qc: QuantumCircuit):
        self.parameters = tuple(qc.parameters)
        self.name = qc.name
        index = {p: j for j, p in enumerate(self.parameters)}
        generic = _generic(self.parameters)
        self.generic = np.array([generic[p] for p in self.parameters], dtype=float)
        self.cmap = {bit: qc.find_bit(bit).index for bit in qc.clbits}
        out = Circuit(n_qubits=qc.num_qubits, n_clbits=qc.num_clbits, name=qc.name)
        lw = _Lowerer(out, keep_trivial=True)
        self.slots: list[_Slot] = []
        for inst in qc.data:
            op = inst.operation
            qubits = [qc.find_bit(b).index for b in inst.qubits]
            clbits = [self.cmap[b] for b in inst.clbits]
            if not _parametric(op):
                lw.instruction(op, qubits, clbits, self.cmap, _Context())
                continue
            start, phase0 = len(out.ops), out.global_phase
            lw.instruction(_bound(op, generic), qubits, clbits, self.cmap, _Context())
            closed = None
            name = _base_name(op)
            if name and len(out.ops) == start + 1 and out.global_phase == phase0:
                fn, diagonal = _CLOSED[name]
                if out.ops[start].diagonal == diagonal:
                    closed = (fn, [_getter(v, index) for v in op.params[:_arity(name)]])
            self.slots.append(_Slot(op, qubits, clbits, start, len(out.ops),
                                    out.global_phase - phase0, closed))
        gp = qc.global_phase
        self.phase_getter = _getter(gp, index) if isinstance(gp, ParameterExpression) \
            and gp.parameters else None
        # the phase no value changes: the circuit's own (when fixed) and what fixed
        # instructions contributed
        self.static_phase = out.global_phase - sum(s.phase for s in self.slots) + \
            (0.0 if self.phase_getter else _angle(gp, "the circuit's global phase"))
        out.global_phase = self.static_phase + sum(s.phase for s in self.slots) + \
            (self.phase_getter(self.generic) if self.phase_getter else 0.0)
        self.circuit = out

    def values(self, binding) -> np.ndarray:
        """A value vector in ``parameters`` order from an array (qiskit's sorted order) or
        a mapping {Parameter or name: value}."""
        if isinstance(binding, dict):
            by_name = {getattr(k, "name", k): v for k, v in binding.items()}
            missing = [p.name for p in self.parameters if p.name not in by_name]
            if missing:
                raise CircuitError(f"circuit '{self.name}': no value for parameter(s) "
                                   f"{', '.join(missing)}")
            return np.array([float(by_name[p.name]) for p in self.parameters])
        v = np.asarray(binding, dtype=float).reshape(-1)
        if v.shape[0] != len(self.parameters):
            raise CircuitError(f"circuit '{self.name}' has {len(self.parameters)} parameters, "
                               f"got {v.shape[0]} values")
        return v

    def bind(self, v: np.ndarray) -> tuple[dict[int, np.ndarray], float]:
        """(lowered op index -> new matrix, new global phase) for the value vector ``v``."""
        out: dict[int, np.ndarray] = {}
        phase = self.static_phase
        for s in self.slots:
            if s.closed is not None:
                fn, getters = s.closed
                out[s.start] = np.asarray(fn(*[g(v) for g in getters]), dtype=complex)
                continue
            got = Circuit(n_qubits=self.circuit.n_qubits, n_clbits=self.circuit.n_clbits)
            values = {p: float(v[j]) for j, p in enumerate(self.parameters)}
            _Lowerer(got, keep_trivial=True).instruction(_bound(s.op, values), s.qubits,
                                                         s.clbits, self.cmap, _Context())
            mine = self.circuit.ops[s.start:s.stop]
            if len(got.ops) != len(mine) or any(not _same_shape(a, b)
                                                for a, b in zip(got.ops, mine)):
                raise StructureChanged(f"instruction '{s.op.name}' lowers differently")
            for k, g in enumerate(got.ops):
                if isinstance(g, Gate):
                    out[s.start + k] = g.matrix
            phase += got.global_phase
        if self.phase_getter is not None:
            phase += self.phase_getter(v)
        return out, phase


def _arity(name: str) -> int:
    return 3 if name in ("u", "u3") else 1


def _parametric(op) -> bool:
    for p in getattr(op, "params", ()):
        if isinstance(p, ParameterExpression) and p.parameters:
            return True
        if isinstance(p, QuantumCircuit) and p.parameters:
            return True
    return False


def _bound(op, values: dict):
    """A copy of ``op`` with ``values`` ({Parameter: float}) assigned, through qiskit."""
    qc = QuantumCircuit(op.num_qubits, op.num_clbits)
    qc.append(op, qc.qubits, qc.clbits)
    mine = {p: values[p] for p in qc.parameters}
    qc.assign_parameters(mine, inplace=True)
    return qc.data[0].operation


def _same_shape(a, b) -> bool:
    if not (isinstance(a, Gate) and isinstance(b, Gate)):
        return type(a) is type(b) and a == b
    if (a.targets, a.controls, a.ctrl_values, a.condition) != \
            (b.targets, b.controls, b.ctrl_values, b.condition):
        return False
    return a.diagonal == b.diagonal or not b.diagonal  # diagonal into a dense slot is fine


def fingerprint(qc: QuantumCircuit) -> str:
    """A hash of the circuit's structure: instructions, bits and parameters *as written*
    (a Parameter by name, a number by value).  Two circuits with the same fingerprint
    lower to the same template, so the plan cache keys on it.  A circuit qgt built and
    never changes (the PennyLane device's) carries its fingerprint already."""
    import hashlib

    known = getattr(qc, "_qgt_fingerprint", None)
    if known is not None:
        return known

    h = hashlib.sha256(repr((qc.num_qubits, qc.num_clbits, _param_key(qc.global_phase),
                             [p.name for p in qc.parameters])).encode())
    _feed(h, qc)
    return h.hexdigest()[:24]


def _feed(h, qc: QuantumCircuit) -> None:
    for inst in qc.data:
        op = inst.operation
        h.update(repr((op.name, [qc.find_bit(b).index for b in inst.qubits],
                       [qc.find_bit(b).index for b in inst.clbits])).encode())
        _feed_op(h, op)


def _feed_op(h, op) -> None:
    for p in getattr(op, "params", ()):
        if isinstance(p, QuantumCircuit):
            _feed(h, p)
        elif isinstance(p, np.ndarray):
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(_param_key(p).encode())
    if isinstance(op, ControlledGate):
        h.update(repr(("ctrl", op.num_ctrl_qubits, op.ctrl_state)).encode())
        _feed_op(h, op.base_gate)
    condition = getattr(op, "condition", None)
    if condition is not None:
        h.update(repr(condition).encode())
    standard = _STANDARD.get(op.name)
    if standard is None or op.base_class is not standard.base_class:
        # a custom gate is known by its definition, not its name; one that cannot define
        # itself while unbound is known by its class (its definition is its params').
        # Define a copy: qiskit keeps a gate's definition once built and binds later values
        # into it, so building the user's own gate's definition here, unbound, would fix
        # the branch a value-dependent definition takes for every binding (silently)
        try:
            definition = getattr(copy.copy(op), "definition", None)
        except Exception:  # noqa: BLE001  (user code: any failure means "not now")
            definition = None
        if definition is not None:
            _feed(h, definition)
        h.update(f"{type(op).__module__}.{type(op).__qualname__}".encode())


def _param_key(p) -> str:
    if isinstance(p, ParameterExpression) and p.parameters:
        return f"expr:{p}"
    try:
        return repr(complex(p))
    except (TypeError, ValueError):
        return repr(p)
