"""Lower a qiskit ``QuantumCircuit`` to qgt's internal ``qgt.ops.Circuit``.

Called by ``qgt.frontend.load.load_circuit`` (and by tests).  This and the rest of
``qgt.frontend`` are the only modules that import qiskit.

What the planner needs from a gate is its target qubits, its controls and whether its matrix
is diagonal (the rules that decide what moves between tiers), so lowering keeps that
structure:

- a ``ControlledGate`` (cx, cp, ccx, mcx, mcp, cswap, any ``gate.control(k)``) becomes its
  base gate plus controls and control values, never one bigger matrix;
- a gate whose matrix has no non-zero off-diagonal entry is flagged diagonal and carries only
  its diagonal (rz, p, cz, cp, rzz, ccz, mcp, ``DiagonalGate``, ...);
- swap becomes ``qgt.ops.Swap`` (a relabelling); barrier, delay and id vanish;
- any other gate is lowered through its ``definition``, and failing that, through qiskit's
  ``transpile`` to the standard gates; whatever remains is refused with a ``CircuitError``
  that names the instruction.

Classical control: ``if_else`` bodies are lowered with a ``qgt.ops.Condition``.  A Condition
can only say "these clbits read this value", so an else branch or a ``!=`` test is spelt as
a few mutually exclusive Conditions, the body repeated under each (k copies for a k-bit
register: "bit 0 differs", "bit 0 matches and bit 1 differs", ...).
"""

from __future__ import annotations

import cmath
from dataclasses import dataclass

import numpy as np
import qiskit.circuit as qk
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import (
    AnnotatedOperation,
    BoxOp,
    ClassicalRegister,
    Clbit,
    ControlFlowOp,
    ControlledGate,
    ControlModifier,
    IfElseOp,
    InverseModifier,
    ParameterExpression,
    PowerModifier,
)
from qiskit.circuit.classical import expr, types
from qiskit.circuit.library import (
    CUGate,
    DiagonalGate,
    GlobalPhaseGate,
    IGate,
    SwapGate,
    UGate,
    UnitaryGate,
    get_standard_gate_name_mapping,
)

from qgt.errors import CircuitError, InternalError
from qgt.ops import Circuit, Condition, Gate, Measure, Reset, Swap

# Dense unitaries beyond this many qubits would make a 2^k x 2^k block the planner cannot
# fuse or place in a page sensibly; the user should decompose them.
MAX_UNITARY_QUBITS = 6

# Definitions nest (a library gate defined by another library gate ...); a real circuit
# never gets close, so hitting this means a self-referential definition.
_MAX_DEPTH = 64

_STANDARD = get_standard_gate_name_mapping()
# Names that lowering does not turn into a matrix but handles on its own.
_STRUCTURAL = {"measure", "reset", "barrier", "delay", "global_phase", "swap", "id"}
# Standard gates taken as a matrix straight from ``to_matrix()``; controlled standard gates
# are reduced to their base gate first, so only uncontrolled ones are listed here.
_NATIVE_MATRIX = {
    name
    for name, gate in _STANDARD.items()
    if isinstance(gate, qk.Gate)
    and not isinstance(gate, ControlledGate)
    and name not in _STRUCTURAL
}
# The basis handed to transpile when a gate has no definition of its own.
_TRANSPILE_BASIS = sorted(set(_STANDARD) - {"delay"})

_ExprOp = expr.Binary.Op


@dataclass(frozen=True)
class _Context:
    """What surrounds an instruction: controls added by enclosing ControlledGates and the
    classical condition (a conjunction of clbit == bit pairs) of enclosing if_else blocks."""

    controls: tuple[int, ...] = ()
    ctrl_values: tuple[int, ...] = ()
    requires: tuple[tuple[int, int], ...] = ()
    depth: int = 0

    def controlled(self, qubits, values) -> _Context:
        return _Context(
            self.controls + tuple(qubits),
            self.ctrl_values + tuple(values),
            self.requires,
            self.depth + 1,
        )

    def deeper(self) -> _Context:
        return _Context(self.controls, self.ctrl_values, self.requires, self.depth + 1)

    def conditioned(self, pairs) -> _Context | None:
        """Add clbit == bit requirements; None if they contradict the ones already held
        (the block can never run)."""
        have = dict(self.requires)
        merged = list(self.requires)
        for clbit, bit in pairs:
            if clbit in have:
                if have[clbit] != bit:
                    return None
                continue
            have[clbit] = bit
            merged.append((clbit, bit))
        return _Context(self.controls, self.ctrl_values, tuple(merged), self.depth + 1)

    @property
    def condition(self) -> Condition | None:
        if not self.requires:
            return None
        clbits = tuple(c for c, _ in self.requires)
        value = sum(bit << i for i, (_, bit) in enumerate(self.requires))
        return Condition(clbits, value)


def lower(qc: QuantumCircuit) -> Circuit:
    """Lower ``qc`` to a ``qgt.ops.Circuit`` with the same qubit and clbit numbering.

    Raises ``CircuitError`` for unbound parameters and instructions qgt cannot simulate.
    """
    if not isinstance(qc, QuantumCircuit):
        raise CircuitError(f"expected a qiskit QuantumCircuit, got {type(qc).__name__}")
    if qc.parameters:
        names = ", ".join(sorted(p.name for p in qc.parameters))
        raise CircuitError(
            f"circuit '{qc.name}' has unbound parameters ({names}): "
            "bind them with assign_parameters() first"
        )
    out = Circuit(
        n_qubits=qc.num_qubits,
        n_clbits=qc.num_clbits,
        name=qc.name,
        global_phase=_angle(qc.global_phase, "the circuit's global phase"),
    )
    qmap = {bit: qc.find_bit(bit).index for bit in qc.qubits}
    cmap = {bit: qc.find_bit(bit).index for bit in qc.clbits}
    _Lowerer(out).block(qc, qmap, cmap, _Context())
    return out


def _angle(value, what: str) -> float:
    if isinstance(value, ParameterExpression):
        if value.parameters:
            raise CircuitError(f"{what} depends on unbound parameters {set(value.parameters)}")
        value = complex(value)
        if value.imag:
            raise CircuitError(f"{what} is not real: {value}")
        value = value.real
    return float(value)


class _Lowerer:
    """Appends lowered operations to ``out``; one instance per ``lower()`` call."""

    def __init__(self, out: Circuit, keep_trivial: bool = False):
        self.out = out
        # templates (qgt.frontend.params) keep a zero phase as a gate, so that the ops an
        # instruction lowers to do not depend on its parameter values
        self.keep_trivial = keep_trivial

    # -- walking circuits -------------------------------------------------------------

    def block(self, qc: QuantumCircuit, qmap: dict, cmap: dict, ctx: _Context) -> None:
        for inst in qc.data:
            qubits = [qmap[b] for b in inst.qubits]
            clbits = [cmap[b] for b in inst.clbits]
            self.instruction(inst.operation, qubits, clbits, cmap, ctx)

    def sub_block(self, body: QuantumCircuit, qubits, clbits, ctx: _Context) -> None:
        """Lower ``body`` whose bits stand, in order, for ``qubits`` and ``clbits``."""
        if ctx.depth > _MAX_DEPTH:
            raise CircuitError(
                f"instruction definitions nest more than {_MAX_DEPTH} deep in '{body.name}'"
            )
        qmap = dict(zip(body.qubits, qubits, strict=True))
        cmap = dict(zip(body.clbits, clbits, strict=True))
        # a definition's (or a control-flow body's) global phase is only global to the body
        self.phase(_angle(body.global_phase, f"the global phase of '{body.name}'"), ctx)
        self.block(body, qmap, cmap, ctx)

    def instruction(self, op, qubits, clbits, cmap, ctx: _Context, name=None) -> None:
        kind = op.name
        if isinstance(op, (qk.Barrier, qk.Delay, IGate)):
            return
        if isinstance(op, IfElseOp):
            self.if_else(op, qubits, clbits, cmap, ctx)
        elif isinstance(op, BoxOp):
            # a box only scopes its body (for timing and annotations): run the body inline
            self.sub_block(op.blocks[0], qubits, clbits, ctx.deeper())
        elif isinstance(op, ControlFlowOp):
            raise CircuitError(
                f"control flow '{kind}' is not supported (only if_else, with a condition "
                "on a clbit or a classical register)"
            )
        elif isinstance(op, (qk.Measure, qk.Reset)):
            self.collapse(op, qubits, clbits, ctx)
        elif isinstance(op, GlobalPhaseGate):
            self.phase(_angle(op.params[0], "a global_phase gate"), ctx)
        elif isinstance(op, ControlledGate) and (
            op.num_qubits == op.num_ctrl_qubits + op.base_gate.num_qubits
        ):
            self.controlled(op, qubits, cmap, ctx, name)
        elif isinstance(op, AnnotatedOperation):
            self.annotated(op, qubits, clbits, cmap, ctx)
        elif isinstance(op, SwapGate):
            if ctx.controls:
                self.emit(name or "swap", qubits, op.to_matrix(), ctx)
            else:
                self.out.ops.append(Swap(qubits[0], qubits[1], condition=ctx.condition))
        elif isinstance(op, DiagonalGate):
            diag = np.asarray(op.params, dtype=complex)
            self.emit(name or "diagonal", qubits, diag, ctx, diagonal=True)
        elif isinstance(op, UnitaryGate):
            if op.num_qubits > MAX_UNITARY_QUBITS:
                raise CircuitError(
                    f"'unitary' on {op.num_qubits} qubits: at most {MAX_UNITARY_QUBITS} are "
                    "supported; decompose it (e.g. with qiskit.transpile) first"
                )
            self.emit(name or "unitary", qubits, op.to_matrix(), ctx)
        elif kind in _NATIVE_MATRIX and op.base_class is _STANDARD[kind].base_class:
            self.emit(name or kind, qubits, self.matrix_of(op), ctx)
        else:
            self.defined(op, qubits, clbits, ctx)

    def controlled(self, op: ControlledGate, qubits, cmap, ctx: _Context, name) -> None:
        n_ctrl = op.num_ctrl_qubits
        inner = ctx.controlled(qubits[:n_ctrl], _bits(op.ctrl_state, n_ctrl))
        base = op.base_gate
        if isinstance(op, CUGate):
            # cu's fourth parameter gamma is a phase on the controlled block that its
            # base gate (a plain u) does not carry
            self.phase(_angle(op.params[3], "the gamma of a cu gate"), inner)
        elif isinstance(base, UGate) and len(base.params) == 4:
            # a cu controlled further keeps gamma as a fourth parameter of its base u
            self.phase(_angle(base.params[3], "the gamma of a controlled cu gate"), inner)
            base = UGate(*base.params[:3])
        standard = _STANDARD.get(base.name)
        if (
            standard is not None
            and base.base_class is standard.base_class
            and len(base.params) != len(standard.params)
        ):
            # some other inconsistent base gate: trust the definition instead
            self.defined(op, qubits, [], ctx)
            return
        self.instruction(base, qubits[n_ctrl:], [], cmap, inner, name=name or op.name)

    def annotated(self, op: AnnotatedOperation, qubits, clbits, cmap, ctx: _Context) -> None:
        """``gate.control(k)`` gives an AnnotatedOperation from Qiskit 3 on: its control
        modifiers become controls (the last modifier's controls come first in the qubit
        list), inverse and power modifiers act on the base, with which controls commute."""
        controls: list[int] = []
        values: list[int] = []
        for modifier in reversed(op.modifiers):
            if isinstance(modifier, ControlModifier):
                k = modifier.num_ctrl_qubits
                controls += qubits[len(controls) : len(controls) + k]
                values += _bits(modifier.ctrl_state, k)
        base = op.base_op
        try:
            for modifier in op.modifiers:
                if isinstance(modifier, InverseModifier):
                    base = base.inverse()
                elif isinstance(modifier, PowerModifier):
                    base = base.power(modifier.power)
        except Exception:  # no closed form for this base: let qiskit synthesise it
            base = None
        if base is None or any(
            not isinstance(m, (ControlModifier, InverseModifier, PowerModifier))
            for m in op.modifiers
        ):
            self.defined(op, qubits, clbits, ctx)
            return
        inner = ctx.controlled(controls, values)
        self.instruction(base, qubits[len(controls) :], clbits, cmap, inner)

    def defined(self, op, qubits, clbits, ctx: _Context) -> None:
        """Lower ``op`` through its definition, or failing that through transpile."""
        definition = getattr(op, "definition", None)
        if definition is None:
            self.transpiled(op, qubits, clbits, ctx)
            return
        self.sub_block(definition, qubits, clbits, ctx.deeper())

    def transpiled(self, op, qubits, clbits, ctx: _Context) -> None:
        """Last resort for an instruction without a definition: qiskit's equivalence library."""
        single = QuantumCircuit(len(qubits), len(clbits))
        try:
            single.append(op, single.qubits, single.clbits)
            basic = transpile(single, basis_gates=_TRANSPILE_BASIS, optimization_level=0)
        except Exception as exc:  # qiskit raises many types; all mean "cannot decompose"
            raise CircuitError(
                f"cannot simulate instruction '{op.name}' on {len(qubits)} qubit(s): it has "
                f"no definition and qiskit cannot decompose it ({exc})"
            ) from exc
        if any(inst.operation.name == op.name for inst in basic.data):
            raise CircuitError(f"cannot simulate instruction '{op.name}': it has no definition")
        self.sub_block(basic, qubits, clbits, ctx.deeper())

    # -- classical control --------------------------------------------------------------

    def if_else(self, op: IfElseOp, qubits, clbits, cmap, ctx: _Context) -> None:
        true_terms, false_terms = _condition_terms(op.condition, cmap)
        true_body, false_body = op.blocks[0], op.blocks[1] if len(op.blocks) > 1 else None
        for body, terms in ((true_body, true_terms), (false_body, false_terms)):
            if body is None:
                continue
            for pairs in terms:
                inner = ctx.conditioned(pairs)
                if inner is not None:
                    self.sub_block(body, qubits, clbits, inner)

    def collapse(self, op, qubits, clbits, ctx: _Context) -> None:
        if ctx.controls or ctx.requires:
            where = "under a condition (if_else)" if ctx.requires else "inside a controlled gate"
            raise CircuitError(f"'{op.name}' {where} is not supported")
        if isinstance(op, qk.Measure):
            self.out.ops.append(Measure(qubits[0], clbits[0]))
        else:
            self.out.ops.append(Reset(qubits[0]))

    # -- emitting -----------------------------------------------------------------------

    def phase(self, angle: float, ctx: _Context) -> None:
        """A global phase; under controls or a condition it is no longer global and becomes
        a diagonal gate on one control (or on qubit 0, for a classically conditioned one)."""
        if angle == 0.0 and not (self.keep_trivial and (ctx.controls or ctx.requires)):
            return
        if not ctx.controls and not ctx.requires:
            self.out.global_phase += angle
            return
        e = cmath.exp(1j * angle)
        if ctx.controls:
            target, value = ctx.controls[-1], ctx.ctrl_values[-1]
            diag = [1.0, e] if value else [e, 1.0]
            rest = _Context(ctx.controls[:-1], ctx.ctrl_values[:-1], ctx.requires, ctx.depth)
            self.emit("phase", [target], np.asarray(diag, dtype=complex), rest, diagonal=True)
        elif self.out.n_qubits > 0:
            self.emit("global_phase", [0], np.asarray([e, e]), ctx, diagonal=True)

    def emit(self, name, targets, matrix, ctx: _Context, diagonal: bool = False) -> None:
        """Append one Gate; a dense matrix without off-diagonal entries is stored as its
        diagonal (exact zeros only, so no rounding is ever introduced)."""
        matrix = np.asarray(matrix, dtype=complex)
        dim = 1 << len(targets)
        expected = (dim,) if diagonal else (dim, dim)
        if matrix.shape != expected:
            raise InternalError(f"gate '{name}' on {len(targets)} qubits has {matrix.shape}")
        if not diagonal and not np.any(matrix[~np.eye(dim, dtype=bool)]):
            matrix, diagonal = np.diagonal(matrix).copy(), True
        self.out.ops.append(
            Gate(
                name=name,
                targets=tuple(targets),
                matrix=matrix,
                diagonal=diagonal,
                controls=ctx.controls,
                ctrl_values=ctx.ctrl_values,
                condition=ctx.condition,
            )
        )

    @staticmethod
    def matrix_of(op) -> np.ndarray:
        try:
            return np.asarray(op.to_matrix(), dtype=complex)
        except Exception as exc:  # e.g. a parameter that is not a number
            raise CircuitError(f"cannot compute the matrix of '{op.name}': {exc}") from exc


def _bits(value: int, k: int) -> list[int]:
    return [(value >> i) & 1 for i in range(k)]


def _condition_terms(condition, cmap) -> tuple[list, list]:
    """Return (when true, when false) as lists of mutually exclusive conjunctions, each a
    tuple of (clbit index, bit) pairs."""
    if isinstance(condition, tuple):
        target, value = condition
        return _equal_terms(target, value, cmap)
    if isinstance(condition, expr.Expr):
        return _expr_terms(condition, cmap)
    raise CircuitError(f"unsupported if_else condition {condition!r}")


def _expr_terms(node, cmap) -> tuple[list, list]:
    if isinstance(node, expr.Var) and isinstance(node.var, Clbit):
        return _equal_terms(node.var, 1, cmap)
    if isinstance(node, expr.Unary) and node.op is expr.Unary.Op.LOGIC_NOT:
        when_true, when_false = _expr_terms(node.operand, cmap)
        return when_false, when_true
    if isinstance(node, expr.Binary) and node.op in (_ExprOp.EQUAL, _ExprOp.NOT_EQUAL):
        left, right = node.left, node.right
        if isinstance(left, expr.Value):
            left, right = right, left
        # widening casts of a register (Uint(k) -> Uint(m)) do not change its value
        while isinstance(left, expr.Cast) and isinstance(left.type, types.Uint):
            left = left.operand
        if (
            isinstance(left, expr.Var)
            and isinstance(left.var, (Clbit, ClassicalRegister))
            and isinstance(right, expr.Value)
        ):
            when_true, when_false = _equal_terms(left.var, int(right.value), cmap)
            if node.op is _ExprOp.NOT_EQUAL:
                return when_false, when_true
            return when_true, when_false
    if isinstance(node, expr.Cast) and isinstance(node.operand, expr.Var):
        operand = node.operand.var
        if isinstance(operand, ClassicalRegister):
            # a register read as a bool: true when non-zero
            when_zero, when_nonzero = _equal_terms(operand, 0, cmap)
            return when_nonzero, when_zero
    raise CircuitError(
        f"unsupported if_else condition {node}: qgt supports a clbit or a classical register "
        "compared (== or !=) with a constant, and its negation"
    )


def _equal_terms(target, value, cmap) -> tuple[list, list]:
    if isinstance(target, Clbit):
        bits = [cmap[target]]
    elif isinstance(target, ClassicalRegister):
        bits = [cmap[b] for b in target]
    else:
        raise CircuitError(f"unsupported if_else condition on {target!r}")
    value = int(value)
    if value < 0 or value >> len(bits):
        return [], [()]  # the register can never hold that value
    want = [(value >> i) & 1 for i in range(len(bits))]
    when_true = [tuple(zip(bits, want, strict=True))]
    # "differs" split into disjoint cases by the first differing bit
    when_false = [
        tuple(zip(bits[:i], want[:i], strict=True)) + ((bits[i], 1 - want[i]),)
        for i in range(len(bits))
    ]
    return when_true, when_false
