"""The only module in qgt that imports pyhwloc: topology discovery and CPU/memory
binding through hwloc.

Called by `discover.py` (topology snapshots) and `bind.py` (binding this process and
its buffers).  If pyhwloc cannot be imported or its libhwloc does not load, AVAILABLE
is False and the callers fall back to `linux_backend.py`; nothing here raises at import.
pyhwloc's own exceptions (ValueError, PermissionError, NotImplementedError, its
RuntimeError subclasses) pass through: the callers turn them into qgt errors.
"""

from __future__ import annotations

import threading

from .model import Cache, Core, NumaNode, Package, Topology

try:
    import pyhwloc
    from pyhwloc.bitmap import Bitmap
    from pyhwloc.hwobject import ObjType
    from pyhwloc.topology import CpuBindFlags, MemBindFlags, MemBindPolicy

    AVAILABLE = True
    IMPORT_ERROR: str | None = None
    VERSION = str(pyhwloc.__version__)
except (ImportError, OSError, RuntimeError) as exc:  # missing, or libhwloc fails to load
    AVAILABLE = False
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
    VERSION = ""

# One loaded topology of this machine, shared by every bind call: loading costs
# milliseconds, and buffers are allocated many times per run.
_SYSTEM = None
_SYSTEM_LOCK = threading.Lock()


def _system():
    global _SYSTEM
    with _SYSTEM_LOCK:
        if _SYSTEM is None:
            _SYSTEM = pyhwloc.from_this_system(load=True)
        return _SYSTEM


def _tuple(bitmap) -> tuple[int, ...]:
    return tuple(sorted(bitmap)) if bitmap is not None else ()


def _cache_level(obj) -> int:
    # The type name carries the level ("L2CACHE"): pyhwloc 3.0.1 misreads the depth
    # field of the cache attributes, while the size field reads correctly.
    return int(obj.type.name[1])


def _snapshot(topo, source: str, synthetic: bool) -> Topology:
    packages = [
        Package(index=p.logical_index, cpus=_tuple(p.cpuset), numa_nodes=_tuple(p.nodeset))
        for p in topo.iter_packages()
    ]
    numa_nodes = [
        NumaNode(os_index=n.os_index, memory_bytes=int(n.local_memory), cpus=_tuple(n.cpuset))
        for n in topo.iter_numa_nodes()
    ]
    cores = []
    units = list(topo.iter_cores()) or list(topo.iter_cpus())  # no Core level: PUs are cores
    for i, obj in enumerate(units):
        package = obj.get_ancestor_obj_by_type(ObjType.PACKAGE)
        cores.append(
            Core(
                index=i,
                pus=_tuple(obj.cpuset),
                numa_nodes=_tuple(obj.nodeset),
                package=package.logical_index if package is not None else 0,
            )
        )
    cores = [c for c in cores if c.pus]
    caches = [
        Cache(level=_cache_level(o), size_bytes=int(o.size), cpus=_tuple(o.cpuset))
        for o in topo.iter_all_breadth_first()
        if o.is_dcache()
    ]
    if not packages:  # some machines and synthetic strings have no Package level
        all_cpus = tuple(sorted(pu for c in cores for pu in c.pus))
        packages = [Package(0, all_cpus, tuple(n.os_index for n in numa_nodes))]
    return Topology(
        source=source,
        packages=tuple(packages),
        numa_nodes=tuple(numa_nodes),
        cores=tuple(cores),
        caches=tuple(caches),
        synthetic=synthetic,
    )


def discover(synthetic: str | None = None) -> Topology:
    """Snapshot this machine's topology, or an hwloc synthetic one ("pack:2 core:4 pu:2")."""
    if synthetic is not None:
        with pyhwloc.from_synthetic(synthetic, load=True) as topo:
            return _snapshot(topo, f"hwloc {VERSION} synthetic {synthetic!r}", True)
    with pyhwloc.from_this_system(load=True) as topo:
        return _snapshot(topo, f"hwloc {VERSION}, this machine", False)


_POLICIES = {"bind": "BIND", "interleave": "INTERLEAVE", "default": "DEFAULT"}


def bind_cpus(cpus: tuple[int, ...]) -> None:
    """Bind every thread of this process to `cpus` (threads started later inherit it)."""
    _system().set_cpubind(set(cpus), CpuBindFlags.PROCESS)


def bind_memory(numa_nodes: tuple[int, ...], policy: str) -> None:
    """Set this thread's memory policy; threads it starts later inherit it.

    Linux has no process-wide memory policy (hwloc reports ENOSYS for PROCESS), so the
    binding is applied to the calling thread, which must be the one that later starts
    the kernel and I/O threads."""
    nodeset = Bitmap.from_pyseq(numa_nodes)
    flags = MemBindFlags.BYNODESET | MemBindFlags.THREAD
    _system().set_membind(nodeset, getattr(MemBindPolicy, _POLICIES[policy]), flags)


def current_membind() -> tuple[tuple[int, ...], str]:
    """The calling thread's memory policy: (NUMA nodes, policy name in lower case)."""
    nodeset, policy = _system().get_membind(MemBindFlags.BYNODESET | MemBindFlags.THREAD)
    return _tuple(nodeset), policy.name.lower()


def bind_area(buffer: memoryview, numa_nodes: tuple[int, ...], policy: str) -> None:
    """Bind the pages of one buffer to `numa_nodes`, whichever thread touches them first."""
    nodeset = Bitmap.from_pyseq(numa_nodes)
    _system().set_area_membind(
        buffer, nodeset, getattr(MemBindPolicy, _POLICIES[policy]), MemBindFlags.BYNODESET
    )


def area_membind(buffer: memoryview) -> tuple[tuple[int, ...], str]:
    """The memory policy of one buffer: (NUMA nodes, policy name in lower case)."""
    nodeset, policy = _system().get_area_membind(buffer, MemBindFlags.BYNODESET)
    return _tuple(nodeset), policy.name.lower()
