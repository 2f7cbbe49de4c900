"""load_topology: a snapshot of this node's topology (or a synthetic one) for planning.

Called by the runtime at start-up (one snapshot per rank, logged in its metadata) and by
`qgt topology`.  hwloc is the primary path; when pyhwloc cannot be imported the Linux
sysfs fallback is used, with one logged warning per process.
"""

from __future__ import annotations

import logging

from ..errors import UserError
from . import hwloc_backend, linux_backend
from .model import Topology

log = logging.getLogger("qgt.placement")
_warned = False


def warn_fallback(what: str) -> None:
    """Log once per process that hwloc is missing and what is done instead."""
    global _warned
    if not _warned:
        log.warning("pyhwloc is unavailable (%s); %s", hwloc_backend.IMPORT_ERROR, what)
        _warned = True


def load_topology(synthetic: str | None = None) -> Topology:
    """This machine's topology as this process may use it, or the hwloc synthetic
    topology described by `synthetic` (e.g. "pack:2 numa:2 core:4 pu:2")."""
    if synthetic is not None:
        if not hwloc_backend.AVAILABLE:
            raise UserError(
                f"a synthetic topology ({synthetic!r}) needs pyhwloc, which failed to "
                f"import: {hwloc_backend.IMPORT_ERROR}"
            )
        try:
            return hwloc_backend.discover(synthetic)
        except (ValueError, RuntimeError) as exc:
            raise UserError(
                f"hwloc rejects the synthetic topology {synthetic!r} ({exc}); write levels "
                "from the top down with their arity, e.g. 'pack:2 numa:2 core:4 pu:2'"
            ) from exc
    if hwloc_backend.AVAILABLE:
        try:
            return hwloc_backend.discover()
        except (OSError, RuntimeError, ValueError) as exc:
            # A machine hwloc cannot read (odd container, missing /sys) can still run.
            log.warning("hwloc could not read this machine's topology (%s); using sysfs", exc)
            return linux_backend.discover()
    warn_fallback("reading the topology from sysfs and binding with os.sched_setaffinity")
    return linux_backend.discover()
