"""NUMA placement: bind each MPI rank's CPUs and memory to its share of the node.

Public face of the package; the runtime calls, per rank and before allocating anything:

    topology = load_topology()
    binding = plan_bindings(topology, strategy, ranks_per_node)[local_rank]
    effect = apply_binding(binding, huge_pages)      # logged and put in run metadata
    buffer = allocate_bound(nbytes, binding, huge_pages)

and `qgt topology` prints topology_report(...).  Only `hwloc_backend.py` imports
pyhwloc; `linux_backend.py` is the fallback.  See docs/placement.md.
"""

from .bind import allocate_bound, apply_binding
from .discover import load_topology
from .model import STRATEGIES, Binding, Cache, Core, NumaNode, Package, Topology
from .plan import plan_bindings, resolve_strategy
from .report import describe_topology, l2_bytes, topology_report

__all__ = [
    "STRATEGIES",
    "Binding",
    "Cache",
    "Core",
    "NumaNode",
    "Package",
    "Topology",
    "allocate_bound",
    "apply_binding",
    "describe_topology",
    "l2_bytes",
    "load_topology",
    "plan_bindings",
    "resolve_strategy",
    "topology_report",
]
