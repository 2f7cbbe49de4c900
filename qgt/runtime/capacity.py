"""Capacity: how much RAM a rank may use, which tier its slice lives on, and the
preflight that stops a job that cannot fit before anything large is allocated.

Called by ``qgt.api`` (rank 0 chooses the tier before planning; every rank then checks
its own node) and by ``qgt plan``.  Pure functions of the configuration and the node.
"""

from __future__ import annotations

import os

from qgt.units import format_size_approx as fmt

AMP = 16


def available_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def memory_limit(cfg, ranks_per_node: int) -> tuple[int, str]:
    """The byte budget of one rank and where it came from."""
    if cfg.memory_limit == "auto":
        return (int(available_memory() / max(1, ranks_per_node) * 0.9),
                "available RAM / ranks on the node x 0.9")
    return cfg.memory_limit, "memory_limit"


def scratch_dir(cfg) -> str:
    return cfg.scratch_dir or os.environ.get("TMPDIR") or "/tmp"


def ram_bytes(local_bits: int, cfg, threads: int) -> int:
    """RAM for an in-memory slice: the slice, exchange buffers, one block per thread."""
    return (AMP << local_bits) + 4 * cfg.exchange_chunk + threads * (AMP << cfg.block_qubits)


def page_bits(cfg, local_bits: int) -> int:
    return min((cfg.ssd_page_size // AMP).bit_length() - 1, local_bits)


def ssd_bytes(group_bits: int, pbits: int, cfg) -> int:
    """RAM out of core: the ring of group buffers and four page buffers."""
    return (cfg.prefetch_depth + 2) * (AMP << group_bits) + 4 * (AMP << pbits)


def choose_tier(cfg, n_qubits: int, ranks: int, ranks_per_node: int,
                threads: int) -> tuple[int, int] | None:
    """None for RAM, else (page bits, group bits) sized so the ring fits the budget."""
    local = n_qubits - (ranks.bit_length() - 1)
    limit, _ = memory_limit(cfg, ranks_per_node)
    if cfg.storage == "ram" or (cfg.storage == "auto" and ram_bytes(local, cfg, threads) <= limit):
        return None
    p = page_bits(cfg, local)
    budget = limit - 4 * (AMP << p) - threads * (AMP << cfg.block_qubits)
    per_group = budget // ((cfg.prefetch_depth + 2) * AMP)
    group = min(local, max(p, per_group.bit_length() - 1 if per_group > 0 else p))
    return p, group


def preflight(cfg, plan, ranks_per_node: int, threads: int) -> str | None:
    """This rank's verdict on RAM and scratch space (all ranks agree on the outcome)."""
    limit, source = memory_limit(cfg, ranks_per_node)
    local = plan.local_bits
    if plan.page_floor:
        need = ssd_bytes(plan.block_qubits, plan.page_floor, cfg)
        d = scratch_dir(cfg)
        if not os.path.isdir(d):
            return f"scratch_dir '{d}' does not exist on this node"
        st = os.statvfs(d)
        free = st.f_bavail * st.f_frsize
        dense = (AMP << local) * ranks_per_node
        if dense > free and not cfg.sparse_pages:
            return (f"the state needs {fmt(dense)} of scratch space on this node, but "
                    f"scratch_dir '{d}' has {fmt(free)} free: use more nodes, a larger "
                    "scratch_dir, or sparse_pages=true if the state stays sparse")
    else:
        need = ram_bytes(local, cfg, threads)
    if need > limit:
        what = "page-group buffers" if plan.page_floor else "state"
        hint = ("raise memory_limit" if cfg.storage == "ram" or plan.page_floor
                else "use more ranks or nodes, a larger memory_limit, or storage=ssd")
        return (f"the {what} need {fmt(need)} per rank but {source} is {fmt(limit)}: "
                f"{hint}")
    return None
