"""``EstimatorV2``: Qiskit's BaseEstimatorV2 on the qgt session, native.

One PUB = one task: every Pauli term of every observable of the PUB is evaluated exactly
on each parameter set's final state, terms sharing an X/Y pattern in one pass
(``qgt.plan.planner``, ``csrc/qgt_kern_pauli.c``).  ``evs`` broadcast parameter values
against observables with numpy's rules.  Precision 0 gives exact values; precision p > 0
adds seeded Gaussian noise of standard deviation p (as Aer and Qiskit's
StatevectorEstimator do), and ``stds`` is p.
"""

from __future__ import annotations

import numpy as np
from qiskit.primitives import BaseEstimatorV2, PrimitiveResult, PubResult
from qiskit.primitives.containers import DataBin
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.quantum_info import SparseObservable, SparsePauliOp

from qgt.qiskit.primitives import flat_values, make_backend, submit
from qgt.qiskit.primitives import summed_timings as _summed_timings
from qgt.session import Task


def _pauli_terms(obs: dict) -> dict[str, float]:
    """{label: coeff} with projector letters (0 1 + - r l) expanded into Paulis."""
    if all(set(label) <= set("IXYZ") for label in obs):
        return {k: float(np.real(v)) for k, v in obs.items()}
    n = len(next(iter(obs)))
    sparse = SparseObservable.from_list(list(obs.items()), num_qubits=n).as_paulis()
    op = SparsePauliOp.from_sparse_observable(sparse).simplify()
    return {str(p): float(np.real(c)) for p, c in zip(op.paulis, op.coeffs)}


class EstimatorV2(BaseEstimatorV2):
    """``EstimatorV2(default_precision=0.0, seed=None, backend=None, options=None,
    **config)``: ``config`` takes any qgt configuration key, plus ``comm``/``ranks``."""

    def __init__(self, *, default_precision: float = 0.0, seed: int | None = None,
                 backend=None, options: dict | None = None, **config):
        self._backend = make_backend(backend, options, config)
        run_options = dict((options or {}).get("run_options", {}))
        self._seed = seed if seed is not None else run_options.get("seed_simulator")
        self._default_precision = default_precision
        self._rng = np.random.default_rng(self._seed)

    @property
    def backend(self):
        return self._backend

    @property
    def default_precision(self) -> float:
        return self._default_precision

    def run(self, pubs, *, precision: float | None = None):
        p = self._default_precision if precision is None else precision
        coerced = [EstimatorPub.coerce(pub, p) for pub in pubs]
        for pub in coerced:
            if pub.precision is not None and pub.precision < 0:
                raise ValueError(f"precision must be >= 0, got {pub.precision}")
        return submit(self._backend, lambda: self._run(coerced))

    def _run(self, pubs) -> PrimitiveResult:
        tasks, terms = [], []
        for pub in pubs:
            obs = [_pauli_terms(o) for o in pub.observables.ravel()]
            labels = tuple(dict.fromkeys(lab for o in obs for lab in o))
            values, _ = flat_values(pub)
            tasks.append(Task(pub.circuit, values, 0, labels, name=pub.circuit.name))
            terms.append(obs)
        results = self._backend.session.run(tasks)
        return PrimitiveResult([self._pub_result(pub, obs, runs)
                                for pub, obs, runs in zip(pubs, terms, results)],
                               metadata={"version": 2})

    def _pub_result(self, pub, obs, runs) -> PubResult:
        shape = pub.shape
        _, pshape = flat_values(pub)
        b_index = np.broadcast_to(np.arange(int(np.prod(pshape, dtype=int))).reshape(pshape),
                                  shape)
        o_index = np.broadcast_to(np.arange(len(obs)).reshape(pub.observables.shape), shape)
        # one matrix product: (bindings x labels) values times (labels x observables) coeffs
        labels = list(runs[0].expectation_values) if runs else []
        col = {lab: j for j, lab in enumerate(labels)}
        ev = np.array([[r.expectation_values[lab] for lab in labels] for r in runs]).reshape(
            len(runs), len(labels))
        coeff = np.zeros((len(labels), len(obs)))
        for j, o in enumerate(obs):
            for lab, c in o.items():
                coeff[col[lab], j] += c
        table = ev @ coeff if labels else np.zeros((max(1, len(runs)), len(obs)))
        if not labels:  # observables that are multiples of the identity... or empty
            table += np.array([sum(c for lab, c in o.items() if set(lab) <= {"I"})
                               for o in obs])
        evs = table[b_index, o_index] if shape else table[b_index[()], o_index[()]]
        evs = np.asarray(evs, dtype=float)
        precision = float(pub.precision or 0.0)
        if precision > 0:
            # unseeded, the noise comes from the run's seed, which rank 0 drew and every
            # rank shares: a generator of each rank's own would give each rank other values
            rng = self._rng if self._seed is not None else np.random.default_rng(
                [runs[0].seed, 1] if runs else None)
            evs = evs + rng.normal(0.0, precision, size=evs.shape)
        stds = np.full(evs.shape, precision)
        meta = {"target_precision": precision, "circuit_metadata": pub.circuit.metadata,
                "plan_cache": runs[-1].metadata.get("plan_cache") if runs else None,
                "timings": _summed_timings(runs)}
        return PubResult(DataBin(evs=evs, stds=stds, shape=evs.shape), metadata=meta)
