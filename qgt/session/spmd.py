"""Running a batch of tasks on the ranks of one communicator (SPMD).

Called on every rank: by ``qgt.session.Session`` when the user's script runs under
mpiexec/srun (or in one plain process), and by launched worker ranks
(``qgt.session.worker``).  Every rank calls ``run`` with the same tasks and gets the same
results.  Rank 0 reads circuits and plans; the verdict (cache hit, new entry, or the
error) is broadcast, so all ranks raise together and none waits in a collective.

Per task: one plan-cache look-up, then each parameter value set is rebound and run back
to back on the same ranks, reusing the state buffer (RAM tier) between runs.
"""

from __future__ import annotations

import time

import numpy as np

from qgt.api import _as_config, _bind, _engine, _execute, _raise_verdict, _Run, _threads
from qgt.errors import CapacityError, QgtError, UserError
from qgt.plan.summary import plan_figures
from qgt.runtime.capacity import preflight
from qgt.session.cache import PlanCache, make_entry
from qgt.session.task import Task


def _is_qiskit(circuit) -> bool:
    return type(circuit).__name__ == "QuantumCircuit" and hasattr(circuit, "parameters")


def _n_qubits(circuit) -> int:
    return circuit.num_qubits if _is_qiskit(circuit) else circuit.n_qubits


def _ram_key(plan) -> tuple:
    """RAM engines are kept between runs per state shape: these plans share buffers."""
    return (plan.n_qubits, plan.rank_bits, plan.block_qubits, plan.shared_bits, plan.precision)


class SpmdRanks:
    """The caller's communicator, a plan cache and a pool of state buffers."""

    def __init__(self, config=None, comm=None, cache_size: int = 64):
        from qgt.runtime.comm import Comm

        self.cfg = _as_config(config)
        self.comm = Comm(comm)
        self.cache = PlanCache(cache_size)
        self.threads = _threads(self.cfg, self.comm)
        self._binding: dict | None = None
        self._engines: dict = {}  # (n, rank bits, block bits) -> a reusable RAM engine

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def size(self) -> int:
        return self.comm.size

    # ---- planning (rank 0) -------------------------------------------------------
    def _key(self, task: Task, circuit) -> tuple:
        if _is_qiskit(circuit):
            from qgt.frontend.params import fingerprint

            fp = fingerprint(circuit)
        else:
            from qgt.plan.planner import circuit_digest

            fp = circuit_digest(circuit)
        if getattr(self, "_cfg_key", (None,))[0] is not self.cfg:
            self._cfg_key = (self.cfg, tuple(sorted((k, str(v)) for k, v in
                                                    self.cfg.to_dict().items())))
        return (fp, tuple(task.observables), self.comm.size, self._cfg_key[1],
                self._adjoint(task, _n_qubits(circuit)))

    def _adjoint(self, task: Task, n_qubits: int) -> bool:
        """Whether the task differentiates and that changes its plan: on the SSD tier the
        page groups leave room for a second state (lambda), and the adjoint pass sweeps
        rank by rank (no shared window); otherwise the plan is the forward runs' (one
        cache entry for both)."""
        if task.extra.get("adjoint") is None:
            return False
        from qgt.api import shared_rank_bits
        from qgt.runtime.capacity import choose_tier

        args = (self.cfg, n_qubits, self.comm.size, self.comm.local_size, self.threads)
        return (choose_tier(*args) != choose_tier(*args, adjoint=True)
                or shared_rank_bits(self.cfg, self.comm.size, self.comm.window_size) > 0)

    def _new_entry(self, task: Task, circuit):
        from qgt.api import plan_for

        t = time.perf_counter()
        template = None
        if _is_qiskit(circuit) and circuit.parameters:
            from qgt.frontend.params import Template

            template = Template(circuit)
            circ = template.circuit
        elif _is_qiskit(circuit):
            from qgt.frontend import lower

            circ = lower(circuit)
        else:
            circ = circuit
        plan = plan_for(circ, self.cfg, self.comm.size, task.observables, None,
                        self.comm.local_size, self.threads,
                        self._adjoint(task, circ.n_qubits), window_ranks=self.comm.window_size)
        figs = plan_figures(plan, 4 * self.cfg.exchange_chunk, self.threads)
        return make_entry(circ.name or task.name, circ, plan, template,
                          time.perf_counter() - t, figs)

    def _verdict(self, task: Task) -> tuple:
        """Rank 0: ("hit", key) | ("miss", key, entry) | ("error"/"internal", message)."""
        try:
            circuit = task.circuit
            if not _is_qiskit(circuit):
                from qgt.frontend import load_circuit

                circuit = load_circuit(circuit)
            key = self._key(task, circuit)
            if key in self.cache.entries:
                return ("hit", key)
            return ("miss", key, self._new_entry(task, circuit))
        except UserError as e:
            return ("error", str(e))
        except Exception as e:  # a bug: still tell every rank, so none waits in bcast
            return ("internal", f"planning: {type(e).__name__}: {e}")

    def _entry(self, task: Task):
        verdict = self._verdict(task) if self.rank == 0 else None
        verdict = self.comm.bcast(verdict)
        _raise_verdict(verdict[0], verdict[1])
        if verdict[0] == "hit":
            return self.cache.get(verdict[1]), True
        entry = verdict[2]
        err = self.comm.agree(preflight(self.cfg, entry.plan, self.comm.local_size,
                                        self.threads))
        if err:
            raise CapacityError(err)
        self.cache.put(verdict[1], entry)
        return entry, False

    # ---- running -----------------------------------------------------------------
    def _values(self, task: Task, entry) -> list:
        if entry.template is None:
            if task.values is not None and np.asarray(task.values).size:
                raise UserError(f"circuit '{entry.name}' has no parameters, but "
                                f"{np.asarray(task.values).shape[-1]} values were given")
            return [None] * max(1, task.n_bindings())
        if task.values is None:
            raise UserError(f"circuit '{entry.name}' has {entry.n_parameters} unbound "
                            "parameters: give parameter values")
        values = np.asarray(task.values, dtype=float)
        if values.ndim != 2 or values.shape[1] != entry.n_parameters:
            raise UserError(f"circuit '{entry.name}' has {entry.n_parameters} parameters; "
                            f"parameter values of shape {values.shape} do not match")
        return list(values)

    def _bound_plan(self, task: Task, entry, v):
        """The cached plan rebound to ``v``; if these values change how the circuit
        lowers (a custom gate branching on its parameter), that binding is planned
        afresh, which counts as a planner call."""
        from qgt.frontend.params import StructureChanged

        try:
            return self.cache.bind(entry, v)
        except StructureChanged:
            pass
        verdict = None
        if self.rank == 0:
            try:
                bound = task.circuit.assign_parameters(v)
                # (extra: the adjoint flag decides the plan, e.g. no shared window)
                verdict = ("ok", self._new_entry(Task(bound, observables=task.observables,
                                                      extra=task.extra),
                                                 bound).plan)
            except UserError as e:
                verdict = ("error", str(e))
            except Exception as e:  # a bug: still tell every rank
                verdict = ("internal", f"planning: {type(e).__name__}: {e}")
        verdict = self.comm.bcast(verdict)
        _raise_verdict(verdict[0], verdict[1])
        self.cache.planner_calls += 1
        return verdict[1]

    def _engine_for(self, plan, rng):
        if plan.page_floor:  # out of core: a page store of its own per run
            return _engine(plan, self.comm, self.threads, self.cfg, rng), True
        key = _ram_key(plan)
        engine = self._engines.get(key)
        if engine is None:
            for old in self._engines.values():  # one state buffer at a time
                old.close()
            self._engines = {}
            engine = _engine(plan, self.comm, self.threads, self.cfg, rng)
            self._engines[key] = engine
        engine.plan, engine.rng = plan, rng
        engine.timings = {k: 0.0 for k in engine.timings}
        engine.passes = engine.block_moves = 0
        return engine, False

    def lambda_engine(self, plan, rng):
        """(engine, own) for lambda, the adjoint pass's second state: kept between runs
        in RAM like the state's engine; out of core a page store of its own, without
        prefetch (the adjoint pass streams both stores itself)."""
        if plan.page_floor:
            return _engine(plan, self.comm, self.threads, self.cfg, rng, prefetch_depth=0), True
        key = _ram_key(plan)
        held = getattr(self, "_lambda", None)
        if held is None or held[0] != key:
            if held is not None:
                held[1].close()
            self._lambda = held = (key, _engine(plan, self.comm, self.threads, self.cfg, rng))
        engine = held[1]
        engine.plan, engine.rng = plan, rng
        engine.timings = {k: 0.0 for k in engine.timings}
        engine.passes = 0
        return engine, False

    def holds_lambda(self, plan) -> bool:
        """Whether lambda's RAM engine for this plan's shape is already allocated (its
        memory was checked then); out of core every run allocates its own."""
        held = getattr(self, "_lambda", None)
        return not plan.page_floor and held is not None and held[0] == _ram_key(plan)

    def _binding_info(self) -> dict:
        if self._binding is None:
            self._binding = _bind(self.cfg, self.comm)
            if self._binding.get("threads") and not self.cfg.threads:
                self.threads = self._binding["threads"]
        return self._binding

    def run(self, tasks: list[Task], progress=None) -> list[list]:
        """Results per task, one per parameter value set; the same on every rank."""
        out = []
        for task in tasks:
            out.append(self.run_task(task, progress))
        return out

    def run_task(self, task: Task, progress=None) -> list:
        if task.extra.get("replicate") and self.comm.size > 1:
            return self._replicated(task, progress)
        t0 = time.perf_counter()
        entry, hit = self._entry(task)
        values = self._values(task, entry)
        seed = task.seed
        if seed is None:
            seed = self.comm.bcast(int(np.random.SeedSequence().entropy % (1 << 31))
                                   if self.rank == 0 else None)
        binding = self._binding_info()
        results = []
        for b, v in enumerate(values):
            plan = self._bound_plan(task, entry, v) if v is not None else entry.plan
            s = seed if b == 0 else int(np.random.SeedSequence([seed, b]).generate_state(1)[0]
                                        % (1 << 31))
            rng = np.random.default_rng(s)
            engine, own = self._engine_for(plan, rng)
            run = _Run(self.cfg, self.comm, plan, entry.name, s, task.shots, None,
                       list(task.observables), None, None, [], "", set(), entry.figures,
                       binding, entry.plan_seconds if (b == 0 and not hit) else 0.0,
                       self.threads, t0 if b == 0 else time.perf_counter(),
                       want_state=task.state, want_memory=task.memory,
                       progress=progress)
            try:
                res = _execute(engine, run)
                if task.extra.get("adjoint") is not None:  # qgt.session.adjoint
                    from qgt.session.adjoint import run_adjoint

                    run_adjoint(self, task, entry, v, plan, engine, res)
            finally:
                if own:
                    engine.close()
            res.metadata["plan_cache"] = {"hit": hit or b > 0, "binding": b,
                                          **self.cache.stats()}
            res.metadata["parameters"] = entry.n_parameters
            results.append(res)
        return results

    def _replicated(self, task: Task, progress=None) -> list:
        """A circuit too small to split over the ranks (the front end says so with
        ``extra["replicate"]``): every rank runs it whole on its own, with one seed, so
        the results still agree."""
        from dataclasses import replace

        if task.seed is None:
            task = replace(task, seed=self.comm.bcast(
                int(np.random.SeedSequence().entropy % (1 << 31)) if self.rank == 0 else None))
        if getattr(self, "_solo", None) is None:
            self._solo = SpmdRanks(self.cfg, self.comm.solo(), self.cache.size)
        return self._solo.run_task(replace(task, extra={**task.extra, "replicate": False}),
                                   progress)

    def cache_stats(self) -> dict:
        return self.cache.stats()

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines = {}
        if getattr(self, "_lambda", None) is not None:
            self._lambda[1].close()
            self._lambda = None
        if getattr(self, "_solo", None) is not None:
            self._solo.close()


__all__ = ["SpmdRanks", "QgtError"]
