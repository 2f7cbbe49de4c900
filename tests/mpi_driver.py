"""Run under mpiexec by the tests: simulate each job of a JSON list with qgt.simulate
and write, from rank 0, a JSON of counts and expectation values per job.  Every job
also writes its final state to an HDF5 file the test reads with plain h5py.

usage: mpiexec -n K python tests/mpi_driver.py jobs.json out.json
"""

import json
import sys

from mpi4py import MPI

import qgt


def main() -> None:
    jobs = json.load(open(sys.argv[1]))
    out = {}
    for job in jobs:
        res = qgt.simulate(job["circuit"], shots=job.get("shots", 0),
                           observables=job.get("observables", []), config=job.get("config"),
                           seed=job.get("seed"), statevector=job.get("statevector"))
        out[job["name"]] = {"counts": res.counts, "expect": res.expectation_values,
                            "plan": res.plan, "bytes": res.bytes_exchanged_per_rank,
                            "peak": res.peak_memory_per_rank, "io": res.metadata["io"]}
    if MPI.COMM_WORLD.Get_rank() == 0:
        json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
