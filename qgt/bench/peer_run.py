"""One peer simulator on one OpenQASM gate list, in its own process (``qgt bench --peers``).

    python -m qgt.bench.peer_run PEER FILE.qasm THREADS [SETTING]

prints one JSON line: the seconds of the simulation call only (imports, parsing and the
peer's circuit construction excluded), final state from |0...0>, no sampling.  The gate
lists use only ``qgt.bench.peer_suite.BASIS``, which every peer has natively.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def _gates(path: str):
    """(name, qubits, params) per gate of the OpenQASM file, and the qubit count."""
    from qiskit import qasm2

    qc = qasm2.load(path, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    out = [(ins.operation.name, tuple(qc.find_bit(q).index for q in ins.qubits),
            tuple(float(p) for p in ins.operation.params), ins.operation)
           for ins in qc.data if ins.operation.name not in ("barrier", "measure")]
    return out, qc.num_qubits


def _msb_first(psi, n: int) -> np.ndarray:
    """A state whose first qubit is the most significant, in Qiskit's order."""
    return np.asarray(psi).reshape((2,) * n).transpose(range(n - 1, -1, -1)).reshape(-1)


def run(peer: str, path: str, threads: int, setting: str = "") -> tuple[float, np.ndarray]:
    """(seconds of the simulation call, final state in Qiskit's bit order)."""
    gates, n = _gates(path)
    return PEERS[peer](gates, n, threads, setting)


def _aer(gates, n, threads, setting):
    from qiskit import QuantumCircuit
    from qiskit_aer import AerSimulator

    qc = QuantumCircuit(n)
    for _, qs, _, op in gates:
        qc.append(op, qs)
    qc.save_statevector()
    sim = AerSimulator(method="statevector", max_parallel_threads=threads,
                       fusion_enable=setting != "nofusion")
    t = time.perf_counter()
    res = sim.run(qc, shots=1).result()
    elapsed = time.perf_counter() - t
    if not res.success:
        raise RuntimeError(res.status)
    return elapsed, np.asarray(res.get_statevector())


def _cirq_circuit(gates):
    import cirq

    q = cirq.LineQubit.range(max(max(g[1]) for g in gates) + 1)
    ops = []
    for name, qs, ps, op in gates:
        on = [q[i] for i in reversed(qs)]  # cirq: first qubit is the most significant
        if name == "h":
            ops.append(cirq.H(*on))
        elif name == "x":
            ops.append(cirq.X(*on))
        elif name == "cx":
            ops.append(cirq.CNOT(q[qs[0]], q[qs[1]]))
        elif name == "swap":
            ops.append(cirq.SWAP(*on))
        elif name == "rx":
            ops.append(cirq.rx(ps[0])(*on))
        elif name == "ry":
            ops.append(cirq.ry(ps[0])(*on))
        elif name == "rz":
            ops.append(cirq.rz(ps[0])(*on))
        elif name == "cp":
            ops.append(cirq.CZPowGate(exponent=ps[0] / np.pi)(*on))
        elif name == "rzz":
            ops.append(cirq.ZZPowGate(exponent=ps[0] / np.pi, global_shift=-0.5)(*on))
        else:  # u: its matrix
            ops.append(cirq.MatrixGate(np.asarray(op.to_matrix())).on(*on))
    return cirq.Circuit(ops), q


def _qsim(gates, n, threads, setting):
    import qsimcirq

    circuit, _ = _cirq_circuit(gates)
    sim = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(cpu_threads=threads,
                                                      max_fused_gate_size=int(setting or 4)))
    t = time.perf_counter()
    res = sim.simulate(circuit)
    return time.perf_counter() - t, _msb_first(res.final_state_vector, n)


def _lightning(gates, n, threads, setting):
    import pennylane as qml

    dev = qml.device("lightning.qubit", wires=n)
    table = {"h": qml.Hadamard, "x": qml.PauliX, "rx": qml.RX, "ry": qml.RY, "rz": qml.RZ,
             "u": qml.U3, "cx": qml.CNOT, "cp": qml.ControlledPhaseShift, "rzz": qml.IsingZZ,
             "swap": qml.SWAP}

    @qml.qnode(dev)
    def circuit():
        for name, qs, ps, _ in gates:
            table[name](*ps, wires=list(qs))
        return qml.state()

    t = time.perf_counter()
    psi = circuit()
    return time.perf_counter() - t, _msb_first(psi, n)


def _qulacs(gates, n, threads, setting):
    from qulacs import QuantumCircuit, QuantumState
    from qulacs import gate as qg
    from qulacs.circuit import QuantumCircuitOptimizer

    qc = QuantumCircuit(n)
    for name, qs, ps, op in gates:
        if name == "h":
            qc.add_gate(qg.H(qs[0]))
        elif name == "x":
            qc.add_gate(qg.X(qs[0]))
        elif name == "cx":
            qc.add_gate(qg.CNOT(qs[0], qs[1]))
        elif name == "swap":
            qc.add_gate(qg.SWAP(qs[0], qs[1]))
        elif name in ("rx", "ry", "rz"):  # qulacs rotates by exp(+i a P / 2)
            qc.add_gate(getattr(qg, name.upper())(qs[0], -ps[0]))
        elif name == "u":
            qc.add_gate(qg.U3(qs[0], *ps))
        elif name == "cp":  # a phase on the target, controlled: qulacs' fast path
            g = qg.DenseMatrix(qs[1], np.diag([1, np.exp(1j * ps[0])]))
            g.add_control_qubit(qs[0], 1)
            qc.add_gate(g)
        else:  # rzz: its diagonal (qubit 0 least significant, as in qulacs)
            qc.add_gate(qg.DiagonalMatrix(list(qs), np.diag(np.asarray(op.to_matrix()))))
    if setting == "light":
        QuantumCircuitOptimizer().optimize_light(qc)
    state = QuantumState(n)
    t = time.perf_counter()
    qc.update_quantum_state(state)
    return time.perf_counter() - t, state.get_vector()


PEERS = {"aer": _aer, "qsim": _qsim, "lightning": _lightning, "qulacs": _qulacs}
# each peer's settings: the best one counts
SETTINGS = {"aer": ("fusion",), "qsim": ("2", "4"), "lightning": ("",),
            "qulacs": ("", "light")}
MODULES = {"aer": "qiskit_aer", "qsim": "qsimcirq", "lightning": "pennylane_lightning",
           "qulacs": "qulacs"}


def main(argv=None) -> int:
    peer, path, threads, *rest = argv if argv is not None else sys.argv[1:]
    seconds, _ = run(peer, path, int(threads), rest[0] if rest else "")
    print(json.dumps({"peer": peer, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
