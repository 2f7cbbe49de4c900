"""The circuit frontend: spec resolution, OpenQASM reading and lowering to qgt.ops.

Every lowering test runs the lowered circuit on the dense reference simulator
(tests/reference.py) and compares with qiskit's own Statevector of the same QuantumCircuit,
global phase included; circuits with mid-circuit measurements are built so that their
outcomes are certain and compared with an equivalent circuit without them.
"""

import math

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Gate as QiskitGate
from qiskit.circuit import IfElseOp, Parameter
from qiskit.circuit.classical import expr
from qiskit.circuit.library import (
    DiagonalGate,
    GlobalPhaseGate,
    MCPhaseGate,
    MCXGate,
    QFTGate,
    UnitaryGate,
    get_standard_gate_name_mapping,
)
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Operator, Statevector, random_clifford, random_unitary

from qgt.errors import CircuitError
from qgt.frontend import (
    BUILTINS,
    load_circuit,
    load_qiskit,
    lower,
    qft,
    qpe,
    with_measurements,
)
from qgt.ops import Gate, Measure, Reset, Swap
from tests.reference import simulate_reference

pytestmark = pytest.mark.filterwarnings("error")

ATOL = 1e-10
STANDARD = get_standard_gate_name_mapping()
NOT_GATES = {"measure", "reset", "delay", "barrier"}
GATE_NAMES = sorted(n for n in STANDARD if n not in NOT_GATES)


def assert_matches_qiskit(qc: QuantumCircuit):
    """reference(lower(qc)) must equal qiskit's Statevector(qc), global phase included."""
    state, _ = simulate_reference(lower(qc))
    expected = Statevector(qc).data
    np.testing.assert_allclose(state, expected, atol=ATOL, rtol=0)


def entangled_start(n: int, rng) -> QuantumCircuit:
    """A generic entangled state, so that every matrix entry of the gate under test shows."""
    qc = QuantumCircuit(n)
    for q in range(n):
        qc.u(*rng.uniform(0, 2 * math.pi, 3), q)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    for q in range(n):
        qc.ry(rng.uniform(0, 2 * math.pi), q)
    return qc


def standard_gate(name: str, rng):
    gate = STANDARD[name]
    if not gate.params:
        return gate
    return gate.base_class(*rng.uniform(-2 * math.pi, 2 * math.pi, len(gate.params)))


# -- every standard gate -----------------------------------------------------------------


@pytest.mark.parametrize("name", GATE_NAMES)
def test_standard_gate_matches_statevector(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    n = 5
    for _ in range(3):
        qc = entangled_start(n, rng)
        gate = standard_gate(name, rng)
        qubits = [int(q) for q in rng.permutation(n)[: gate.num_qubits]]
        qc.append(gate, qubits)
        assert_matches_qiskit(qc)


@pytest.mark.parametrize("name", GATE_NAMES)
@pytest.mark.parametrize("n_ctrl", [1, 2])
@pytest.mark.parametrize("annotated", [False, True])
def test_controlled_standard_gate_matches_statevector(name, n_ctrl, annotated):
    rng = np.random.default_rng(sum(map(ord, name)) + n_ctrl)
    gate = standard_gate(name, rng)
    n = gate.num_qubits + n_ctrl + 1
    qc = entangled_start(n, rng)
    ctrl_state = int(rng.integers(1 << n_ctrl))
    qubits = [int(q) for q in rng.permutation(n)[: gate.num_qubits + n_ctrl]]
    controlled = gate.control(n_ctrl, ctrl_state=ctrl_state, annotated=annotated)
    qc.append(controlled, qubits)
    assert_matches_qiskit(qc)
    # the controls stay controls of the (one or two) lowered gates
    alone = QuantumCircuit(n)
    alone.append(controlled, qubits)
    ops = lower(alone).ops
    assert len(ops) == (0 if name == "id" else 1 + (name == "cu"))
    if name != "global_phase":  # a controlled phase sits on one of the controls
        for op in ops:
            assert set(qubits[:n_ctrl]) <= set(op.controls)


@pytest.mark.parametrize("ctrl_state", [0b111, 0b101, 0b000, 0b1010, 0b1111])
def test_multi_controlled_x_and_phase(ctrl_state):
    rng = np.random.default_rng(ctrl_state)
    n_ctrl = max(3, ctrl_state.bit_length())
    n = n_ctrl + 2
    qc = entangled_start(n, rng)
    order = [int(q) for q in rng.permutation(n)]
    qc.append(MCXGate(n_ctrl, ctrl_state=ctrl_state), order[: n_ctrl + 1])
    qc.append(MCPhaseGate(rng.uniform(0, 6), n_ctrl, ctrl_state=ctrl_state), order[1:])
    circ = lower(qc)
    mcx, mcp = circ.ops[-2:]
    # controls stay controls: the base gate is a 1-qubit x and a 1-qubit phase
    assert len(mcx.targets) == 1 and len(mcx.controls) == n_ctrl and not mcx.diagonal
    assert len(mcp.targets) == 1 and len(mcp.controls) == n_ctrl and mcp.diagonal
    assert mcx.ctrl_values == tuple((ctrl_state >> i) & 1 for i in range(n_ctrl))
    assert_matches_qiskit(qc)


def test_controlled_custom_gate_with_global_phase():
    rng = np.random.default_rng(5)
    body = QuantumCircuit(2, name="mine", global_phase=0.4)
    body.rx(0.3, 0)
    body.cx(0, 1)
    body.h(1)
    qc = entangled_start(5, rng)
    qc.append(body.to_gate().control(2, ctrl_state=1), [4, 2, 0, 1])
    qc.append(body.to_gate(), [3, 1])
    qc.append(GlobalPhaseGate(0.9).control(1), [2])
    assert_matches_qiskit(qc)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_unitary_gate(k):
    rng = np.random.default_rng(k)
    n = k + 2
    qc = entangled_start(n, rng)
    qubits = [int(q) for q in rng.permutation(n)[:k]]
    qc.append(UnitaryGate(random_unitary(2**k, seed=k)), qubits)
    spare = [q for q in range(n) if q not in qubits]
    qc.append(UnitaryGate(random_unitary(2, seed=k + 10)).control(1), [spare[0], qubits[0]])
    assert_matches_qiskit(qc)


def test_diagonal_gate():
    rng = np.random.default_rng(3)
    qc = entangled_start(5, rng)
    phases = np.exp(1j * rng.uniform(0, 2 * math.pi, 8))
    qc.append(DiagonalGate(list(phases)), [3, 0, 4])
    circ = lower(qc)
    assert circ.ops[-1].diagonal and circ.ops[-1].targets == (3, 0, 4)
    assert_matches_qiskit(qc)


def test_global_phase_is_kept():
    qc = QuantumCircuit(2, global_phase=0.7)
    qc.h(0)
    qc.append(GlobalPhaseGate(-0.2), [])
    qc.u(0.1, 0.2, 0.3, 1)  # u differs from u3 only by a phase
    assert lower(qc).global_phase == pytest.approx(0.5)
    assert_matches_qiskit(qc)


@pytest.mark.parametrize("seed", range(8))
def test_qiskit_random_circuits(seed):
    qc = random_circuit(6, 10, max_operands=4, seed=seed)
    assert_matches_qiskit(qc)


def test_library_gates_without_native_form():
    qc = entangled_start(4, np.random.default_rng(1))
    qc.append(QFTGate(3), [1, 3, 0])
    qc.rcccx(0, 1, 2, 3)
    qc.append(MCXGate(3).inverse(), [3, 2, 1, 0])
    qc.append(random_clifford(2, seed=3), [2, 0])  # no definition: lowered through transpile
    assert_matches_qiskit(qc)


def test_initialize_lowers_to_reset_and_gates():
    target = random_unitary(8, seed=2).data[:, 0]
    qc = QuantumCircuit(3)
    qc.initialize(target, [0, 1, 2])
    circ = lower(qc)
    assert sum(isinstance(op, Reset) for op in circ.ops) == 3
    state, _ = simulate_reference(circ)
    np.testing.assert_allclose(state, target, atol=ATOL)


# -- what the planner relies on -----------------------------------------------------------

DIAGONAL_NAMES = {
    "z",
    "s",
    "sdg",
    "t",
    "tdg",
    "rz",
    "p",
    "u1",
    "cz",
    "cp",
    "crz",
    "cu1",
    "rzz",
    "ccz",
    "cs",
    "csdg",
}


@pytest.mark.parametrize("name", sorted(DIAGONAL_NAMES))
def test_diagonal_gates_are_flagged(name):
    gate = standard_gate(name, np.random.default_rng(0))
    qc = QuantumCircuit(gate.num_qubits)
    qc.append(gate, range(gate.num_qubits))
    (op,) = lower(qc).ops
    assert op.diagonal and op.matrix.shape == (2 ** len(op.targets),)


def test_diagonal_flags_and_controls_are_consistent():
    qc = random_circuit(7, 30, max_operands=4, seed=11)
    extra = random_circuit(5, 10, seed=3)
    for inst in extra.data:
        targets = [extra.find_bit(q).index for q in inst.qubits]
        qc.append(inst.operation.control(2, ctrl_state=2, annotated=True), [5, 6, *targets])
    ops = [op for op in lower(qc).ops if isinstance(op, Gate)]
    assert ops
    for op in ops:
        dim = 2 ** len(op.targets)
        if op.diagonal:
            assert op.matrix.shape == (dim,)
        else:
            assert op.matrix.shape == (dim, dim)
            # a dense matrix kept dense must have a non-zero off-diagonal entry
            assert np.any(op.matrix[~np.eye(dim, dtype=bool)])
        assert len(op.controls) == len(op.ctrl_values)
        assert not set(op.controls) & set(op.targets)


def test_controls_are_not_folded_into_the_matrix():
    qc = QuantumCircuit(4)
    qc.cp(0.3, 0, 1)
    qc.ccx(0, 1, 2)
    qc.cswap(3, 0, 2)
    qc.swap(1, 3)
    cp, ccx, cswap, swap = lower(qc).ops
    assert (cp.targets, cp.controls, cp.diagonal) == ((1,), (0,), True)
    assert (ccx.targets, ccx.controls, ccx.diagonal) == ((2,), (0, 1), False)
    assert (cswap.targets, cswap.controls) == ((0, 2), (3,))
    assert swap == Swap(1, 3)


# -- classical control ------------------------------------------------------------------


def prepare_and_measure(value: int, k: int, n: int) -> QuantumCircuit:
    """Qubits 0..k-1 hold ``value`` and are measured into register c: a certain outcome."""
    q = QuantumRegister(n, "q")
    c = ClassicalRegister(k, "c")
    qc = QuantumCircuit(q, c)
    for i in range(k):
        if (value >> i) & 1:
            qc.x(i)
    qc.measure(range(k), c)
    return qc


def without_control_flow(value: int, k: int, n: int, then_ops, else_ops, taken: bool):
    qc = QuantumCircuit(n)
    for i in range(k):
        if (value >> i) & 1:
            qc.x(i)
    for op in then_ops if taken else else_ops:
        op(qc)
    return qc


@pytest.mark.parametrize("value", range(8))
def test_if_else_on_register(value):
    k, n = 3, 5
    then_ops = [lambda qc: qc.h(3), lambda qc: qc.cx(3, 4)]
    else_ops = [lambda qc: qc.ry(0.4, 4), lambda qc: qc.swap(3, 4)]
    qc = prepare_and_measure(value, k, n)
    with qc.if_test((qc.cregs[0], 5)) as otherwise:
        for op in then_ops:
            op(qc)
    with otherwise:
        for op in else_ops:
            op(qc)
    state, clbits = simulate_reference(lower(qc), rng=0)
    expected = without_control_flow(value, k, n, then_ops, else_ops, value == 5)
    assert clbits == value
    np.testing.assert_allclose(state, Statevector(expected).data, atol=ATOL)


@pytest.mark.parametrize("value", range(4))
def test_if_on_clbit_expressions_and_nesting(value):
    k, n = 2, 4
    qc = prepare_and_measure(value, k, n)
    c = qc.cregs[0]
    with qc.if_test(expr.logic_not(c[0])):
        qc.x(2)
    with qc.if_test(expr.not_equal(c, 2)):
        qc.rx(0.3, 3)
        with qc.if_test((c[1], True)):
            qc.z(3)
    expected = QuantumCircuit(n)
    for i in range(k):
        if (value >> i) & 1:
            expected.x(i)
    if not value & 1:
        expected.x(2)
    if value != 2:
        expected.rx(0.3, 3)
        if value & 2:
            expected.z(3)
    state, _ = simulate_reference(lower(qc), rng=0)
    np.testing.assert_allclose(state, Statevector(expected).data, atol=ATOL)


@pytest.mark.parametrize("value", [0, 1])
def test_if_body_global_phase_is_conditional(value):
    qc = prepare_and_measure(value, 1, 2)
    body = QuantumCircuit([qc.qubits[1]], global_phase=0.5)
    body.h(qc.qubits[1])
    qc.append(IfElseOp((qc.clbits[0], 1), body), [qc.qubits[1]], [])
    expected = QuantumCircuit(2, global_phase=0.5 * value)
    if value:
        expected.x(0)
        expected.h(1)
    state, _ = simulate_reference(lower(qc), rng=0)
    np.testing.assert_allclose(state, Statevector(expected).data, atol=ATOL)


def test_qasm2_classical_condition(tmp_path):
    path = tmp_path / "cond.qasm"
    path.write_text(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
        "x q[0];\nmeasure q[0] -> c[0];\nif(c==1) h q[1];\nif(c==2) x q[1];\n"
    )
    state, clbits = simulate_reference(load_circuit(str(path)), rng=0)
    expected = QuantumCircuit(2)
    expected.x(0)
    expected.h(1)
    assert clbits == 1
    np.testing.assert_allclose(state, Statevector(expected).data, atol=ATOL)


def test_measure_and_reset_are_lowered():
    qc = QuantumCircuit(2, 2)
    qc.x(0)
    qc.measure(0, 1)
    qc.reset(0)
    qc.measure(1, 0)
    ops = lower(qc).ops
    assert ops[1:] == [Measure(0, 1), Reset(0), Measure(1, 0)]
    state, clbits = simulate_reference(lower(qc), rng=0)
    assert clbits == 0b10 and abs(state[0]) == pytest.approx(1)


# -- built-ins ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "qft:5",
        "ghz:6",
        "qpe:6",
        "qpe:4:0.3",
        "trotter:5:3",
        "trotter:4:2:0.25",
        "qaoa:5:2",
        "qaoa:2:1:7",
        "random:5:6",
        "random:4:5:9",
    ],
)
def test_builtins_match_statevector(spec):
    qc = load_qiskit(spec)
    unmeasured = qc.remove_final_measurements(inplace=False)
    assert_matches_qiskit(unmeasured)
    assert load_circuit(spec).n_qubits == qc.num_qubits


def test_builtin_measurements():
    assert sum(isinstance(op, Measure) for op in load_circuit("ghz:5").ops) == 5
    assert sum(isinstance(op, Measure) for op in load_circuit("random:4:3").ops) == 4
    assert sum(isinstance(op, Measure) for op in load_circuit("qpe:5").ops) == 4
    assert not any(isinstance(op, Measure) for op in load_circuit("qft:5").ops)
    measured = with_measurements(load_qiskit("qft:5"))
    assert sum(isinstance(op, Measure) for op in lower(measured).ops) == 5
    ghz = load_qiskit("ghz:3")
    assert with_measurements(ghz) is ghz


def test_qft_is_qiskits_qft():
    np.testing.assert_allclose(Operator(qft(4)).data, Operator(QFTGate(4)).data, atol=ATOL)


def test_qpe_finds_the_phase():
    phase = 0.1234
    qc = qpe(7, phase, measure=False)
    probs = Statevector(qc).probabilities(list(range(6)))
    assert int(np.argmax(probs)) == round(phase * 2**6)


def test_builtins_are_deterministic():
    for spec in ("random:5:4:3", "qaoa:4:2:1"):
        a, b = load_circuit(spec), load_circuit(spec)
        assert len(a.ops) == len(b.ops)
        assert all(
            np.array_equal(x.matrix, y.matrix)
            for x, y in zip(a.ops, b.ops, strict=True)
            if isinstance(x, Gate)
        )


# -- OpenQASM ----------------------------------------------------------------------------

QASM2 = """// a comment before the header
OPENQASM 2.0;
include "qelib1.inc";
gate mygate(theta) a, b { rx(theta) a; cx a, b; u1(theta/2) b; }
qreg q[3];
creg c[3];
h q[0];
cu1(pi/3) q[0], q[2];
u3(0.1, 0.2, 0.3) q[1];
mygate(0.7) q[2], q[1];
ccx q[0], q[1], q[2];
rzz(0.4) q[0], q[2];
swap q[0], q[1];
"""

QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
gate twist(t) a, b { ry(t) a; cz a, b; }
qubit[3] q;
h q[0];
cp(pi/5) q[0], q[1];
twist(0.3) q[1], q[2];
U(0.1, 0.2, 0.3) q[2];
ctrl @ x q[2], q[0];
negctrl @ h q[1], q[0];
"""


@pytest.mark.parametrize("source", [QASM2, QASM3], ids=["qasm2", "qasm3"])
def test_qasm_files(tmp_path, source):
    path = tmp_path / "circ.qasm"
    path.write_text(source)
    qc = load_qiskit(str(path))
    assert qc.num_qubits == 3 and qc.name == "circ"
    assert_matches_qiskit(qc)
    assert load_circuit(path).n_qubits == 3  # a pathlib.Path works too


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,message",
    [
        ("qtf:10", "unknown circuit 'qtf:10' (did you mean 'qft'?): built-ins are qft:N"),
        ("bogus", "random:N:DEPTH[:SEED]"),
        ("qft:x", "qft:x: N must be an integer >= 1, got 'x'"),
        ("qft:0", "N must be an integer >= 1"),
        ("qft", "expected qft:N"),
        ("qft:3:4", "expected qft:N"),
        ("random:4", "expected random:N:DEPTH[:SEED]"),
        ("qpe:1", "N must be an integer >= 2"),
        ("trotter:4:2:nan", "DT must be a number"),
        ("qaoa:4:1.5", "LAYERS must be an integer"),
        ("", "empty circuit spec"),
        ("nothere/circ.qasm", "circuit file not found: 'nothere/circ.qasm'"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(CircuitError) as err:
        load_qiskit(spec)
    assert message in str(err.value)


def test_every_builtin_is_listed_in_errors():
    with pytest.raises(CircuitError) as err:
        load_circuit("nope:3")
    for name in BUILTINS:
        assert f"{name}:N" in str(err.value)


@pytest.mark.parametrize(
    "source,message",
    [
        (
            'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0]\ncx q[0],q[1];\n',
            "OpenQASM 2 parse error",
        ),
        (
            'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\ncx q[0] q[1];\n',
            "line 4, column 9",
        ),
        ('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nfoo q[0];\n', "'foo'"),
        ("OPENQASM 4.0;\n", "OpenQASM version 4 is not supported"),
    ],
)
def test_bad_qasm(tmp_path, source, message):
    path = tmp_path / "bad.qasm"
    path.write_text(source)
    with pytest.raises(CircuitError) as err:
        load_qiskit(str(path))
    assert message in str(err.value) and "bad.qasm" in str(err.value)


def test_unsupported_instructions():
    qc = QuantumCircuit(2)
    qc.append(QiskitGate("blackbox", 2, []), [0, 1])
    with pytest.raises(CircuitError, match="'blackbox'"):
        lower(qc)

    qc = QuantumCircuit(1, 1)
    with qc.for_loop(range(2)):
        qc.x(0)
    with pytest.raises(CircuitError, match="control flow 'for_loop' is not supported"):
        lower(qc)

    qc = QuantumCircuit(1, 1)
    with qc.if_test((qc.clbits[0], 1)):
        qc.measure(0, 0)
    with pytest.raises(CircuitError, match="'measure' under a condition"):
        lower(qc)

    qc = QuantumCircuit(7)
    qc.append(UnitaryGate(random_unitary(2**7, seed=1)), range(7))
    with pytest.raises(CircuitError, match="'unitary' on 7 qubits: at most 6"):
        lower(qc)

    qc = QuantumCircuit(1)
    qc.rx(Parameter("theta"), 0)
    with pytest.raises(CircuitError, match=r"unbound parameters \(theta\)"):
        lower(qc)

    with pytest.raises(CircuitError, match="got int"):
        load_circuit(42)
