"""apply_binding and allocate_bound: put this process, and its page buffers, where its
Binding says.

Called once per rank by the runtime at start-up, after plan_bindings and before any page
buffer or thread pool exists (threads inherit the CPU and memory binding of the thread
that starts them; buffers are placed when first touched).  hwloc is the primary path;
without pyhwloc the CPUs are bound with os.sched_setaffinity and memory is left to
first touch, with a logged warning.
"""

from __future__ import annotations

import logging
import mmap
import os

import numpy as np

from ..errors import CapacityError, InternalError, UserError
from . import hwloc_backend, linux_backend
from .discover import warn_fallback
from .model import Binding
from .plan import ranges

log = logging.getLogger("qgt.placement")
HUGE_PAGE_BYTES = 2 << 20  # x86-64 and most arm64 kernels use 2 MiB transparent huge pages
_HWLOC_ERRORS = (OSError, RuntimeError, ValueError)  # what pyhwloc raises on failure


def _affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _memory_state() -> tuple[list[int], str]:
    if not hwloc_backend.AVAILABLE:
        return [], "unknown (no hwloc)"
    try:
        nodes, policy = hwloc_backend.current_membind()
    except _HWLOC_ERRORS as exc:
        return [], f"unknown ({exc})"
    return list(nodes), policy


def _bind_cpus(binding: Binding) -> str:
    if hwloc_backend.AVAILABLE:
        bind, backend = hwloc_backend.bind_cpus, "hwloc"
    else:
        warn_fallback("binding CPUs with os.sched_setaffinity; memory is not bound")
        bind, backend = linux_backend.bind_cpus, "sched_setaffinity"
    try:
        bind(binding.cpus)
    except _HWLOC_ERRORS as exc:
        raise UserError(
            f"cannot bind local rank {binding.local_rank} to PUs {ranges(binding.cpus)} "
            f"({exc}); this process may run on PUs {ranges(_affinity())}. Plan on the "
            "node that runs the job, or let qgt bind (srun --cpu-bind=none, "
            "mpirun --bind-to none)"
        ) from exc
    return backend


def _bind_memory(binding: Binding, warnings: list[str]) -> tuple[list[int], str]:
    if not hwloc_backend.AVAILABLE:
        warnings.append("memory not bound (no hwloc): pages are placed by first touch")
        return [], "default"
    try:
        hwloc_backend.bind_memory(binding.numa_nodes, binding.mem_policy)
    except _HWLOC_ERRORS as exc:
        # Containers often forbid set_mempolicy; bound CPUs still make first touch local.
        warnings.append(
            f"memory not bound to NUMA node(s) {ranges(binding.numa_nodes)} ({exc}): "
            "pages are placed by first touch"
        )
    return _memory_state()


def apply_binding(binding: Binding, huge_pages: bool = False) -> dict:
    """Bind this process's CPUs and memory policy as `binding` says, and return what
    took effect: {"local_rank", "strategy", "backend", "cpus" (from
    os.sched_getaffinity), "numa_nodes", "mem_policy", "threads", "huge_pages",
    "warnings"}.

    Strategy 'none' changes nothing and never raises.  Raises UserError when the CPUs
    cannot be bound, or when the OS binds other CPUs than planned (a cgroup that
    forbids some of them).  A memory policy the OS refuses is a warning, not an error."""
    warnings: list[str] = []
    backend = "hwloc" if hwloc_backend.AVAILABLE else "sched_setaffinity"
    if binding.strategy == "none":
        nodes, policy = _memory_state()
    else:
        if not binding.cpus:
            raise InternalError(f"binding of local rank {binding.local_rank} has no CPUs")
        backend = _bind_cpus(binding)
        got = _affinity()
        if set(got) != set(binding.cpus):
            raise UserError(
                f"local rank {binding.local_rank} was to run on PUs {ranges(binding.cpus)} "
                f"but the OS bound it to PUs {ranges(got)}: the job's cgroup forbids some "
                "of them; plan with the topology this process sees"
            )
        nodes, policy = _bind_memory(binding, warnings)
    thp = linux_backend.thp_mode()
    if huge_pages and thp in ("never", "unavailable"):
        warnings.append(f"huge pages requested but transparent huge pages are {thp}")
    result = {
        "local_rank": binding.local_rank,
        "strategy": binding.strategy,
        "backend": backend,
        "cpus": _affinity(),
        "numa_nodes": nodes,
        "mem_policy": policy,
        "threads": binding.threads,
        "huge_pages": {"requested": bool(huge_pages), "thp": thp},
        "warnings": warnings,
    }
    for text in warnings:
        log.warning("local rank %d: %s", binding.local_rank, text)
    log.info(
        "local rank %d bound (%s, %s): PUs %s, memory %s on NUMA node(s) %s",
        binding.local_rank,
        binding.strategy,
        backend,
        ranges(result["cpus"]),
        policy,
        ranges(nodes),
    )
    return result


def allocate_bound(nbytes: int, binding: Binding, huge_pages: bool = False) -> np.ndarray:
    """A zeroed uint8 buffer of `nbytes` whose pages sit on the binding's NUMA nodes.

    The pages are anonymous mmap memory bound with hwloc (when the strategy binds) and
    touched here once, so they are placed now rather than by whichever thread writes
    first.  With huge_pages the buffer is 2 MiB aligned and advised MADV_HUGEPAGE.
    The buffer lives as long as the array (or a view of it) does."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise InternalError(f"allocate_bound needs a positive byte count, got {nbytes!r}")
    page = mmap.PAGESIZE
    align = HUGE_PAGE_BYTES if huge_pages else page
    size = -(-nbytes // page) * page
    try:
        area = mmap.mmap(-1, size + align - page)
    except OSError as exc:
        raise CapacityError(f"cannot map {nbytes} bytes of page buffers: {exc}") from exc
    whole = np.frombuffer(area, dtype=np.uint8)
    offset = (-whole.ctypes.data) % align
    pages = whole[offset : offset + size]
    if huge_pages:
        try:
            area.madvise(mmap.MADV_HUGEPAGE, offset, size)
        except (AttributeError, OSError) as exc:  # no THP in this kernel or platform
            log.warning("huge pages unavailable for page buffers (%s)", exc)
    if binding.strategy != "none" and binding.numa_nodes and hwloc_backend.AVAILABLE:
        try:
            hwloc_backend.bind_area(memoryview(pages), binding.numa_nodes, binding.mem_policy)
        except _HWLOC_ERRORS as exc:
            log.warning(
                "page buffers not bound to NUMA node(s) %s (%s); placed by first touch",
                ranges(binding.numa_nodes),
                exc,
            )
    pages[::page] = 0  # first touch: one write per page makes the kernel place it now
    return pages[:nbytes]
