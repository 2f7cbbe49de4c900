"""The Python API: ``qgt.simulate`` — called on every rank of an MPI program (and by
the command line).  Rank 0 reads the circuit, validates and plans; the verdict and
the plan are broadcast, so every rank either runs the same plan or raises the same
error before anything large is allocated.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

import numpy as np

# what planning uses is imported here, not on first use, so that a plan's timing
# (``timings.plan``) is the planning and not the import of its modules
from qgt.bench.opcost import cost_model
from qgt.config import Config, load_config
from qgt.errors import CapacityError, InternalError, QgtError, UserError
from qgt.obs import logs
from qgt.plan import make_plan
from qgt.plan.summary import plan_figures
from qgt.plan.support import support_log2, widest
from qgt.precision import amp_bytes, of_plan
from qgt.result import Result
from qgt.runtime.capacity import choose_tier, preflight, scratch_dir, shm_free_bytes


def _as_config(config) -> Config:
    if config is None:
        return load_config()
    if isinstance(config, Config):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_config(path=str(config))
    if isinstance(config, dict):
        return load_config(overrides=config, overrides_from="simulate(config=...)")
    raise UserError(f"config must be a Config, a JSON path or a dict, not {type(config).__name__}")


def _threads(cfg: Config, comm) -> int:
    if cfg.threads:
        return cfg.threads
    return max(1, len(os.sched_getaffinity(0)) // max(1, comm.local_size))


def _load(circuit) -> tuple:
    """Rank 0: read and lower the circuit.  ("ok", circuit, hash) or ("error", message)."""
    from qgt.frontend import load_circuit
    from qgt.plan.planner import circuit_digest

    try:
        circ = load_circuit(circuit)
        return ("ok", circ, circuit_digest(circ))
    except UserError as e:
        return ("error", str(e), None)
    except Exception as e:  # a bug: still tell every rank, so none waits in bcast
        return ("internal", f"reading the circuit: {type(e).__name__}: {e}", None)


def shared_rank_bits(cfg: Config, ranks: int, ranks_per_node: int, adjoint: bool = False,
                     n_qubits: int = 0) -> int:
    """How many rank bits a node's shared-memory window covers (qgt.runtime.shared):
    log2(``ranks_per_node``), the low rank bits (a node holds consecutive ranks), so
    only the rank bits that select a node need exchanges.  None with shared_memory
    off, for the adjoint pass (which sweeps two states rank by rank), when nodes hold
    a number of ranks that is not a power of two dividing ``ranks``, or when a node's
    window (its part of ``n_qubits``' state) would not fit the free space of
    /dev/shm, where MPI puts it."""
    rpn = min(ranks_per_node, ranks)
    if not cfg.shared_memory or adjoint or rpn < 2 or rpn & (rpn - 1) or ranks % rpn:
        return 0
    s = rpn.bit_length() - 1
    node_bits = n_qubits - (ranks.bit_length() - 1) + s
    if n_qubits and (amp_bytes(cfg.precision) << node_bits) > shm_free_bytes():
        return 0
    return s


def plan_for(circ, cfg: Config, ranks: int, observables=(), done=None, ranks_per_node: int = 1,
             threads: int = 1, adjoint: bool = False, restore: bool = True,
             window_ranks: int | None = None):
    """The plan for ``ranks`` ranks on the tier the configuration and RAM call for
    (``adjoint``: room for a second state, qgt.session.adjoint; ``restore``: the final
    state is read, so it must end in logical order; ``window_ranks``: the ranks that
    may share a window, ``Comm.window_size``, by default ``ranks_per_node``)."""
    support = support_log2(circ)
    ssd = choose_tier(cfg, circ.n_qubits, ranks, ranks_per_node, threads, support,
                      widest(circ, observables), adjoint)
    plan = make_plan(circ, ranks, cfg.block_qubits, cfg.page_qubits, list(observables),
                     cfg.fusion_max_qubits if cfg.fusion else 1, done=done, ssd=ssd,
                     restore=restore, costs=cost_model(), precision=cfg.precision,
                     shared_bits=shared_rank_bits(
                         cfg, ranks, ranks_per_node if window_ranks is None else window_ranks,
                         adjoint, circ.n_qubits))
    plan.decisions["support_log2"] = support  # the capacity preflight sizes pages by it
    return plan


def _plan(circ, cfg: Config, comm, observables, seed, done: set[int], threads: int,
          restore: bool) -> tuple:
    """Rank 0: validate and plan.  Returns ("ok", payload) or ("error", message)."""
    try:
        t = time.perf_counter()
        plan = plan_for(circ, cfg, comm.size, observables, done, comm.local_size, threads,
                        restore=restore, window_ranks=comm.window_size)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (1 << 31))
        return ("ok", (circ.name, plan, seed, time.perf_counter() - t))
    except UserError as e:
        return ("error", str(e))
    except Exception as e:  # a bug: still tell every rank, so none waits in bcast
        return ("internal", f"planning: {type(e).__name__}: {e}")


def _find_resume(cfg: Config, comm, circuit_hash: str) -> tuple:
    """The checkpoint to resume from (None to start afresh), its metadata and warnings."""
    if not (cfg.resume and cfg.checkpoint_dir):
        return None, None, []
    from qgt.io.checkpoint import checkpoint_precision, find_latest, read_meta

    path, warnings = find_latest(cfg.checkpoint_dir, comm, circuit_hash)
    for w in warnings:  # rank 0 prints each once (qgt.obs.logs)
        logs.get().warning("%s", w)
    meta = read_meta(path) if path else None
    if meta is not None and checkpoint_precision(meta) != cfg.precision:
        raise UserError(
            f"checkpoint {path} holds a {checkpoint_precision(meta)}-precision state but this "
            f"run has precision={cfg.precision}: set precision={checkpoint_precision(meta)} "
            "to resume it, or resume=false to start afresh")
    return path, meta, warnings


def _raise_verdict(kind: str, message) -> None:
    """Raise rank 0's verdict on every rank (they all received it)."""
    if kind == "error":
        raise UserError(message)
    if kind == "internal":
        raise InternalError(message)


def _shot_keys(indices: np.ndarray, terminal) -> np.ndarray:
    """The classical-register value of each sampled basis index."""
    keys = np.zeros(len(indices), dtype=np.int64)
    for q, c in terminal:
        keys |= ((indices >> q) & 1) << c
    return keys


def _counts(keys: np.ndarray, n_clbits: int) -> dict[str, int]:
    vals, cnt = np.unique(keys, return_counts=True)
    return {format(int(v), f"0{max(1, n_clbits)}b"): int(k) for v, k in zip(vals, cnt)}


def simulate(circuit, shots: int | None = None, observables=(), config=None, comm=None,
             seed: int | None = None, statevector: str | None = None, progress=None,
             trace: str | None = None) -> Result:
    """Simulate ``circuit`` (a QuantumCircuit, a built-in spec like 'qft:20', or an
    OpenQASM path) on the ranks of ``comm`` (an mpi4py communicator; COMM_WORLD by
    default).  Call it on every rank; every rank gets the same Result.

    ``progress``: None (the ``progress`` key decides), True/False, or a callable that
    rank 0 calls with a ``qgt.obs.ProgressEvent`` after every step.  ``trace``: a path
    for a Chrome trace-event JSON of every rank's events (written by rank 0)."""
    from qgt.runtime.comm import Comm

    cfg = _as_config(config)
    shots = cfg.shots if shots is None else shots
    seed = cfg.seed if seed is None else seed
    if shots < 0:
        raise UserError(f"shots must be >= 0, got {shots}")
    comm = Comm(comm)
    logs.configure(cfg.log_level, comm.rank)  # the rank in every record
    t0 = time.perf_counter()
    circ = None
    loaded = _load(circuit) if comm.rank == 0 else None
    if comm.rank == 0:
        circ = loaded[1]
    kind, message, circuit_hash = comm.bcast(
        (loaded[0], loaded[1] if loaded[0] != "ok" else None, loaded[2])
        if comm.rank == 0 else None)
    _raise_verdict(kind, message)
    resume_path, meta, resume_warnings = _find_resume(cfg, comm, circuit_hash)
    done = {int(i) for i in np.flatnonzero(meta["executed"])} if meta else set()
    threads = _threads(cfg, comm)
    # the state is read only when written out; samples and expectations read any layout
    verdict = (_plan(circ, cfg, comm, observables, seed, done, threads, bool(statevector))
               if comm.rank == 0 else None)
    kind, payload = comm.bcast(verdict)
    _raise_verdict(kind, payload)
    name, plan, seed, plan_time = payload
    if plan.trajectories and shots > 1 and cfg.checkpoint_dir:
        raise UserError("checkpointing a circuit with mid-circuit measurements needs shots <= 1 "
                        "(each shot is a separate trajectory)")
    figs = plan_figures(plan, 4 * cfg.exchange_chunk, threads)
    err = comm.agree(preflight(cfg, plan, comm.local_size, threads))
    if err:
        raise CapacityError(err)

    binding = _bind(cfg, comm)
    if binding.get("threads") and not cfg.threads:
        threads = binding["threads"]
    rng = np.random.default_rng(seed)
    # allocated after binding: first touch puts the slice on the rank's NUMA node
    engine = _engine(plan, comm, threads, cfg, rng)
    run = _Run(cfg, comm, plan, name, seed, shots, statevector, list(observables), meta,
               resume_path, resume_warnings, circuit_hash, done, figs, binding, plan_time,
               threads, t0)
    run.progress, run.trace = progress, trace
    try:
        return _execute(engine, run)
    finally:
        engine.close()


@dataclass
class _Run:
    """What one call of simulate() decided before executing the plan."""

    cfg: Config
    comm: object
    plan: object
    name: str
    seed: int
    shots: int
    statevector: str | None
    observables: list
    meta: dict | None
    resume_path: str | None
    resume_warnings: list
    circuit_hash: str
    done: set
    figs: dict
    binding: dict
    plan_time: float
    threads: int
    t0: float
    want_state: bool = False  # gather the final state onto every rank (Result.state)
    want_memory: bool = False  # per-shot outcomes, in shot order (Result.memory)
    progress: object = None  # simulate(progress=...): see qgt.obs.progress.make_consumer
    trace: str | None = None  # simulate(trace=...): the trace-event JSON to write


def _engine(plan, comm, threads: int, cfg: Config, rng, prefetch_depth: int | None = None):
    """This rank's engine for ``plan``: RAM, or pages on disk (``prefetch_depth``
    overrides the configuration's, e.g. 0 for a store only read in whole groups)."""
    from qgt.runtime.engine import Engine

    if plan.shared_bits:
        from qgt.runtime.shared import SharedEngine

        return _agreed(comm, lambda: SharedEngine(plan, comm, threads, cfg.exchange_chunk,
                                                  rng, cfg.huge_pages, cfg.overlap_swaps))
    if not plan.page_floor:
        return Engine(plan, comm, threads, cfg.exchange_chunk, rng, cfg.huge_pages,
                      cfg.overlap_swaps)
    from qgt.runtime.ooc import OocEngine

    return _agreed(comm, lambda: OocEngine(
        plan, comm, threads, rng, scratch_dir(cfg), cfg.direct_io, cfg.sparse_pages,
        cfg.prefetch_depth if prefetch_depth is None else prefetch_depth, cfg.huge_pages))


def _agreed(comm, make):
    """``make()``'s engine, or on any rank's failure a UserError on every rank (none is
    left waiting in a collective) with every engine that was made closed."""
    err, engine = None, None
    try:
        engine = make()
    except (UserError, MemoryError) as e:
        err = f"rank {comm.rank}: {e}"
    err = comm.agree(err)
    if err:
        if engine is not None:
            engine.close()
        raise UserError(err)
    return engine


def _execute(engine, r: _Run) -> Result:
    from qgt.obs.run import RunObserver

    obs = RunObserver(r, engine)
    obs.begin()  # output paths checked, logging, progress, tracing
    try:
        return _execute_observed(engine, r, obs)
    finally:
        obs.close()


def _execute_observed(engine, r: _Run, obs) -> Result:
    from qgt.runtime.checkpointing import CheckpointPolicy, restore_engine

    cfg, comm, plan, shots, meta = r.cfg, r.comm, r.plan, r.shots, r.meta
    policy = CheckpointPolicy(cfg, comm, r.circuit_hash, r.done)
    policy.on_write = lambda: obs.phase("checkpoint")
    elapsed_before = float(meta["elapsed"]) if meta else 0.0
    obs.start()  # the trace's clocks start here, with timings["run"]
    t1 = time.perf_counter()
    clbit_keys: dict[str, int] = {}
    memory: list[str] = []
    engine.finish_with(_reader(r, cfg), shots)
    for _ in range(max(1, shots) if plan.trajectories else 1):
        engine.reset_state()
        if meta:
            t_read = time.perf_counter()
            restore_engine(engine, r.resume_path, meta)
            engine.timings["checkpoint_read"] = time.perf_counter() - t_read
        for i, step in enumerate(plan.steps):
            obs.step(i, step, engine.timed_step(i, step))
            policy.after_step(engine, plan, i, elapsed_before + time.perf_counter() - t1)
        engine.flush()
        if plan.trajectories and shots:
            key = format(engine.clbits & ((1 << max(1, plan.n_clbits)) - 1),
                         f"0{max(1, plan.n_clbits)}b")
            clbit_keys[key] = clbit_keys.get(key, 0) + 1
            memory.append(key)
    if plan.trajectories:
        counts = clbit_keys
    elif shots and plan.terminal:
        obs.phase("sampling")
        with obs.span("sample", "reduction"):
            samples = engine.sample(shots)
        keys = _shot_keys(samples, plan.terminal)
        counts = _counts(keys, _user_clbits(plan))
        if r.want_memory:  # samples come sorted; shots are independent, so shuffle them
            width = max(1, _user_clbits(plan))
            memory = [format(int(k), f"0{width}b") for k in engine.rng.permutation(keys)]
    else:
        counts = {}
    if cfg.checkpoint_at_end and cfg.checkpoint_dir:
        policy.write(engine, plan, plan.final_layout, elapsed_before + time.perf_counter() - t1)
    t2 = time.perf_counter()
    if (r.statevector or r.want_state) and list(plan.final_layout) != list(range(plan.n_qubits)):
        raise InternalError("the final state was asked for but the plan left it permuted")
    if r.statevector:
        obs.phase("state vector I/O")
        with obs.span("write state vector", "disk"):
            _write_statevector(r.statevector, engine, comm, plan, r.name)
    state = _gather_state(engine, comm) if r.want_state else None
    engine.finish_with("state", 0)  # a later pass on this engine (the adjoint's) reads it
    t3 = time.perf_counter()
    observed = obs.finish()  # collective: per-step table, trace written by rank 0
    peak = comm.allgather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    labels = list(r.observables)
    return Result(
        n_qubits=plan.n_qubits, ranks=comm.size, shots=shots, seed=r.seed, counts=counts,
        expectation_values={labels[i]: v for i, v in sorted(engine.expectations.items())},
        timings={"plan": r.plan_time, "run": t2 - t1, "statevector_io": t3 - t2,
                 "total": t3 - r.t0, "checkpoint_write": policy.seconds, **engine.timings},
        bytes_exchanged_per_rank=engine.bytes_moved()["exchanged"],
        peak_memory_per_rank=peak, state_bytes_per_rank=r.figs["state_bytes_per_rank"],
        plan=r.figs, metadata={"circuit": r.name, "threads_per_rank": r.threads,
                             "passes": engine.passes, "bindings": comm.allgather(r.binding),
                             "storage": engine.storage, "io": comm.allgather(engine.io_report()),
                             "resumed_from": r.resume_path, "resume_warnings": r.resume_warnings,
                             "checkpoints_written": policy.written,
                             "checkpoint_seconds": policy.seconds, **observed},
        statevector=r.statevector,
        memory=memory if r.want_memory else None,
        state=state,
    )


def _reader(r: _Run, cfg: Config) -> str:
    """What reads the state after the plan's last step (Engine.finish_with): "file"
    when only the state file does, once, through ``engine.chunks()``."""
    if r.want_state or cfg.checkpoint_dir or r.plan.trajectories:
        return "state"
    samples = bool(r.shots and r.plan.terminal)
    if r.statevector:  # the writer alone, or samples first and then the writer
        return "state" if samples else "file"
    return "samples" if samples else "nothing"


def _gather_state(engine, comm) -> np.ndarray:
    """The whole final state (logical order) on every rank: for front ends that return it
    in memory (Qiskit's save_statevector, PennyLane's qml.state())."""
    # out of core the chunks are reused page buffers: copy each before the next arrives
    mine = np.concatenate([np.array(c, copy=True) for _, c in engine.chunks()])
    if comm.size == 1:
        return mine
    return np.concatenate(comm.allgather(mine))


def _bind(cfg: Config, comm) -> dict:
    """Bind this rank's CPUs and memory as configured; every rank agrees on failure."""
    if cfg.binding == "none":
        return {"strategy": "none", "cpus": sorted(os.sched_getaffinity(0))}
    from qgt.placement import apply_binding, load_topology, plan_bindings

    err, info = None, {}
    try:
        plans = plan_bindings(load_topology(), cfg.binding, comm.local_size)
        info = apply_binding(plans[comm.local_rank], cfg.huge_pages)
    except UserError as e:
        err = f"rank {comm.rank}: {e}"
    err = comm.agree(err)
    if err:
        raise UserError(err)
    return info


def _user_clbits(plan) -> int:
    return max([c + 1 for _, c in plan.terminal] + [plan.n_clbits])


def _write_statevector(path: str, engine, comm, plan, name: str) -> None:
    from qgt.io import hdf5

    err = None
    try:
        hdf5.write_slice(path, comm.rank, engine.chunks(), 1 << plan.local_bits,
                         dtype=engine.dtype)
    except OSError as e:
        err = f"cannot write the state vector slice of rank {comm.rank}: {e}"
    err = comm.agree(err)
    if err:
        raise UserError(err)
    if comm.rank == 0:
        hdf5.write_master(path, plan.n_qubits, comm.size,
                          {"circuit": name, "precision": of_plan(plan)}, dtype=engine.dtype)
    comm.barrier()


__all__ = ["simulate", "QgtError"]
