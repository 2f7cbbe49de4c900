"""Plain data for placement: a snapshot of the node's topology and a rank's Binding.

Discovery (`discover.py`, via hwloc or the Linux fallback) fills these records once and
drops the hwloc handle, so planning (`plan.py`) and reporting (`report.py`) are pure
functions of frozen data: testable on synthetic topologies and picklable into metadata.
CPU numbers are OS indices (what `os.sched_setaffinity` and `taskset` use); NUMA node
numbers are OS indices too (what `numactl` uses).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

STRATEGIES = ("none", "core", "socket", "numa")


@dataclass(frozen=True)
class Core:
    """One physical core: its hardware threads (PUs) and the NUMA nodes local to it."""

    index: int  # logical index, in topology order (cores of one NUMA node are contiguous)
    pus: tuple[int, ...]
    numa_nodes: tuple[int, ...]
    package: int  # logical index of its package (0 when the machine reports none)


@dataclass(frozen=True)
class NumaNode:
    """One NUMA memory node: its OS index, local memory and the PUs close to it."""

    os_index: int
    memory_bytes: int
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class Package:
    """One package (socket): its PUs and the NUMA nodes inside it."""

    index: int
    cpus: tuple[int, ...]
    numa_nodes: tuple[int, ...]


@dataclass(frozen=True)
class Cache:
    """One data or unified cache: level (1, 2, 3...), size, and the PUs sharing it."""

    level: int
    size_bytes: int
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class Topology:
    """What one node offers this process: only the PUs and NUMA nodes it may use
    (hwloc drops the ones the job's cgroup forbids)."""

    source: str  # "hwloc", "hwloc synthetic '<string>'" or "linux sysfs (hwloc unavailable)"
    packages: tuple[Package, ...]
    numa_nodes: tuple[NumaNode, ...]
    cores: tuple[Core, ...]
    caches: tuple[Cache, ...] = ()
    synthetic: bool = False

    @property
    def pus(self) -> tuple[int, ...]:
        return tuple(sorted(pu for core in self.cores for pu in core.pus))

    @property
    def memory_bytes(self) -> int:
        return sum(node.memory_bytes for node in self.numa_nodes)

    def to_dict(self) -> dict:
        """A JSON-ready summary for run metadata (counts, not every object)."""
        return {
            "source": self.source,
            "packages": len(self.packages),
            "numa_nodes": [
                {"os_index": n.os_index, "memory_bytes": n.memory_bytes, "cpus": list(n.cpus)}
                for n in self.numa_nodes
            ],
            "cores": len(self.cores),
            "pus": len(self.pus),
            "caches": sorted({(c.level, c.size_bytes) for c in self.caches}),
        }


@dataclass(frozen=True)
class Binding:
    """Where one local rank runs: the CPUs it is bound to and the NUMA nodes its memory
    comes from.  `threads` is the number of kernel threads it should start (one per core
    of its share), so that ranks sharing a node do not oversubscribe it."""

    local_rank: int
    strategy: str
    cpus: tuple[int, ...]
    numa_nodes: tuple[int, ...]
    description: str
    mem_policy: str = "default"  # "default" (unchanged), "bind" or "interleave"
    threads: int = 1
    cores: tuple[int, ...] = field(default=())  # logical core indices of the share

    def to_dict(self) -> dict:
        """A JSON-ready copy for logs and run metadata."""
        d = asdict(self)
        for key in ("cpus", "numa_nodes", "cores"):
            d[key] = list(d[key])
        return d
