"""Run under ``mpiexec -n 4`` by tests/test_library.py: an mpi4py program that splits
COMM_WORLD into two halves and calls qgt.simulate on each half with a different
circuit, as a user's own MPI application would.  Every rank writes its result."""

import json
import sys

from mpi4py import MPI

import qgt

world = MPI.COMM_WORLD
half = world.Split(color=world.rank // 2, key=world.rank)
circuit = ["ghz:8", "qft:8"][world.rank // 2]
res = qgt.simulate(circuit, shots=200, seed=3, observables=["ZZZZZZZZ"], comm=half,
                   config={"block_qubits": 4, "page_qubits": 1})
with open(f"{sys.argv[1]}/rank{world.rank}.json", "w") as f:
    json.dump({"circuit": circuit, "ranks": res.ranks, "counts": res.counts,
               "expect": res.expectation_values}, f)
