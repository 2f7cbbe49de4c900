"""Capacity: how much RAM a rank may use, which tier its slice lives on, and the
preflight that stops a job that cannot fit before anything large is allocated.

Called by ``qgt.api`` (rank 0 chooses the tier before planning; every rank then checks
its own node) and by ``qgt plan``.  Pure functions of the configuration and the node.
"""

from __future__ import annotations

import os

from qgt.precision import amp_bytes
from qgt.runtime.stale_shm import SHM_DIR  # where MPICH (and Open MPI) back shared windows
from qgt.units import format_size_approx as fmt


def shm_free_bytes() -> int:
    """Free space of the tmpfs that holds shared windows (0 when there is none)."""
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


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
    amp = amp_bytes(cfg.precision)
    return (amp << local_bits) + 4 * cfg.exchange_chunk + threads * (amp << cfg.block_qubits)


def page_bits(cfg, local_bits: int) -> int:
    return min((cfg.ssd_page_size // amp_bytes(cfg.precision)).bit_length() - 1, local_bits)


def ssd_bytes(group_bits: int, pbits: int, cfg) -> int:
    """RAM out of core: the ring of group buffers and four page buffers."""
    amp = amp_bytes(cfg.precision)
    return (cfg.prefetch_depth + 2) * (amp << group_bits) + 4 * (amp << pbits)


ADJOINT_GROUPS = 2  # lambda's engine beside psi's on the SSD tier: two group buffers


def choose_tier(cfg, n_qubits: int, ranks: int, ranks_per_node: int, threads: int,
                support: int | None = None, widest: int = 1,
                adjoint: bool = False) -> tuple[int, int] | None:
    """None for RAM, else (page bits, group bits) sized so the ring fits the budget.
    An ``adjoint`` run holds a second state (lambda): twice the RAM tier's slice, or on
    the SSD tier ``ADJOINT_GROUPS`` more group buffers.

    ``support`` is log2 of a bound on the non-zero amplitudes (``qgt.plan.support``).
    When the state can never have an amplitude in more than a sliver of its pages, a
    pass only visits the few groups holding them, and smaller groups make each visit
    cheap: the group then holds the in-page bits plus ``widest`` (at least 2) bits."""
    from qgt.plan.planner import check_ranks

    local = n_qubits - check_ranks(n_qubits, ranks)  # a bad rank count is a user error
    limit, _ = memory_limit(cfg, ranks_per_node)
    states = 2 if adjoint else 1
    if cfg.storage == "ram" or (cfg.storage == "auto" and
                                states * ram_bytes(local, cfg, threads) <= limit):
        return None
    p = page_bits(cfg, local)
    amp = amp_bytes(cfg.precision)
    budget = limit - 4 * states * (amp << p) - threads * (amp << cfg.block_qubits)
    rings = cfg.prefetch_depth + 2 + (ADJOINT_GROUPS if adjoint else 0)
    per_group = budget // (rings * amp)
    group = min(local, max(p, per_group.bit_length() - 1 if per_group > 0 else p))
    if support is not None and sparse_state(cfg, support, local, p):
        group = min(group, p + max(widest, SPARSE_GROUP_EXTRA))
    return p, group


SPARSE_GROUP_EXTRA = 2  # bits beyond the in-page ones in a sparse state's page group
INDEX_BYTES_PER_PAGE = 160  # one stored page in the index: dict entry, int keys, slot


def sparse_state(cfg, support: int, local: int, p: int) -> bool:
    """Whether the state can never reach one amplitude in every page of a rank."""
    return cfg.sparse_pages and support < local - p


def stored_pages_bound(plan, support: int | None) -> int:
    """The most pages one rank can store: every non-zero amplitude in its own page."""
    pages = 1 << (plan.local_bits - plan.page_floor)
    return pages if support is None else min(pages, 1 << support)


def preflight(cfg, plan, ranks_per_node: int, threads: int) -> str | None:
    """This rank's verdict on RAM and scratch space (all ranks agree on the outcome)."""
    limit, source = memory_limit(cfg, ranks_per_node)
    local = plan.local_bits
    amp = amp_bytes(cfg.precision)
    if plan.page_floor:
        need = ssd_bytes(plan.block_qubits, plan.page_floor, cfg)
        d = scratch_dir(cfg)
        if not os.path.isdir(d):
            return f"scratch_dir '{d}' does not exist on this node"
        st = os.statvfs(d)
        free = st.f_bavail * st.f_frsize
        dense = (amp << local) * ranks_per_node
        if dense > free and not cfg.sparse_pages:
            return (f"the state needs {fmt(dense)} of scratch space on this node, but "
                    f"scratch_dir '{d}' has {fmt(free)} free: use more nodes, a larger "
                    "scratch_dir, or sparse_pages=true if the state stays sparse")
        support = plan.decisions.get("support_log2")
        pages = stored_pages_bound(plan, support if cfg.sparse_pages else None)
        stored = pages * (amp << plan.page_floor) * ranks_per_node
        if stored > free:
            return (f"the circuit can make up to 2^{support} amplitudes non-zero (a bound "
                    f"from its gates), so its pages may need {fmt(stored)} of scratch space "
                    f"on this node, but scratch_dir '{d}' has {fmt(free)} free: this state "
                    "cannot be simulated here; use more nodes or a larger scratch_dir")
        # the index is Python metadata beside the ring (memory_limit budgets the state's
        # buffers): it must fit this rank's share of the node's RAM
        ram = available_memory() // max(1, ranks_per_node)
        if pages * INDEX_BYTES_PER_PAGE > ram:
            return (f"the page index of up to {pages} stored pages needs "
                    f"{fmt(pages * INDEX_BYTES_PER_PAGE)} per rank but this rank's share of "
                    f"the node's available RAM is {fmt(ram)}: use a larger ssd_page_size "
                    "or more nodes")
    else:
        need = ram_bytes(local, cfg, threads)
    if need > limit:
        what = "page-group buffers" if plan.page_floor else "state"
        hint = ("raise memory_limit" if cfg.storage == "ram" or plan.page_floor
                else "use more ranks or nodes, a larger memory_limit, or storage=ssd")
        return (f"the {what} need {fmt(need)} per rank but {source} is {fmt(limit)}: "
                f"{hint}")
    return None
