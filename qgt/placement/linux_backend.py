"""Fallback placement without hwloc: topology from Linux sysfs, CPU binding with
os.sched_setaffinity, and the transparent-huge-page mode.

Used by `discover.py` and `bind.py` only when pyhwloc cannot be imported (they log a
warning when they fall back).  It sees only the CPUs in this process's current affinity
mask (hwloc sees the whole cgroup), and it cannot bind memory.  The THP probe is used
on both paths: hwloc has no notion of huge pages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .model import Cache, Core, NumaNode, Package, Topology

SYS_CPU = Path("/sys/devices/system/cpu")
SYS_NODE = Path("/sys/devices/system/node")
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def parse_cpulist(text: str) -> tuple[int, ...]:
    """Parse a kernel CPU list such as "0-3,8,10-11" into sorted integers."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return tuple(sorted(out))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _size_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]?)", text)
    if match is None:
        return 0
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2)]
    return int(match.group(1)) * scale


def _numa_nodes(allowed: set[int]) -> list[NumaNode]:
    nodes = []
    for node_dir in sorted(SYS_NODE.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        cpus = tuple(c for c in parse_cpulist(_read(node_dir / "cpulist") or "") if c in allowed)
        meminfo = _read(node_dir / "meminfo") or ""
        match = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
        memory = int(match.group(1)) * 1024 if match else 0
        nodes.append(NumaNode(int(node_dir.name[4:]), memory, cpus))
    if not nodes:  # no sysfs NUMA information: one node with all of RAM
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        nodes.append(NumaNode(0, memory, tuple(sorted(allowed))))
    return nodes


def _caches(allowed: set[int]) -> list[Cache]:
    seen: dict[tuple[int, tuple[int, ...]], int] = {}
    for cpu in sorted(allowed):
        for index in (SYS_CPU / f"cpu{cpu}" / "cache").glob("index[0-9]*"):
            if _read(index / "type") not in ("Data", "Unified"):
                continue
            level = int(_read(index / "level") or 0)
            shared = parse_cpulist(_read(index / "shared_cpu_list") or str(cpu))
            shared = tuple(c for c in shared if c in allowed)
            seen[(level, shared)] = _size_bytes(_read(index / "size") or "")
    return [Cache(level, size, cpus) for (level, cpus), size in sorted(seen.items())]


def discover() -> Topology:
    """Snapshot the CPUs this process may run on, grouped into cores, packages and
    NUMA nodes as far as sysfs tells."""
    allowed = set(os.sched_getaffinity(0))
    nodes = _numa_nodes(allowed)
    node_of = {cpu: n.os_index for n in nodes for cpu in n.cpus}
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for cpu in sorted(allowed):
        topo = SYS_CPU / f"cpu{cpu}" / "topology"
        package = int(_read(topo / "physical_package_id") or 0)
        siblings = _read(topo / "thread_siblings_list") or str(cpu)
        key = (package, tuple(c for c in parse_cpulist(siblings) if c in allowed))
        groups.setdefault(key, []).append(cpu)
    # Order cores by package, then NUMA node, then first PU, as hwloc's logical order does.
    keys = sorted(groups, key=lambda k: (k[0], node_of.get(k[1][0], 0), k[1]))
    package_ids = sorted({k[0] for k in keys})
    cores = tuple(
        Core(
            index=i,
            pus=k[1],
            numa_nodes=tuple(sorted({node_of.get(c, nodes[0].os_index) for c in k[1]})),
            package=package_ids.index(k[0]),
        )
        for i, k in enumerate(keys)
    )
    packages = []
    for index in range(len(package_ids)):
        cpus = tuple(sorted(pu for c in cores if c.package == index for pu in c.pus))
        node_ids = tuple(sorted({n for c in cores if c.package == index for n in c.numa_nodes}))
        packages.append(Package(index, cpus, node_ids))
    return Topology(
        source="linux sysfs (hwloc unavailable)",
        packages=tuple(packages),
        numa_nodes=tuple(nodes),
        cores=cores,
        caches=tuple(_caches(allowed)),
    )


def bind_cpus(cpus: tuple[int, ...]) -> None:
    """Bind every thread of this process to `cpus`, as hwloc's PROCESS flag does:
    sched_setaffinity acts on one thread, and numpy's BLAS may already run others."""
    os.sched_setaffinity(0, set(cpus))  # first, so that an error names the main thread
    for task in Path("/proc/self/task").glob("[0-9]*"):
        try:
            os.sched_setaffinity(int(task.name), set(cpus))
        except ProcessLookupError:  # the thread ended meanwhile
            continue


def thp_mode() -> str:
    """The kernel's transparent-huge-page mode: "always", "madvise", "never" or
    "unavailable" (no THP support, or not Linux)."""
    text = _read(THP_ENABLED)
    if text is None:
        return "unavailable"
    match = re.search(r"\[(\w+)\]", text)
    return match.group(1) if match else "unavailable"
