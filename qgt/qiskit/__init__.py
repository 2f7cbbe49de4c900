"""qgt inside Qiskit: ``QgtBackend`` (BackendV2), ``SamplerV2`` and ``EstimatorV2``.

Adapters on ``qgt.session.Session`` (the only qiskit users besides ``qgt.frontend``).
See docs/qiskit.md.
"""

from qgt.qiskit.backend import QgtBackend
from qgt.qiskit.save import (
    SaveExpectationValue,
    SaveStatevector,
    save_expectation_value,
    save_statevector,
)

__all__ = ["QgtBackend", "SamplerV2", "EstimatorV2", "SaveStatevector",
           "SaveExpectationValue", "save_statevector", "save_expectation_value"]


def __getattr__(name):
    if name == "SamplerV2":
        from qgt.qiskit.sampler import SamplerV2

        return SamplerV2
    if name == "EstimatorV2":
        from qgt.qiskit.estimator import EstimatorV2

        return EstimatorV2
    raise AttributeError(name)
