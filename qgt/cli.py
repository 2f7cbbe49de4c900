"""The ``qgt`` command line (also ``python -m qgt``).

    qgt run CIRCUIT      simulate (under mpiexec/srun: one process per rank)
    qgt plan CIRCUIT     print the plan for P ranks, without MPI
    qgt bench            time qgt against Qiskit Aer on a fixed suite
    qgt topology         what hwloc sees and the binding each rank would get
    qgt inspect DIR      what a checkpoint holds
    qgt calibrate        measure disk and memory bandwidth (used by qgt plan)
    qgt report R.json    which resource bound each step of a run (vs qgt calibrate)
    qgt timeline T.json  draw a run's --trace: one lane per rank and thread
    qgt serve            HTTP service: submit circuits, fetch results by id (docs/service.md)
    qgt worker           a deployment-mode worker of qgt serve (NATS + Redis, or Slurm)

Exit status: 0 done, 2 user error, 70 internal error, 85 checkpointed after
SIGTERM/SIGUSR1 (requeue and rerun with --resume).

User errors print one line and exit with status 2 on every rank; anything else
on a multi-rank run aborts the whole job (MPI_Abort) so no rank is left waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from qgt.bench.calibrate import add_arguments as calibrate_args
from qgt.bench.ooc import add_arguments as ooc_args
from qgt.bench.peer_bench import add_arguments as peers_args
from qgt.bench.pennylane import add_arguments as pennylane_args
from qgt.bench.primitives import add_arguments as primitives_args
from qgt.bench.service import add_arguments as service_args
from qgt.errors import EXIT_CHECKPOINTED, QgtError, UserError
from qgt.obs.report import add_arguments as report_args
from qgt.obs.timeline import add_arguments as timeline_args
from qgt.runtime import signals

CIRCUIT_HELP = ("a built-in (qft:N, ghz:N, random:N:DEPTH[:SEED], qpe:N[:THETA], "
                "trotter:N:STEPS[:DT], qaoa:N:LAYERS[:SEED]) or an OpenQASM 2/3 file")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="JSON configuration (default: $QGT_CONFIG, else built-in defaults)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override one configuration key (repeatable); see docs/config.md")


def _overrides(args) -> dict:
    out = {}
    for item in args.set:
        if "=" not in item:
            raise UserError(f"--set expects KEY=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qgt", description="Distributed, out-of-core state-vector quantum circuit "
        "simulator. Run multi-rank jobs as: mpiexec -n 4 qgt run CIRCUIT ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Configuration: defaults < --config/QGT_CONFIG file < QGT_* variables < flags "
        "(docs/config.md).\nExit status: 0 done, 2 user error, 70 internal error, 85 "
        "checkpointed after SIGTERM/SIGUSR1 (rerun with --resume).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="simulate a circuit (launch with mpiexec/srun for >1 rank)",
                       description="Simulate CIRCUIT on the MPI ranks this was launched with.")
    r.add_argument("circuit", help=CIRCUIT_HELP)
    _config_args(r)
    r.add_argument("--shots", type=int, help="samples of the final measurements (config: shots)")
    r.add_argument("--seed", type=int, help="random seed: same seed, same counts on any rank "
                   "count in the same final layout (one node, or --statevector; see "
                   "docs/architecture.md) (config: seed)")
    r.add_argument("--observable", action="append", default=[], metavar="PAULI",
                   help="Pauli string, rightmost character is qubit 0, e.g. ZZII (repeatable)")
    r.add_argument("--output", metavar="result.json", help="write the result as JSON")
    r.add_argument("--statevector", metavar="FILE.h5",
                   help="write the final state: FILE.h5 (/state, logical order) + per-rank files")
    r.add_argument("--resume", nargs="?", const=True, default=None, metavar="DIR",
                   help="continue from the newest valid checkpoint in DIR (default: the "
                   "checkpoint_dir key); starts afresh when there is none")
    r.add_argument("--quiet", action="store_true",
                   help="print nothing but errors (no progress either)")
    r.add_argument("--progress", action="store_true",
                   help="live progress on rank 0 (stderr): a bar in a terminal, else a line "
                   "every progress_interval (config: progress)")
    r.add_argument("--trace", metavar="trace.json",
                   help="record every rank's events (Chrome trace-event JSON, for Perfetto "
                   "or qgt timeline)")

    pl = sub.add_parser("plan", help="print the plan for P ranks (no MPI needed)",
                        description="Plan CIRCUIT for --ranks P and print steps, sweeps, swaps, "
                        "bytes exchanged and memory per rank.")
    pl.add_argument("circuit", help=CIRCUIT_HELP)
    pl.add_argument("--ranks", type=int, default=1, help="number of MPI ranks (power of two)")
    pl.add_argument("--ranks-per-node", type=int, default=1,
                    help="ranks sharing a node's RAM (for memory_limit=auto); equal to "
                         "--ranks, the ranks share one window and need no global swap "
                         "(shared_memory)")
    pl.add_argument("--observable", action="append", default=[], metavar="PAULI")
    pl.add_argument("--steps", action="store_true", help="list every step")
    pl.add_argument("--statevector", action="store_true",
                    help="plan as for a run that writes the final state (qgt run "
                    "--statevector): it ends with the passes that put the qubits back in "
                    "logical order, which runs that only sample or take expectation values "
                    "skip")
    pl.add_argument("--json", action="store_true", help="print the figures as JSON")
    _config_args(pl)

    b = sub.add_parser("bench", help="time qgt against Qiskit Aer (and numpy) on a suite")
    b.add_argument("--qubits", type=int, default=None,
                   help="n for the suite (default 22; 31 with --out-of-core)")
    b.add_argument("--ranks", type=int, default=1, help="qgt MPI ranks (launched via mpiexec)")
    b.add_argument("--threads", type=int, default=0, help="threads for qgt and Aer (0 = all)")
    b.add_argument("--shots", type=int, default=1000)
    b.add_argument("--circuits", default="", help="comma-separated subset of the suite")
    b.add_argument("--repeat", type=int, default=1, help="runs per circuit (median reported)")
    b.add_argument("--output", metavar="bench.json")
    b.add_argument("--out-of-core", action="store_true",
                   help="the SSD suite instead: a state larger than RAM (default n=31) with "
                   "--memory-limit, against dd, a numpy.memmap baseline and Aer")
    ooc_args(b.add_argument_group("out of core (with --out-of-core)"))
    b.add_argument("--primitives", action="store_true",
                   help="the Qiskit primitives instead: a VQE loop of EstimatorV2 calls and a "
                   "parameterised QAOA SamplerV2 PUB, qgt against Aer's primitives")
    primitives_args(b.add_argument_group("Qiskit primitives (with --primitives)"))
    b.add_argument("--pennylane", action="store_true",
                   help="the PennyLane device instead: an adjoint gradient and the docs' "
                   "classifier, qgt.qubit against lightning.qubit (--pl-only ooc: the "
                   "out-of-core adjoint gradient)")
    pennylane_args(b.add_argument_group("PennyLane (with --pennylane)"))
    b.add_argument("--service", action="store_true",
                   help="qgt serve instead: concurrent HTTP clients, embedded and NATS + "
                   "Redis with 2 workers; throughput, p50/p99 to DONE, overhead per task")
    service_args(b.add_argument_group("qgt serve (with --service)"))
    b.add_argument("--peers", metavar="aer,qsim,lightning,qulacs", default="",
                   help="the peer suite instead (qft, random, qaoa, ghz, qv, trotter at "
                   "--qubits, default 26): each named peer that is installed, at its best "
                   "setting in its own process, and each circuit's floor on this machine")
    peers_args(b.add_argument_group("peers (with --peers)"))

    c = sub.add_parser("calibrate", help="measure this machine's disk and memory bandwidth "
                       "(cached; qgt plan uses it to predict run times)")
    calibrate_args(c)

    rp = sub.add_parser("report", help="which resource bound each step of a run",
                        description="Compare a result's per-step timings and bytes with the "
                        "rates qgt calibrate measured: memory, kernels, disk, network.")
    report_args(rp)

    tl = sub.add_parser("timeline", help="draw a --trace file: one lane per rank and thread",
                        description="Plot a trace written by qgt run --trace with matplotlib, "
                        "with a utilisation summary.")
    timeline_args(tl)

    i = sub.add_parser("inspect", help="show what a checkpoint (or a directory of them) holds",
                       description="Print a checkpoint's circuit hash, progress, ranks, layout, "
                       "size and checksum verdict.")
    i.add_argument("checkpoint", help="a ckpt-NNNNNN directory or the checkpoint_dir")

    from qgt.serve.main import add_serve_arguments, add_worker_arguments

    add_serve_arguments(sub.add_parser(
        "serve", help="HTTP service: submit circuits, fetch results by id (docs/service.md)",
        description="Run the HTTP submission service. Alone it needs no other server "
        "(SQLite store, in-process workers); with --nats and --redis it queues tasks for "
        "qgt worker processes."))
    add_worker_arguments(sub.add_parser(
        "worker", help="run tasks of a deployment-mode qgt serve (NATS + Redis)",
        description="Pull tasks from the JetStream work queue and run them as qgt MPI jobs "
        "on this host, or with --slurm as sbatch jobs."))

    t = sub.add_parser("topology", help="show the hwloc topology and planned rank bindings")
    t.add_argument("--ranks-per-node", type=int, default=1)
    t.add_argument("--binding", default=None, help="none|core|socket|numa (default: config)")
    t.add_argument("--synthetic", default=None,
                   help="an hwloc synthetic topology, e.g. 'pack:2 numa:2 core:4 pu:2'")
    _config_args(t)
    return p


def _cmd_plan(args) -> int:
    from qgt.api import plan_for
    from qgt.bench.calibrate import cached
    from qgt.config import load_config
    from qgt.frontend import load_circuit
    from qgt.plan.summary import format_plan, plan_figures, predicted_seconds
    from qgt.runtime.capacity import scratch_dir, ssd_bytes

    cfg = load_config(args.config, overrides=_overrides(args))
    threads = cfg.threads or max(1, len(os.sched_getaffinity(0)) // args.ranks_per_node)
    circ = load_circuit(args.circuit)
    plan = plan_for(circ, cfg, args.ranks, args.observable, ranks_per_node=args.ranks_per_node,
                    threads=threads, restore=args.statevector)
    figs = plan_figures(plan, 4 * cfg.exchange_chunk, threads)
    if not args.statevector and not plan.page_floor:
        figs["exact_global_swaps"] = _exact_swaps(circ, plan, args.observable)
    if figs["storage"] == "ssd":
        figs["memory_per_rank"] = ssd_bytes(plan.block_qubits, plan.page_floor, cfg)
    figs["predicted_seconds"] = predicted_seconds(figs, cached(scratch_dir(cfg)))
    print(json.dumps(figs, indent=2) if args.json else format_plan(plan, figs, args.steps))
    return 0


def _exact_swaps(circ, plan, observables) -> int | None:
    """The ILP's minimum global swaps (qgt.plan.exact) for a small in-RAM plan."""
    from qgt.plan.exact import exact_global_swaps
    from qgt.plan.paulis import parse_pauli
    from qgt.plan.planner import plan_items

    obs_x = [q for o in observables for q in parse_pauli(o, circ.n_qubits)[0]]
    return exact_global_swaps(plan_items(circ)[0], circ.n_qubits, plan.exchange_bits,
                              plan.counts()["global_swaps"], obs_x)


def _print_result(res) -> None:
    print(f"qgt: {res.metadata['circuit']}: {res.n_qubits} qubits on {res.ranks} rank(s), "
          f"{res.timings['run']:.3f} s run ({res.plan['sweeps']} sweeps, "
          f"{res.plan['global_swaps']} global swaps)")
    if res.counts:
        top = sorted(res.counts.items(), key=lambda kv: -kv[1])[:10]
        print(f"counts ({res.shots} shots, seed {res.seed}, top {len(top)} of {len(res.counts)}):")
        for k, v in top:
            print(f"  {k}: {v}")
    for k, v in res.expectation_values.items():
        print(f"<{k}> = {v:.12g}")
    if res.statevector:
        print(f"state vector: {res.statevector} (/state)")


def _cmd_run(args) -> int:
    from qgt.api import simulate
    from qgt.config import load_config

    over = _overrides(args)
    if args.shots is not None:
        over["shots"] = args.shots
    if args.seed is not None:
        over["seed"] = args.seed
    if args.resume is not None:
        over["resume"] = True
        if args.resume is not True:
            over["checkpoint_dir"] = args.resume
    cfg = load_config(args.config, overrides=over)
    signals.install()
    _check_rank0_outputs(args)
    progress = False if args.quiet else (True if args.progress else None)
    res = simulate(args.circuit, observables=args.observable, config=cfg,
                   statevector=args.statevector, progress=progress, trace=args.trace)
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        if args.output:
            with open(args.output, "w") as f:
                f.write(res.to_json())
        if not args.quiet:
            _print_result(res)
    return 0


def _check_rank0_outputs(args) -> None:
    """--output is written by rank 0 after the run: check it before, and tell every rank
    (the others would otherwise wait in the first collective)."""
    from qgt.io.paths import writable_file
    from qgt.runtime.comm import Comm

    comm = Comm()
    err = writable_file(args.output, "--output") if args.output and comm.rank == 0 else None
    err = comm.bcast(err)
    if err:
        raise UserError(err)


def _cmd_report(args) -> int:
    from qgt.obs.report import main as report_main

    return report_main(args)


def _cmd_timeline(args) -> int:
    from qgt.obs.timeline import main as timeline_main

    return timeline_main(args)


def _cmd_inspect(args) -> int:
    from qgt.io.inspect import describe_checkpoint

    print(describe_checkpoint(args.checkpoint))
    return 0


def _cmd_topology(args) -> int:
    from qgt.config import load_config
    from qgt.placement import topology_report

    cfg = load_config(args.config, overrides=_overrides(args))
    print(topology_report(args.binding or cfg.binding, args.ranks_per_node, args.synthetic))
    return 0


def _cmd_bench(args) -> int:
    if args.peers:
        from qgt.bench.peer_bench import run_peer_bench

        return run_peer_bench(args)
    if args.service:
        from qgt.bench.service import run_service_bench

        return run_service_bench(args)
    if args.primitives:
        from qgt.bench.primitives import run_primitives_bench

        return run_primitives_bench(args)
    if args.pennylane:
        from qgt.bench.pennylane import run_pennylane_bench

        return run_pennylane_bench(args)
    if args.out_of_core:
        from qgt.bench.ooc import run_ooc_bench

        return run_ooc_bench(args)
    from qgt.bench import run_bench

    return run_bench(args)


def _cmd_serve(args) -> int:
    from qgt.serve.main import serve_main

    return serve_main(args)


def _cmd_worker(args) -> int:
    from qgt.serve.main import worker_main

    return worker_main(args)


def _cmd_calibrate(args) -> int:
    from qgt.bench.calibrate import main as calibrate_main

    return calibrate_main(args)


def _rank_and_size() -> tuple[int, int]:
    """This process's rank, without initialising MPI if nothing has yet (errors found
    before MPI starts, e.g. a bad configuration, are still printed once per job)."""
    mod = sys.modules.get("mpi4py.MPI")
    if mod is not None and mod.Is_initialized():
        return mod.COMM_WORLD.Get_rank(), mod.COMM_WORLD.Get_size()
    for var in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var]), 1  # size 1: nothing to abort yet
    return 0, 1


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handler = {"run": _cmd_run, "plan": _cmd_plan, "topology": _cmd_topology,
               "bench": _cmd_bench, "inspect": _cmd_inspect,
               "calibrate": _cmd_calibrate, "report": _cmd_report,
               "timeline": _cmd_timeline, "serve": _cmd_serve,
               "worker": _cmd_worker}[args.command]
    try:
        return handler(args)
    except QgtError as e:
        rank, size = _rank_and_size()
        what = "stopped" if e.exit_code == EXIT_CHECKPOINTED else "error"
        if rank == 0 or not getattr(e, "agreed", True):
            print(f"qgt: {what}: {e}", file=sys.stderr, flush=True)
        if size > 1 and not getattr(e, "agreed", True):
            sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(e.exit_code)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:
        rank, size = _rank_and_size()
        if size > 1:
            import traceback

            traceback.print_exc()
            print(f"qgt: internal error on rank {rank}: aborting all ranks", file=sys.stderr,
                  flush=True)
            sys.modules["mpi4py.MPI"].COMM_WORLD.Abort(70)
        raise
