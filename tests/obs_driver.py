"""Run under mpiexec by tests/test_observability.py: qgt.simulate with a progress
callback; each rank writes the events its callback received (rank 0 only should get
any) and the result's per-step table.

usage: mpiexec -n K python tests/obs_driver.py CIRCUIT CONFIG.json OUTDIR
"""

import json
import sys

from mpi4py import MPI

import qgt


def main() -> None:
    circuit, cfg, out = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
    events = []
    res = qgt.simulate(circuit, shots=10, seed=1, config=cfg,
                       progress=lambda ev: events.append(ev.__dict__.copy()))
    rank = MPI.COMM_WORLD.Get_rank()
    json.dump({"events": events, "steps": res.metadata["steps"], "plan_steps": res.plan["steps"],
               "timings": res.timings, "io": res.metadata["io"],
               "exchanged": res.bytes_exchanged_per_rank},
              open(f"{out}/rank{rank}.json", "w"))


if __name__ == "__main__":
    main()
