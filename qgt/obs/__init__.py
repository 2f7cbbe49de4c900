"""Observing a run: live progress (``progress``), logging with the rank in every record
(``logs``), per-rank trace events (``trace``), the timeline plot (``timeline``) and the
bottleneck report (``report``).

Called by ``qgt.api`` (progress, logging, tracing hooks around the plan steps), by the
engines (trace spans around page I/O, exchanges and kernels) and by the command line
(``qgt run --progress/--trace``, ``qgt timeline``, ``qgt report``).  Nothing here
imports mpi4py: collectives go through ``qgt.runtime.comm``.
"""

from qgt.obs.progress import ProgressEvent

__all__ = ["ProgressEvent"]
