"""The peer comparison suite of ``qgt bench --peers`` (the circuits of docs/PEERS figures).

Every simulator gets the same gate list: each circuit is transpiled once, with
``optimization_level=0``, to the basis ``BASIS`` that all peers accept, and written as
OpenQASM 2 so that qgt and each peer process read identical gates.
"""

from __future__ import annotations

from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import quantum_volume
from qiskit.circuit.random import random_circuit

from qgt.frontend import library

BASIS = ["h", "x", "rx", "ry", "rz", "u", "cx", "cp", "rzz", "swap"]
PEER_SUITE = ("qft", "random", "qaoa", "ghz", "qv", "trotter")


def _qv(n: int) -> QuantumCircuit:
    """Quantum volume, depth 10: SU(4) blocks synthesised as u + cx."""
    qc = quantum_volume(n, 10, seed=1)
    return transpile(qc, basis_gates=["u", "cx"], optimization_level=0, seed_transpiler=1)


def build(name: str, n: int) -> QuantumCircuit:
    """The named circuit at ``n`` qubits, in ``BASIS``, no measurements."""
    makers = {
        "qft": lambda: library.qft(n),
        "random": lambda: random_circuit(n, 20, max_operands=2, seed=1),
        "qaoa": lambda: library.qaoa(n, 4, seed=1),
        "ghz": lambda: library.ghz(n, measure=False),
        "qv": lambda: _qv(n),
        "trotter": lambda: library.trotter(n, 10),
    }
    if name not in makers:
        from qgt.errors import UserError

        raise UserError(f"unknown peer circuit {name!r}: the suite has {list(PEER_SUITE)}")
    qc = transpile(makers[name](), basis_gates=BASIS, optimization_level=0, seed_transpiler=1)
    qc.name = f"{name}{n}"
    return qc


def gate_count(qc: QuantumCircuit) -> int:
    return sum(1 for ins in qc.data if ins.operation.name not in ("barrier", "measure"))




def main(argv=None) -> int:
    """``python -m qgt.bench.peer_suite NAME N``: the circuit as OpenQASM 2 on stdout."""
    import sys

    from qiskit import qasm2

    name, n = (argv if argv is not None else sys.argv[1:])[:2]
    print(qasm2.dumps(build(name, int(n))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
