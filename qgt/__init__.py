"""qgt: an MPI-distributed, out-of-core state-vector quantum circuit simulator.

Python API: ``qgt.simulate(circuit, shots=..., observables=..., config=..., comm=...)``
(see ``qgt.api``); command line: ``qgt`` / ``python -m qgt`` (see ``qgt.cli``).
"""

__version__ = "0.1.0"


def simulate(*args, **kwargs):
    """See :func:`qgt.api.simulate` (imported lazily so ``qgt plan`` needs no MPI)."""
    from qgt.api import simulate as _simulate

    return _simulate(*args, **kwargs)
