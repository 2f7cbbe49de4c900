"""Runs the Qiskit front end under ``mpiexec -n K`` (SPMD: every rank runs this script)
and prints, on rank 0, one JSON document of what a user would look at.

Called by tests/test_qiskit.py: ``mpiexec -n K python tests/qiskit_driver.py CONFIG_JSON``.
Every rank's results are hashed and compared, so "every rank gets the same result" is
checked too.
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
from mpi4py import MPI
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.circuit import Parameter
from qiskit.circuit.library import real_amplitudes
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import SparsePauliOp

from qgt.qiskit import EstimatorV2, QgtBackend, SamplerV2

SHOTS = 4000
# idle qubits, so that every circuit spans pages and ranks on the SSD tier with 4 ranks
PAD = 5


def registers_circuit() -> QuantumCircuit:
    qr = QuantumRegister(4, "q")
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(2, "b")
    qc = QuantumCircuit(qr, QuantumRegister(PAD, "pad"), a, b, name="registers")
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(0.7, 2)
    qc.cx(2, 3)
    qc.save_statevector()
    qc.save_expectation_value(SparsePauliOp(["ZZ", "XX"], [1.0, 0.5]), [0, 1], label="e01")
    qc.measure([0, 1], a)
    qc.measure([2, 3], b)
    return qc


def midcircuit_circuit() -> QuantumCircuit:
    qr = QuantumRegister(3, "q")
    m, f = ClassicalRegister(1, "m"), ClassicalRegister(3, "f")
    qc = QuantumCircuit(qr, QuantumRegister(PAD, "pad"), m, f, name="midcircuit")
    qc.h(0)
    qc.measure(0, m[0])
    with qc.if_test((m[0], 1)):
        qc.x(1)
    qc.ry(1.1, 2)
    qc.measure(qr, f)
    qc.h(3 + PAD - 1)
    return qc


# at most 3 X/Y qubits: out of core with 4 ranks a page group holds few qubits
OBSERVABLES = [SparsePauliOp(["ZZIIIIII", "IIIIIXXI", "YIIIIIIY", "ZZZZZZZZ"],
                             [1.0, 0.5, 0.25, -1.0]), "IIXIXIXI"]


def ansatz():
    qc = real_amplitudes(8, reps=2)
    return qc


def _pairs(state) -> list:
    a = np.asarray(state)
    return np.stack([a.real, a.imag], axis=1).tolist()


def main() -> None:
    config = json.loads(sys.argv[1])
    comm = MPI.COMM_WORLD
    backend = QgtBackend(**config)
    out: dict = {}
    res = backend.run(transpile(registers_circuit(), backend), shots=SHOTS, seed_simulator=5,
                      memory=True).result()
    out["registers"] = {"counts": res.get_counts(), "memory": res.get_memory()[:50],
                        "n_memory": len(res.get_memory()),
                        "state": _pairs(res.get_statevector()),
                        "e01": res.data()["e01"],
                        "ranks": res.results[0].metadata["num_mpi_processes"]}
    res = backend.run(midcircuit_circuit(), shots=400, seed_simulator=3).result()
    out["midcircuit"] = {"counts": res.get_counts()}
    rc = random_circuit(8, 6, seed=11)
    rc.save_statevector()
    res = backend.run(transpile(rc, backend, optimization_level=1)).result()
    out["random"] = {"state": _pairs(res.get_statevector())}
    t = Parameter("t")
    pc = QuantumCircuit(2 + PAD, 2, name="binds")
    pc.ry(t, 0)
    pc.cx(0, 1)
    pc.h(2 + PAD - 1)
    pc.measure([0, 1], [0, 1])
    res = backend.run(pc, shots=SHOTS, seed_simulator=1,
                      parameter_binds=[{t: [0.0, np.pi / 2, np.pi]}]).result()
    out["binds"] = {"counts": [res.get_counts(i) for i in range(3)],
                    "cache": [r.metadata["plan_cache"] for r in res.results]}
    qc = ansatz()
    rng = np.random.default_rng(4)
    vals = rng.uniform(-1, 1, size=(3, 1, qc.num_parameters))
    obs = OBSERVABLES
    est = EstimatorV2(backend=backend)
    pres = est.run([(qc, obs, vals)]).result()[0]
    out["estimator"] = {"values": vals.tolist(), "evs": pres.data.evs.tolist(),
                        "stds": pres.data.stds.tolist(),
                        "precision": pres.metadata["target_precision"]}
    mq = qc.copy()
    mq.measure_all()
    svals = rng.uniform(-1, 1, size=(2, 3, qc.num_parameters))
    sres = SamplerV2(backend=backend, seed=9).run([(mq, svals)], shots=SHOTS).result()[0]
    out["sampler"] = {"values": svals.tolist(), "shape": list(sres.data.meas.shape),
                      "num_shots": sres.data.meas.num_shots,
                      "counts": [sres.data.meas.get_counts(loc=(i, j)) for i in range(2)
                                 for j in range(3)]}
    # everything but the plan-cache figures, which hold each rank's own timings
    blob = json.dumps({k: v for k, v in out.items() if k != "binds"} |
                      {"binds": out["binds"]["counts"]}, sort_keys=True).encode()
    digests = comm.allgather(hashlib.sha256(blob).hexdigest())
    out["same_on_every_rank"] = len(set(digests)) == 1
    backend.close()
    if comm.rank == 0:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
