"""``qgt.qubit``: qgt as a PennyLane device (the ``pennylane.devices.Device`` API).

    dev = qml.device("qgt.qubit", wires=34, memory_limit="8GiB", scratch_dir="/local/ssd")
    dev = qml.device("qgt.qubit", wires=30, ranks=4)     # a notebook: qgt launches 4 ranks

Under ``mpiexec -n P python script.py`` every rank builds the same device and gets the
same results (SPMD, ``comm=`` or COMM_WORLD).  An adapter only: tapes become
``qgt.session.Task``s (``qgt.pennylane.circuits``), tapes of one structure one task with
many value sets, and the session's Results become PennyLane's.  Planning, the plan cache
and MPI belong to the session.

How measurements are answered:
    analytic expval/var of Pauli words, sums, Hamiltonians, small Hermitians
                  -> Pauli labels to the session: exact, distributed, no state gathered
    analytic probs, state, density matrix, other observables
                  -> the final state gathered (Task(state=True)), PennyLane's process_state
    finite shots  -> split into commuting groups, rotated to the Z basis, per-shot
                     bitstrings (Task(memory=True)), PennyLane's process_samples
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pennylane as qml
from pennylane.devices import Device, ExecutionConfig
from pennylane.devices.modifiers import single_tape_support
from pennylane.devices.preprocess import (
    decompose,
    validate_device_wires,
    validate_measurements,
    validate_observables,
)
from pennylane.devices.qubit.measure import measure
from pennylane.exceptions import DeviceError
from pennylane.measurements import (
    ExpectationMP,
    SampleMeasurement,
    StateMeasurement,
    VarianceMP,
)
from pennylane.tape import QuantumScript
from pennylane.transforms import (
    broadcast_expand,
    defer_measurements,
    diagonalize_measurements,
    split_non_commuting,
)
from pennylane.transforms.core import transform
from pennylane.typing import PostprocessingFn

from qgt.config import load_config
from qgt.pennylane import circuits as conv
from qgt.session import Session, Task

HERMITIAN_WIRES = 8  # Hermitian observables up to this many wires become Pauli sums


def _null(results):
    return results[0]


@transform
def shots_to_z_basis(tape: QuantumScript) -> tuple[list, PostprocessingFn]:
    """With finite shots: commuting groups, each rotated into the computational basis
    (sampled observables must be diagonal).  Analytic tapes pass through."""
    if not tape.shots:
        return [tape], _null
    tapes, fn = split_non_commuting(tape)
    out = []
    for t in tapes:
        (d,), _ = diagonalize_measurements(t)
        out.append(d)
    return out, fn


def _gate_or_plain(op) -> bool:
    """Not broadcast, or an angle gate (its angles become one value set per element)."""
    return op.batch_size is None or op.name in conv.GATES or op.name == "Rot"


def _broadcast_answered(tape) -> bool:
    """Whether a broadcast tape runs whole, as one task of batch_size value sets: analytic
    expectation values and variances of Pauli sums (Hermitians included), no trainable
    parameter broadcast (its gradient is per element: the split tapes give that)."""
    if any(qml.math.ndim(p) for p in tape.get_parameters(trainable_only=True)):
        return False
    return not tape.shots and all(
        isinstance(mp, (ExpectationMP, VarianceMP)) and mp.obs is not None and mp.mv is None
        and pauli_sentence(mp.obs) is not None for mp in tape.measurements)


@transform
def broadcast_unless_native(tape: QuantumScript) -> tuple[list, PostprocessingFn]:
    """A broadcast tape qgt answers per value set stays one tape (one task, one plan, one
    conversion); any other is split into one tape per element (broadcast_expand)."""
    if tape.batch_size is None or (_broadcast_answered(tape) and all(
            _gate_or_plain(op) or op.has_decomposition for op in tape.operations)):
        return [tape], _null
    return broadcast_expand(tape)


@transform
def expand_leftover_broadcast(tape: QuantumScript) -> tuple[list, PostprocessingFn]:
    """After decomposition: a broadcast op that is not an angle gate splits the tape."""
    if tape.batch_size is None or all(_gate_or_plain(op) for op in tape.operations):
        return [tape], _null
    return broadcast_expand(tape)


def _native(op) -> bool:
    """Converted as such; an operation with a matrix and no decomposition (BlockEncode,
    DoubleExcitationPlus) runs as its matrix."""
    if op.name in conv.NATIVE:
        return True
    return op.has_matrix and not op.has_decomposition and len(op.wires) <= conv.MATRIX_WIRES


def _observable_ok(obs) -> bool:
    if obs.pauli_rep is not None or obs.has_matrix:
        return True
    if isinstance(obs, (qml.ops.Sum, qml.ops.Prod, qml.ops.SProd)):
        return all(_observable_ok(o) for o in obs.operands) if hasattr(obs, "operands") \
            else _observable_ok(obs.base)
    return False


def pauli_sentence(obs):
    """The observable as a PauliSentence, or None (answered from the state instead)."""
    ps = obs.pauli_rep
    if ps is None and obs.name == "Hermitian" and len(obs.wires) <= HERMITIAN_WIRES:
        ps = qml.pauli_decompose(np.asarray(obs.matrix()), wire_order=obs.wires, pauli=True)
    return ps


class _Prepared:
    """One tape turned into what the session runs, and how to read its Result."""

    def __init__(self, tape, wire_order, converter=None):
        self.tape = tape
        self.wires = wire_order
        # a broadcast tape: that many value sets, one task (the ops' own batch sizes:
        # the tape's property re-checks them all on every new tape)
        self.batch = next((op.batch_size for op in tape.operations if op.batch_size), None)
        self.shots = int(tape.shots.total_shots or 0)
        self.sentences: dict[int, tuple] = {}  # measurement index -> (ps, ps^2 or None)
        self.labels: dict[str, None] = {}
        self.state = False
        extra = []
        if self.shots:
            for mp in tape.measurements:  # what diagonalize_measurements left (Hermitian)
                if mp.obs is not None:
                    extra += mp.obs.diagonalizing_gates()
        else:
            for i, mp in enumerate(tape.measurements):
                ps = pauli_sentence(mp.obs) if isinstance(mp, (ExpectationMP, VarianceMP)) \
                    and mp.obs is not None and mp.mv is None else None
                if ps is None:
                    self.state = True
                    continue
                sq = ps @ ps if isinstance(mp, VarianceMP) else None
                self.sentences[i] = (ps, sq)
                for s in (ps, sq):
                    for word in (s or {}):
                        label = conv.pauli_label(word, wire_order)
                        if label is not None:
                            self.labels[label] = None
        self.converted = (converter or conv.to_qiskit)(tape, wire_order,
                                                       measure=bool(self.shots),
                                                       extra_ops=extra)
        self.key = (self.converted.structure or
                    conv.structure_key(tape, wire_order, bool(self.shots)),
                    tuple(self.labels), self.shots, self.state, len(extra))
        if extra:  # the rotations belong to the structure
            self.key += (tuple((o.name, tuple(o.wires)) for o in extra),)

    def rows(self, cotangents=None) -> np.ndarray:
        """The observables as coefficient rows over the labels (adjoint): one row per
        measurement, or one row folded with the cotangents (a VJP)."""
        col = {lab: j for j, lab in enumerate(self.labels)}
        rows = np.zeros((len(self.tape.measurements), len(col)))
        for i in range(len(self.tape.measurements)):
            ps = self.sentences[i][0]
            for word, c in ps.items():
                label = conv.pauli_label(word, self.wires)
                if label is not None:
                    rows[i, col[label]] += np.real(c)
        if cotangents is not None:
            dy = np.atleast_1d(np.asarray(cotangents, dtype=float))
            rows = dy @ rows if len(dy) == len(rows) else rows * 0
            rows = rows[None, :]
        return rows

    def trainable_columns(self) -> list:
        """Per trainable tape parameter, its column of the session's Jacobian (-1: a
        global phase, derivative 0)."""
        cols = []
        for t in self.tape.trainable_params:
            c = self.converted.param_of[t] if t < len(self.converted.param_of) else None
            if c is None:
                raise DeviceError(f"qgt.qubit: adjoint differentiation cannot differentiate "
                                  f"tape parameter {t} (a matrix or an observable's data); "
                                  "use diff_method='parameter-shift'")
            cols.append(c)
        return cols

    def _value(self, ps, ev) -> float:
        total = 0.0
        for word, c in ps.items():
            label = conv.pauli_label(word, self.wires)
            total += np.real(c) * (1.0 if label is None else ev[label])
        return float(total)

    def value_rows(self) -> np.ndarray:
        return conv.value_rows(self.converted.values, self.batch)

    @property
    def width(self) -> int:
        """Value sets (session Results) this tape takes: its batch size, or 1."""
        return self.batch or 1

    def result(self, runs: list):
        """PennyLane's result from the tape's Results (a broadcast tape's: (batch,)
        arrays, as after broadcast_expand)."""
        if self.batch is None:
            return self._result(runs[0])
        per = [self._result(r) for r in runs]
        if len(self.tape.measurements) == 1:
            return np.array(per)
        return tuple(np.array([p[m] for p in per]) for m in range(len(per[0])))

    def _result(self, res):
        mps = self.tape.measurements
        if self.shots:
            samples = conv.samples_array(res.memory, len(self.wires))
            per_copy, lo = [], 0
            for s in self.tape.shots:
                r = tuple(mp.process_samples(samples, self.wires, shot_range=(lo, lo + s))
                          for mp in mps)
                per_copy.append(r[0] if len(r) == 1 else r)
                lo += s
            return tuple(per_copy) if self.tape.shots.has_partitioned_shots else per_copy[0]
        ev = res.expectation_values
        out = []
        for i, mp in enumerate(mps):
            if i in self.sentences:
                ps, sq = self.sentences[i]
                mean = self._value(ps, ev)
                value = mean if sq is None else self._value(sq, ev) - mean * mean
                out.append(np.float64(value))
            else:
                # PennyLane's own state measurement (diagonalising gates applied to a
                # copy), on wires renumbered 0..n-1 as default.qubit does
                mapped = mp.map_wires({w: j for j, w in enumerate(self.wires)})
                out.append(measure(mapped, np.reshape(res.state, (2,) * len(self.wires))))
        return out[0] if len(out) == 1 else tuple(out)


@single_tape_support
class QgtDevice(Device):
    """qgt behind PennyLane.  Keywords: every qgt configuration key (docs/config.md),
    plus ``comm`` (an mpi4py communicator: SPMD), or ``ranks`` and ``launcher``
    ("mpiexec" or "srun": qgt starts and keeps worker ranks), and ``seed`` (sampling)."""

    name = "qgt.qubit"

    def __init__(self, wires=None, shots=None, *, seed=None, comm=None, ranks=None,
                 launcher: str = "mpiexec", **config):
        super().__init__(wires=wires, shots=shots)
        # progress: the configuration key, or a callable receiving every ProgressEvent
        self._progress = config.pop("progress") if callable(config.get("progress")) else None
        self._config = load_config(overrides=config,
                                   overrides_from="qml.device('qgt.qubit', ...)")
        self._comm, self._ranks, self._launcher = comm, ranks, launcher
        self._seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self._session: Session | None = None
        self._converter = conv.Converter()

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

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # ---- preprocessing --------------------------------------------------------------
    def setup_execution_config(self, config=None, circuit=None) -> ExecutionConfig:
        config = config or ExecutionConfig()
        updated = {}
        method = config.gradient_method
        if method == "best":  # as lightning.qubit: adjoint where it applies
            method = updated["gradient_method"] = "adjoint" if circuit is not None and \
                _adjoint_applies(circuit) else "parameter-shift"
        if method == "adjoint":
            for key in ("use_device_gradient", "use_device_jacobian_product",
                        "grad_on_execution"):
                if getattr(config, key) is None:
                    updated[key] = True
        if config.mcm_config.mcm_method is None:
            updated["mcm_config"] = qml.devices.MCMConfig(
                mcm_method="deferred", postselect_mode=config.mcm_config.postselect_mode)
        return qml.devices.ExecutionConfig(**{**config.__dict__, **updated}) if updated \
            else config

    def preprocess_transforms(self, execution_config=None):
        program = qml.CompilePipeline()
        program.add_transform(validate_device_wires, self.wires, name=self.name)
        program.add_transform(validate_measurements,
                              analytic_measurements=lambda m: isinstance(m, StateMeasurement),
                              sample_measurements=lambda m: isinstance(m, SampleMeasurement),
                              name=self.name)
        program.add_transform(validate_observables, stopping_condition=_observable_ok,
                              name=self.name)
        program.add_transform(defer_measurements, allow_postselect=False)
        program.add_transform(broadcast_unless_native)
        program.add_transform(shots_to_z_basis)
        program.add_transform(decompose, stopping_condition=_native,
                              skip_initial_state_prep=False, name=self.name,
                              device_wires=self.wires, target_gates=set(conv.NATIVE))
        program.add_transform(expand_leftover_broadcast)
        return program

    # ---- execution ------------------------------------------------------------------
    def _wire_order(self, tape):
        return qml.wires.Wires(self.wires if self.wires is not None else tape.wires)

    def _tasks(self, prepared, rows=None) -> tuple[list, list]:
        groups: OrderedDict = OrderedDict()
        for i, p in enumerate(prepared):
            key = p.key if rows is None or rows[i] is None else \
                (p.key, rows[i].tobytes(), rows[i].shape)
            groups.setdefault(key, []).append(i)
        tasks, members = [], []
        for idx in groups.values():
            first = prepared[idx[0]]
            values = None
            if first.converted.circuit.parameters:
                values = np.concatenate([prepared[i].value_rows() for i in idx])
            seed = int(self._rng.integers(1 << 31)) if self._rng is not None else None
            extra = {"replicate": self._too_small(first)}
            if rows is not None and rows[idx[0]] is not None:
                # only the tapes' trainable parameters are differentiated
                extra["adjoint"] = rows[idx[0]]
                extra["adjoint_columns"] = sorted({c for i in idx for c in
                                                   prepared[i].trainable_columns() if c >= 0})
            tasks.append(Task(first.converted.circuit, values, first.shots,
                              tuple(first.labels), seed, state=first.state,
                              memory=bool(first.shots), name="pennylane", extra=extra))
            members.append(idx)
        return tasks, members

    def _too_small(self, p: _Prepared) -> bool:
        """Whether the circuit is too small to split over the ranks: each rank must hold
        the widest gate or Pauli pattern (the session then runs it whole on every rank)."""
        size = self.session.size
        if size <= 1:
            return False
        qc = p.converted.circuit
        width = max([len(inst.qubits) for inst in qc.data if inst.operation.name != "measure"]
                    + [sum(ch in "XY" for ch in lab) for lab in p.labels] + [1])
        return qc.num_qubits - (size - 1).bit_length() < width

    def _run(self, circuits, cotangents=None, adjoint=False):
        prepared = [_Prepared(t, self._wire_order(t), self._converter) for t in circuits]
        rows = None
        if adjoint:
            for p in prepared:
                _check_adjoint(p)
            # a tape with nothing trainable (a plain evaluation) needs no reverse pass
            # (a broadcast tape's cotangents differ per value set: folded after the pass)
            rows = [p.rows(None if cotangents is None or p.batch else cotangents[i])
                    if p.tape.trainable_params else None for i, p in enumerate(prepared)]
        tasks, members = self._tasks(prepared, rows)
        per_task = self.session.run(tasks, self._progress) if tasks else []
        results: list = [None] * len(prepared)
        runs: list = [None] * len(prepared)
        for idx, task_results in zip(members, per_task):
            at = 0
            for i in idx:
                runs[i] = task_results[at:at + prepared[i].width]
                at += prepared[i].width
                results[i] = prepared[i].result(runs[i])
        self._prepared = prepared
        return results, runs, tasks

    def _track(self, circuits, results, runs, tasks) -> None:
        if not self.tracker.active:
            return
        self.tracker.update(batches=1, batch_len=len(circuits), tasks=len(tasks))
        self.tracker.record()
        for tape, r, chunk in zip(circuits, results, runs):
            def total(*keys, chunk=chunk):
                return float(sum(res.timings.get(k, 0.0) for res in chunk for k in keys))

            ios = [_io(res.metadata) for res in chunk]
            info = {"executions": len(chunk), "results": r,
                    "plan_cache_hits": sum(int(bool(res.metadata.get("plan_cache", {})
                                                    .get("hit"))) for res in chunk),
                    "plan_seconds": total("plan"),
                    "compute_seconds": total("compute", "reductions"),
                    "communication_seconds": total("communication"),
                    **{k: sum(io[k] for io in ios) for k in ios[0]}}
            if tape.shots:
                info["shots"] = tape.shots.total_shots
            self.tracker.update(**info)
            self.tracker.record()

    def execute(self, circuits, execution_config=None):
        results, runs, tasks = self._run(circuits)
        self._track(circuits, results, runs, tasks)
        return tuple(results)

    # ---- adjoint differentiation (qgt.session.adjoint) -----------------------------
    def supports_derivatives(self, execution_config=None, circuit=None) -> bool:
        method = getattr(execution_config, "gradient_method", None)
        if method == "best":
            return circuit is not None and _adjoint_applies(circuit)
        if method != "adjoint":
            return False
        return circuit is None or not circuit.shots

    supports_vjp = supports_derivatives

    def _jacobians(self, circuits, cotangents=None):
        results, runs, tasks = self._run(circuits, cotangents, adjoint=True)
        self._track(circuits, results, runs, tasks)
        out = []
        for p, chunk in zip(self._prepared, runs):
            cols = p.trainable_columns()
            jacs = []
            for res in chunk:
                full = np.asarray(res.metadata.get("adjoint", np.zeros(
                    (len(p.tape.measurements), 0))))
                jac = np.zeros((full.shape[0], len(cols)))
                for j, c in enumerate(cols):
                    if c >= 0:
                        jac[:, j] = full[:, c]
                jacs.append(jac)
            # (rows, parameters), or (batch, measurements, parameters) for a broadcast tape
            out.append(jacs[0] if p.batch is None else np.stack(jacs))
        return results, out

    def compute_derivatives(self, circuits, execution_config=None):
        return self.execute_and_compute_derivatives(circuits, execution_config)[1]

    def execute_and_compute_derivatives(self, circuits, execution_config=None):
        results, jacs = self._jacobians(circuits)
        return tuple(results), tuple(_jacobian_shape(j) if p.batch is None else
                                     _batched_jacobian_shape(j)
                                     for p, j in zip(self._prepared, jacs))

    def compute_vjp(self, circuits, cotangents, execution_config=None):
        return self.execute_and_compute_vjp(circuits, cotangents, execution_config)[1]

    def execute_and_compute_vjp(self, circuits, cotangents, execution_config=None):
        cots = [np.atleast_1d(np.asarray(c, dtype=float)).ravel() for c in cotangents]
        results, jacs = self._jacobians(circuits, cots)
        vjps = []
        for p, j, dy in zip(self._prepared, jacs, cots):
            if p.batch is not None:  # (batch, K, T) with dy per measurement and element
                j = np.einsum("kb,bkt->t", dy.reshape(j.shape[1], j.shape[0]), j)[None, :]
            vjps.append(tuple(np.array(v) for v in j[0]))
        return tuple(results), tuple(vjps)


def _io(meta: dict) -> dict:
    """Passes over the state (rank 0's; the adjoint pass's included) and bytes read and
    written on the SSD tier (all ranks) of one run."""
    runs = [meta.get("io") or [], meta.get("adjoint_io") or []]
    adj = runs[1][0] if runs[1] else {}
    return {"passes": int(meta.get("passes", 0)) + int(adj.get("passes", 0)),
            "bytes_read": int(sum(r.get("read", 0) for rr in runs for r in rr)),
            "bytes_written": int(sum(r.get("written", 0) for rr in runs for r in rr))}


def _jacobian_shape(jac: np.ndarray):
    """(measurements, parameters) in PennyLane's nesting (as default.qubit's adjoint)."""
    jac = np.squeeze(jac)
    if jac.ndim == 0:
        return np.array(jac)
    if jac.ndim == 1:
        return tuple(np.array(j) for j in jac)
    return tuple(tuple(np.array(j_) for j_ in j) for j in jac)


def _batched_jacobian_shape(jac: np.ndarray):
    """(batch, measurements, parameters) in the nesting of a broadcast tape's Jacobian:
    per measurement, per parameter, a (batch,) array (as parameter-shift gives)."""
    _, k, t = jac.shape
    if t == 0:
        return _jacobian_shape(jac[0])
    per = [tuple(np.array(jac[:, m, j]) for j in range(t)) for m in range(k)]
    if t == 1:
        per = [p[0] for p in per]
    return per[0] if k == 1 else tuple(per)


def _adjoint_applies(tape) -> bool:
    """Whether adjoint differentiation answers this tape: analytic expectation values of
    Pauli words, sums and small Hermitians, every trainable parameter a gate angle (what
    "best" then picks, as lightning does; otherwise parameter-shift)."""
    if tape.shots or not all(
            isinstance(mp, ExpectationMP) and mp.obs is not None and mp.mv is None and
            pauli_sentence(mp.obs) is not None for mp in tape.measurements):
        return False
    owners = [op.name for op in tape.operations for _ in op.data]  # per tape parameter
    return all(t < len(owners) and (owners[t] in conv.GATES or owners[t] in
                                    ("Rot", "GlobalPhase")) for t in tape.trainable_params)


def _check_adjoint(p: _Prepared) -> None:
    if p.shots:
        raise DeviceError("qgt.qubit: adjoint differentiation is analytic: remove the shots")
    for i, mp in enumerate(p.tape.measurements):
        if not isinstance(mp, ExpectationMP) or i not in p.sentences:
            raise DeviceError(f"qgt.qubit: adjoint differentiation supports expval of Pauli "
                              f"words, sums and small Hermitians, not {mp}")
