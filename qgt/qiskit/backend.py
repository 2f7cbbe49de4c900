"""``QgtBackend``: qgt as a Qiskit BackendV2, a drop-in for ``AerSimulator``.

    backend = QgtBackend(memory_limit="16GiB", scratch_dir="/local/ssd", threads=4)
    backend = QgtBackend(ranks=4)                  # a notebook: qgt launches 4 MPI ranks
    job = backend.run(transpile(qc, backend), shots=1024, seed_simulator=7)

Under ``mpiexec -n P python script.py`` every rank builds the same backend and gets the
same results (SPMD).  An adapter only: it turns circuits into ``qgt.session.Task``s and
Results back into qiskit's; the session plans, caches and talks MPI.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from qiskit.circuit import BoxOp, Delay, IfElseOp, Measure, Reset
from qiskit.circuit.library import DiagonalGate, UnitaryGate, get_standard_gate_name_mapping
from qiskit.providers import BackendV2, Options
from qiskit.quantum_info import Statevector
from qiskit.result import Result
from qiskit.transpiler import Target

import qgt
from qgt.config import load_config
from qgt.qiskit import circuits as conv
from qgt.qiskit.job import QgtJob
from qgt.qiskit.save import SaveExpectationValue, SaveStatevector, register
from qgt.session import Session, Task

register()

_RUN_OPTIONS = ("shots", "seed_simulator", "memory", "parameter_binds")


def _target() -> Target:
    """Every gate qgt runs natively (all of qiskit's standard gates: lowering keeps
    controls and diagonals as such), plus measure, reset, delay, if_else, box, unitary,
    diagonal and the save directives.  num_qubits=None: no layout, no routing, no limit."""
    target = Target(num_qubits=None, description="qgt: distributed, out-of-core statevector")
    for name, gate in get_standard_gate_name_mapping().items():
        if name in ("measure", "reset", "delay", "barrier"):
            continue
        target.add_instruction(gate, properties=None, name=name)
    target.add_instruction(Measure(), properties=None, name="measure")
    target.add_instruction(Reset(), properties=None, name="reset")
    target.add_instruction(Delay(0), properties=None, name="delay")
    for cls, name in ((IfElseOp, "if_else"), (BoxOp, "box"), (UnitaryGate, "unitary"),
                      (DiagonalGate, "diagonal")):
        target.add_instruction(cls, name=name)
    target.add_instruction(SaveStatevector(1), properties=None, name="save_statevector")
    target.add_instruction(SaveExpectationValue("Z"), properties=None,
                           name="save_expectation_value")
    return target


class QgtBackend(BackendV2):
    """qgt behind Qiskit's BackendV2.  Keywords: every qgt configuration key
    (docs/config.md), plus ``comm`` (an mpi4py communicator: SPMD) or ``ranks`` and
    ``launcher`` ("mpiexec" or "srun": qgt starts and keeps worker ranks)."""

    def __init__(self, *, comm=None, ranks: int | None = None, launcher: str = "mpiexec",
                 name: str = "qgt", **config):
        super().__init__(name=name, description="qgt distributed state-vector simulator",
                         backend_version=qgt.__version__)
        # progress: the configuration key (True/False), or a callable that receives each
        # qgt.obs.progress.ProgressEvent of every run (rank 0; not on launched ranks)
        self._progress = config.pop("progress") if callable(config.get("progress")) else None
        self._config = load_config(overrides=config, overrides_from="QgtBackend(...)")
        self._comm, self._ranks, self._launcher = comm, ranks, launcher
        self._session: Session | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qgt-job")
        self._target = _target()

    # ---- BackendV2 ------------------------------------------------------------------
    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self):
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, seed_simulator=None, memory=False, parameter_binds=None)

    @property
    def config(self):
        """The resolved qgt configuration (a ``qgt.config.Config``)."""
        return self._config

    @property
    def session(self) -> Session:
        """The ranks, plan cache and batch execution every front end shares."""
        if self._session is None:
            self._session = Session(self._config, comm=self._comm, ranks=self._ranks,
                                    launcher=self._launcher)
        return self._session

    def run(self, run_input, **options) -> QgtJob:
        circuits = run_input if isinstance(run_input, (list, tuple)) else [run_input]
        opts = dict(self.options.__dict__)
        for key, value in options.items():
            if key not in _RUN_OPTIONS:
                warnings.warn(f"Option {key} is not used by the qgt backend", stacklevel=2)
                continue
            opts[key] = value
        binds = opts.get("parameter_binds") or [None] * len(circuits)
        if len(binds) != len(circuits):
            raise ValueError(f"parameter_binds has {len(binds)} entries for {len(circuits)} "
                             "circuits: give one dict per circuit")
        prepared = [conv.prepare(qc) for qc in circuits]
        tasks = []
        for p, b in zip(prepared, binds):
            tasks.append(Task(p.circuit, conv.bind_values(p.circuit, b), int(opts["shots"] or 0),
                              p.observables(), opts["seed_simulator"],
                              state=p.state_label is not None, memory=bool(opts["memory"]),
                              name=p.circuit.name))
        session = self.session
        job = QgtJob(self, lambda: self._result(session.run(tasks, self._progress), prepared,
                                                tasks, job), self._executor, session)
        job.submit()
        return job

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._executor.shutdown(wait=False)

    # ---- results --------------------------------------------------------------------
    def _result(self, per_task, prepared, tasks, job) -> Result:
        experiments = []
        for p, task, results in zip(prepared, tasks, per_task):
            for res in results:
                experiments.append(self._experiment(p, task, res))
        return Result.from_dict({
            "backend_name": self.name, "backend_version": self.backend_version,
            "job_id": job.job_id(), "qobj_id": job.job_id(), "success": True,
            "date": datetime.now().isoformat(), "status": "COMPLETED",
            "results": experiments,
            "metadata": {"ranks": self.session.size, "mode": self.session.mode,
                         "plan_cache": self.session.cache_stats()},
        })

    def _experiment(self, p: conv.Prepared, task: Task, res) -> dict:
        data: dict = {}
        if task.shots and res.counts:
            data["counts"] = {conv.hex_key(k): v for k, v in res.counts.items()}
        if task.memory and res.memory is not None:
            data["memory"] = [conv.hex_key(k) for k in res.memory]
        if p.state_label is not None:
            data[p.state_label] = Statevector(res.state)
        for label, terms in p.expvals:
            data[label] = conv.expectation(terms, res.expectation_values)
        return {"shots": task.shots, "success": True, "status": "DONE", "data": data,
                "seed_simulator": res.seed, "header": conv.header(p.circuit),
                "metadata": {"ranks": res.ranks, "timings": res.timings, "plan": res.plan,
                             "plan_cache": res.metadata.get("plan_cache"),
                             "storage": res.metadata.get("storage"),
                             "passes": res.metadata.get("passes"),
                             "mpi_rank": self.session.rank,
                             "num_mpi_processes": self.session.size}}
