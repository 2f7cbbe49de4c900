"""Human-readable topology and binding reports, and the L2 size that sizes pages.

describe_topology and topology_report are what `qgt topology` prints; l2_bytes is read
by the planner's configuration to choose an in-RAM page of about one L2 cache.
"""

from __future__ import annotations

import os
from collections import Counter

from .discover import load_topology
from .model import Topology
from .plan import plan_bindings, ranges, resolve_strategy


def _bytes(n: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def l2_bytes(topology: Topology) -> int | None:
    """Size of one core's L2 cache (the smallest, if they differ), or None if unknown."""
    sizes = [c.size_bytes for c in topology.caches if c.level == 2 and c.size_bytes > 0]
    return min(sizes) if sizes else None


def describe_topology(topology: Topology) -> str:
    """Packages, NUMA nodes with their memory, cores, PUs and caches, one per line."""
    pus = topology.pus
    threads = sorted({len(c.pus) for c in topology.cores})
    counts_line = (
        f"  {_plural(len(topology.packages), 'package')}, "
        f"{_plural(len(topology.numa_nodes), 'NUMA node')}, "
        f"{_plural(len(topology.cores), 'core')}, {_plural(len(pus), 'PU')} "
        f"({'/'.join(map(str, threads))} per core), memory {_bytes(topology.memory_bytes)}"
    )
    lines = [f"topology ({topology.source}):", counts_line]
    for p in topology.packages:
        cores = [c for c in topology.cores if c.package == p.index]
        lines.append(
            f"  package {p.index}: {_plural(len(cores), 'core')}, PUs {ranges(p.cpus)}, "
            f"NUMA node(s) {ranges(p.numa_nodes)}"
        )
    for n in topology.numa_nodes:
        cores = [c for c in topology.cores if n.os_index in c.numa_nodes]
        lines.append(
            f"  NUMA node {n.os_index}: {_bytes(n.memory_bytes)}, "
            f"{_plural(len(cores), 'core')}, PUs {ranges(n.cpus)}"
        )
    counts = Counter((c.level, c.size_bytes, len(c.cpus)) for c in topology.caches)
    if counts:
        parts = [
            f"L{level} {_bytes(size)} x{count} ({_plural(width, 'PU')} each)"
            for (level, size, width), count in sorted(counts.items())
        ]
        lines.append("  caches: " + ", ".join(parts))
    else:
        lines.append("  caches: unknown")
    l2 = l2_bytes(topology)
    lines.append(f"  L2 per core: {_bytes(l2) if l2 else 'unknown'}")
    return "\n".join(lines)


def topology_report(strategy: str, ranks_per_node: int, synthetic: str | None = None) -> str:
    """What `qgt topology` prints: the topology, then the binding of every local rank.
    Raises the same UserError as the run would when the request is impossible."""
    strategy = resolve_strategy(strategy)
    topology = load_topology(synthetic)
    bindings = plan_bindings(topology, strategy, ranks_per_node)
    lines = [describe_topology(topology)]
    if not topology.synthetic:
        lines.append(f"  this process may now run on PUs {ranges(os.sched_getaffinity(0))}")
    lines.append(f"binding '{strategy}' with {_plural(ranks_per_node, 'rank')} per node:")
    lines.extend(f"  {b.description}" for b in bindings)
    shares = sorted({b.threads for b in bindings})
    if strategy != "none" and len(shares) > 1:
        lines.append(
            f"  note: ranks get unequal shares ({'/'.join(map(str, shares))} cores); every "
            "rank does the same work, so the smallest share sets the pace"
        )
    used = {pu for b in bindings for pu in b.cpus}
    idle = [pu for pu in topology.pus if pu not in used]
    if strategy != "none" and idle:
        lines.append(f"  note: PUs {ranges(idle)} are left idle")
    return "\n".join(lines)
