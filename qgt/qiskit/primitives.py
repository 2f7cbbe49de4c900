"""What SamplerV2 and EstimatorV2 share: a backend, and running tasks as a primitive job.

Called by ``qgt.qiskit.sampler`` and ``qgt.qiskit.estimator``.  ``options`` follows
Aer's primitives: ``{"backend_options": {...qgt configuration keys...}, "run_options":
{"seed_simulator": ...}}``; configuration keys may also be given directly as keywords.
"""

from __future__ import annotations

import numpy as np

from qgt.qiskit.backend import QgtBackend
from qgt.qiskit.job import QgtPrimitiveJob


def make_backend(backend, options: dict | None, config: dict) -> QgtBackend:
    options = dict(options or {})
    if backend is not None:
        if config or options.get("backend_options"):
            raise ValueError("give either backend= or qgt configuration keys, not both")
        return backend
    return QgtBackend(**{**options.get("backend_options", {}), **config})


def submit(backend: QgtBackend, work) -> QgtPrimitiveJob:
    job = QgtPrimitiveJob(work, backend._executor, backend.session)
    job.submit()
    return job


def flat_values(pub) -> tuple[np.ndarray | None, tuple]:
    """The PUB's parameter values as (B, P) in the circuit's parameter order, and the
    shape of the bindings array."""
    bindings = pub.parameter_values
    params = pub.circuit.parameters
    if not params:
        return None, bindings.shape
    arr = bindings.as_array(params)
    return arr.reshape(-1, len(params)), bindings.shape


def summed_timings(runs) -> dict:
    """Seconds per phase (plan, compute, communication, ...) over a PUB's runs."""
    out: dict = {}
    for r in runs:
        for k, v in r.timings.items():
            if isinstance(v, (int, float)):
                out[k] = out.get(k, 0.0) + float(v)
    return out
