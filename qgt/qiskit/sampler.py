"""``SamplerV2``: Qiskit's BaseSamplerV2 on the qgt session, native (not a generic
wrapper over the backend).

One PUB = one task: a parameterised circuit is planned once and every parameter set of
the PUB is rebound and sampled back to back.  Data: one BitArray per classical register,
of shape (*pub.shape, shots).
"""

from __future__ import annotations

import numpy as np
from qiskit.primitives import BaseSamplerV2, PrimitiveResult, SamplerPubResult
from qiskit.primitives.containers import BitArray, DataBin
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qgt.qiskit.primitives import flat_values, make_backend, submit, summed_timings
from qgt.session import Task


class SamplerV2(BaseSamplerV2):
    """``SamplerV2(default_shots=1024, seed=None, backend=None, options=None, **config)``:
    ``config`` takes any qgt configuration key, plus ``comm``/``ranks``/``launcher``."""

    def __init__(self, *, default_shots: int = 1024, seed: int | None = None, backend=None,
                 options: dict | None = None, **config):
        self._backend = make_backend(backend, options, config)
        run_options = dict((options or {}).get("run_options", {}))
        self._seed = seed if seed is not None else run_options.get("seed_simulator")
        self._default_shots = default_shots

    @property
    def backend(self):
        return self._backend

    @property
    def default_shots(self) -> int:
        return self._default_shots

    def run(self, pubs, *, shots: int | None = None):
        coerced = [SamplerPub.coerce(p, shots if shots is not None else self._default_shots)
                   for p in pubs]
        for pub in coerced:
            if not pub.circuit.cregs:
                raise ValueError(f"circuit '{pub.circuit.name}' has no classical registers: "
                                 "the sampler returns one BitArray per register")
        return submit(self._backend, lambda: self._run(coerced))

    def _run(self, pubs) -> PrimitiveResult:
        tasks = []
        for k, pub in enumerate(pubs):
            values, shape = flat_values(pub)
            copies = 1 if values is not None else int(np.prod(shape, dtype=int))
            seed = None if self._seed is None else self._seed + k
            tasks += [Task(pub.circuit, values, pub.shots, seed=None if seed is None
                           else seed + c * 7919, memory=True, name=pub.circuit.name)
                      for c in range(copies)]
        results = iter(self._backend.session.run(tasks))
        out = []
        for pub in pubs:
            values, shape = flat_values(pub)
            copies = 1 if values is not None else int(np.prod(shape, dtype=int))
            runs = [r for _ in range(copies) for r in next(results)]
            out.append(self._pub_result(pub, shape, runs))
        return PrimitiveResult(out, metadata={"version": 2})

    @staticmethod
    def _pub_result(pub, shape, runs) -> SamplerPubResult:
        qc = pub.circuit
        arrays = {}
        for creg in qc.cregs:
            where = [qc.find_bit(b).index for b in creg]
            per = []
            for res in runs:
                keys = np.array([int(k, 2) for k in res.memory], dtype=np.int64) \
                    if res.memory else np.zeros(pub.shots, dtype=np.int64)
                vals = np.zeros(len(keys), dtype=np.int64)
                for j, c in enumerate(where):
                    vals |= ((keys >> c) & 1) << j
                per.append(BitArray.from_samples(vals.tolist(), creg.size).array)
            stacked = np.stack(per).reshape(tuple(shape) + per[0].shape)
            arrays[creg.name] = BitArray(stacked, creg.size)
        meta = {"shots": pub.shots, "circuit_metadata": qc.metadata,
                "plan_cache": runs[-1].metadata.get("plan_cache") if runs else None,
                "timings": summed_timings(runs)}
        return SamplerPubResult(DataBin(**arrays, shape=tuple(shape)), metadata=meta)
