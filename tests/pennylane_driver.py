"""Adjoint gradients of random parameterised circuits on ``qgt.qubit`` against
``default.qubit`` and against central finite differences of qgt's own values.

Run by tests/test_pennylane_adjoint.py, in-process or as
``mpiexec -n K python tests/pennylane_driver.py '<json config>' [seed]``: every rank
runs the same script (SPMD); rank 0 prints one JSON line with the largest errors.
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np


def random_circuit(n: int, seed: int, narrow: bool = False):
    """A circuit function f(x) of P parameters: rotations, controlled rotations,
    multi-qubit Pauli rotations, Ising gates and a Rot; fixed entanglers between."""
    import pennylane as qml

    rng = np.random.default_rng(seed)
    kinds = ["RX", "RY", "RZ", "CRX", "CRY", "CRZ", "IsingXX", "IsingZZ", "PauliRot",
             "MultiRZ", "Rot", "PhaseShift", "ControlledPhaseShift"]
    layout = []
    for _ in range(4 * n):
        kind = kinds[rng.integers(len(kinds))]
        if kind in ("CRX", "CRY", "CRZ", "IsingXX", "IsingZZ", "ControlledPhaseShift"):
            wires = [int(w) for w in rng.choice(n, 2, replace=False)]
        elif kind in ("PauliRot", "MultiRZ"):
            wires = [int(w) for w in rng.choice(n, 3, replace=False)]
        else:
            wires = [int(rng.integers(n))]
        word = "".join(rng.choice(list("XYZ"), len(wires))) if kind == "PauliRot" else None
        layout.append((kind, wires, word, [int(w) for w in rng.choice(n, 2, replace=False)]))
    n_params = sum(3 if k == "Rot" else 1 for k, *_ in layout)
    terms = []
    for _ in range(6):
        chars = rng.choice(list("IZ" if narrow else "IXYZ"), n)  # narrow: <= 2 X/Y
        for w in rng.choice(n, 2 if narrow else 1, replace=False):
            chars[w] = rng.choice(list("XYZ"))
        terms.append("".join(chars))
    coeffs = rng.normal(size=len(terms))

    def word_op(label):
        return qml.prod(*[getattr(qml, c)(w) for w, c in enumerate(label) if c != "I"])

    def f(x):
        k = 0
        for kind, wires, word, ent in layout:
            if kind == "Rot":
                qml.Rot(x[k], x[k + 1], x[k + 2], wires=wires)
                k += 3
            elif kind == "PauliRot":
                qml.PauliRot(x[k], word, wires=wires)
                k += 1
            else:
                getattr(qml, kind)(x[k], wires=wires)
                k += 1
            qml.CNOT(ent)
        ham = qml.Hamiltonian(list(coeffs), [word_op(t) for t in terms])
        return (qml.expval(ham), qml.expval(word_op(terms[0])),
                qml.expval(qml.X(0) @ qml.Y(n - 1)), qml.expval(qml.Z(n // 2)))

    return f, n_params


def check(config: dict, n: int = 6, seeds=(1, 2), fd: bool = True, narrow: bool = False) -> dict:
    import pennylane as qml
    from pennylane import numpy as pnp

    worst = {"vs_default_qubit": 0.0, "vs_finite_differences": 0.0, "vjp": 0.0,
             "values": 0.0, "parameters": 0}
    dev = qml.device("qgt.qubit", wires=n, **config)
    ref = qml.device("default.qubit", wires=n)
    for seed in seeds:
        f, p = random_circuit(n, seed, narrow)
        x = pnp.array(np.random.default_rng(100 + seed).uniform(-np.pi, np.pi, p),
                      requires_grad=True)
        ours = qml.QNode(f, dev, diff_method="adjoint")
        theirs = qml.QNode(f, ref, diff_method="adjoint")
        vjp_node = qml.QNode(f, dev, diff_method="adjoint", device_vjp=True)

        def stack(node):
            return lambda y: qml.math.stack(node(y))

        values = np.array(ours(x))
        jac = np.array(qml.jacobian(stack(ours))(x))
        jref = np.array(qml.jacobian(stack(theirs))(x))
        jvjp = np.array(qml.jacobian(stack(vjp_node))(x))
        worst["values"] = max(worst["values"], float(np.abs(values - np.array(theirs(x))).max()))
        worst["vs_default_qubit"] = max(worst["vs_default_qubit"], float(np.abs(jac - jref).max()))
        worst["vjp"] = max(worst["vjp"], float(np.abs(jvjp - jref).max()))
        worst["parameters"] = max(worst["parameters"], p)
        if fd:
            h = 1e-5
            plain = qml.QNode(f, dev, diff_method=None)
            cols = []
            for k in range(p):
                e = np.zeros(p)
                e[k] = h
                cols.append((np.array(plain(np.asarray(x) + e)) -
                             np.array(plain(np.asarray(x) - e))) / (2 * h))
            jfd = np.array(cols).T
            worst["vs_finite_differences"] = max(worst["vs_finite_differences"],
                                                 float(np.abs(jac - jfd).max()))
    worst["cache"] = dev.session.cache_stats()
    return worst


def main() -> int:
    warnings.simplefilter("ignore")
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    narrow = len(sys.argv) > 3 and sys.argv[3] == "narrow"
    out = check(config, n, seeds=(1,) if narrow else (1, 2), narrow=narrow)
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
