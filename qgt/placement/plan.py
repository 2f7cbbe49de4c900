"""plan_bindings: which CPUs and NUMA nodes each local rank of a node gets.

Pure functions of a Topology snapshot, called by the runtime (each rank plans the whole
node and takes its own entry, so all ranks agree without talking) and by `qgt topology`.
Also the strategy names and the QGT_BINDING / QGT_HUGE_PAGES environment settings.

A strategy names the domain a rank is bound to; R local ranks share D domains:

    R <= D   each rank gets whole domains, split as evenly as possible
             numa, R=2, D=4:   [node0 node1 | node2 node3]
    R >  D   ranks are spread over the domains in blocks (counts differ by at most
             one), and the ranks on one domain split its cores into disjoint shares
             numa, R=8, D=4:   [r0 r1 | r2 r3 | r4 r5 | r6 r7]
                               node0   node1   node2   node3

'core' is the same rule with one domain, the whole node: every rank gets a disjoint
share of cores (one core each when R equals the core count).  Shares never overlap, so
`threads` (one per core of the share) never oversubscribes the node.  Consecutive local
ranks are neighbours, so the partners of a swap on the lowest rank bit share a domain.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..errors import ConfigError, InternalError, UserError
from .model import STRATEGIES, Binding, Core, Topology

ALIASES = {"package": "socket", "sockets": "socket", "cores": "core", "off": "none"}


def resolve_strategy(name: str) -> str:
    """The canonical strategy for a user-given name (case-insensitive, with aliases)."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key in STRATEGIES:
        return key
    near = difflib.get_close_matches(key, STRATEGIES + tuple(ALIASES), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ConfigError(f"unknown binding strategy {name!r}{hint}; allowed: {', '.join(STRATEGIES)}")


def ranges(values) -> str:
    """Compact list of integers, like the kernel's CPU lists: (0, 1, 2, 5) -> "0-2,5"."""
    values = sorted(set(values))
    parts = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts) or "-"


@dataclass(frozen=True)
class _Domain:
    label: str  # "NUMA node 1", "package 0", "node"
    cores: tuple[Core, ...]


def _split(n: int, parts: int) -> list[range]:
    """Split range(n) into `parts` contiguous blocks whose sizes differ by at most one."""
    base, extra = divmod(n, parts)
    out, start = [], 0
    for p in range(parts):
        size = base + (1 if p < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def _domains(topology: Topology, strategy: str) -> list[_Domain]:
    if strategy == "core":
        return [_Domain("node", topology.cores)]
    domains: list[_Domain] = []
    if strategy == "socket":
        for p in topology.packages:
            cores = tuple(c for c in topology.cores if c.package == p.index)
            domains.append(_Domain(f"package {p.index}", cores))
    else:
        # NUMA nodes with the same CPUs (DDR + HBM on one die) form one domain; nodes
        # without CPUs (CXL or HBM-only memory) are no place to run a rank.
        by_cpus: dict[tuple[int, ...], list[int]] = {}
        for node in topology.numa_nodes:
            if node.cpus:
                by_cpus.setdefault(node.cpus, []).append(node.os_index)
        for cpus, node_ids in by_cpus.items():
            cores = tuple(c for c in topology.cores if c.pus[0] in cpus)
            word = "NUMA node" if len(node_ids) == 1 else "NUMA nodes"
            domains.append(_Domain(f"{word} {ranges(node_ids)}", cores))
    return [d for d in domains if d.cores]


def _binding(
    topology: Topology, strategy: str, rank: int, nranks: int, cores, where: str
) -> Binding:
    cpus = tuple(sorted(pu for c in cores for pu in c.pus))
    nodes = tuple(sorted({n for c in cores for n in c.numa_nodes}))
    nodes = nodes or tuple(n.os_index for n in topology.numa_nodes)
    policy = "bind" if len(nodes) == 1 else "interleave"
    text = (
        f"local rank {rank}/{nranks}: {strategy} -> {where}, {len(cores)} core(s) "
        f"[{ranges(c.index for c in cores)}], PUs {ranges(cpus)}; memory {policy} "
        f"on NUMA node(s) {ranges(nodes)}"
    )
    return Binding(
        local_rank=rank,
        strategy=strategy,
        cpus=cpus,
        numa_nodes=nodes,
        description=text,
        mem_policy=policy,
        threads=len(cores),
        cores=tuple(c.index for c in cores),
    )


def _unbound(topology: Topology, nranks: int) -> list[Binding]:
    cpus = topology.pus
    nodes = tuple(n.os_index for n in topology.numa_nodes)
    threads = max(1, len(topology.cores) // nranks)
    return [
        Binding(
            local_rank=r,
            strategy="none",
            cpus=cpus,
            numa_nodes=nodes,
            description=(
                f"local rank {r}/{nranks}: none -> not bound (may run on PUs {ranges(cpus)}, "
                f"memory by first touch), {threads} thread(s)"
            ),
            mem_policy="default",
            threads=threads,
            cores=(),
        )
        for r in range(nranks)
    ]


def plan_bindings(topology: Topology, strategy: str, ranks_per_node: int) -> list[Binding]:
    """The binding of every local rank 0..ranks_per_node-1 of one node.

    Raises UserError when the strategy cannot give each rank at least one core of its
    own, ConfigError for an unknown strategy."""
    strategy = resolve_strategy(strategy)
    if isinstance(ranks_per_node, bool) or not isinstance(ranks_per_node, int):
        raise UserError(f"ranks per node must be an integer, got {ranks_per_node!r}")
    if ranks_per_node < 1:
        raise UserError(f"ranks per node must be at least 1, got {ranks_per_node}")
    if not topology.cores:
        raise InternalError(f"topology from {topology.source} lists no cores")
    if strategy == "none":
        return _unbound(topology, ranks_per_node)

    nranks = ranks_per_node
    # A topology that reports no NUMA node or package with CPUs is treated as one domain.
    domains = _domains(topology, strategy) or [_Domain("node", topology.cores)]
    if nranks > len(topology.cores):
        raise UserError(
            f"binding '{strategy}' gives every rank at least one core of its own, but "
            f"{nranks} ranks per node were asked for and this node has "
            f"{len(topology.cores)} cores (PUs {ranges(topology.pus)}); use at most "
            f"{len(topology.cores)} ranks per node, or binding 'none'"
        )
    plans = []
    if nranks <= len(domains):
        for rank, block in enumerate(_split(len(domains), nranks)):
            chosen = [domains[d] for d in block]
            cores = tuple(c for d in chosen for c in d.cores)
            where = " + ".join(d.label for d in chosen)
            plans.append(_binding(topology, strategy, rank, nranks, cores, where))
        return plans
    for d, rank_block in enumerate(_split(nranks, len(domains))):
        domain, sharers = domains[d], len(rank_block)
        if sharers > len(domain.cores):
            raise UserError(
                f"binding '{strategy}' puts {sharers} ranks on {domain.label}, which has "
                f"only {len(domain.cores)} core(s); use fewer ranks per node, or binding "
                "'core' or 'none'"
            )
        shares = _split(len(domain.cores), sharers)
        for j, (share, rank) in enumerate(zip(shares, rank_block, strict=True)):
            cores = tuple(domain.cores[i] for i in share)
            where = domain.label if sharers == 1 else f"{domain.label} share {j + 1}/{sharers}"
            plans.append(_binding(topology, strategy, rank, nranks, cores, where))
    return plans
