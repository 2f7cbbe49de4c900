"""Plan summaries: what ``qgt plan`` prints and what a result records.

Pure functions of a Plan and a few machine figures; no MPI.
"""

from __future__ import annotations

from qgt.plan.steps import ExpectStep, GlobalSwap, MeasureStep, Plan, Sweep
from qgt.units import format_size_approx as format_bytes

AMP = 16  # bytes per complex128 amplitude


def plan_figures(plan: Plan, exchange_buffer_bytes: int = 0, threads: int = 1) -> dict:
    """Counts and bytes per rank for a plan."""
    c = plan.counts()
    slice_bytes = AMP << plan.local_bits
    exchanged = sum((1 - 2.0 ** -len(s.pairs)) * slice_bytes
                    for s in plan.steps if isinstance(s, GlobalSwap))
    block_bytes = AMP << plan.block_qubits
    return {
        "n_qubits": plan.n_qubits,
        "ranks": 1 << plan.rank_bits,
        "local_qubits": plan.local_bits,
        "block_qubits": plan.block_qubits,
        "page_qubits": plan.page_qubits,
        "steps": len(plan.steps),
        "sweeps": c["sweeps"],
        "gates": c["ops"],
        "global_swaps": c["global_swaps"],
        "swapped_bits": c["swapped_bits"],
        "measure_steps": c["measure_steps"],
        "lower_bound_global_swaps": plan.lower_bound_exchanges,
        "bytes_exchanged_per_rank": int(exchanged),
        "state_bytes_per_rank": slice_bytes,
        "memory_per_rank": slice_bytes + exchange_buffer_bytes + threads * block_bytes,
        "trajectories": plan.trajectories,
        "plan_hash": plan.digest(),
        "decisions": dict(plan.decisions),
    }


def describe_step(i: int, s) -> str:
    if isinstance(s, Sweep):
        names: dict[str, int] = {}
        for op in s.ops:
            names[op.name] = names.get(op.name, 0) + 1
        top = ", ".join(f"{k} x{v}" for k, v in sorted(names.items(), key=lambda kv: -kv[1])[:6])
        return f"{i:4d}  sweep        {len(s.ops):5d} ops  block bits {list(s.wbits)}  [{top}]"
    if isinstance(s, GlobalSwap):
        return f"{i:4d}  global swap  (local bit, rank bit) {list(s.pairs)}"
    if isinstance(s, MeasureStep):
        return f"{i:4d}  measure      bits {list(s.bits)} -> clbits {list(s.clbits)}"
    if isinstance(s, ExpectStep):
        return f"{i:4d}  expectation  observable #{s.index}"
    return f"{i:4d}  {s!r}"


def format_plan(plan: Plan, figures: dict, verbose: bool = False) -> str:
    lines = [
        f"qgt plan: {figures['n_qubits']} qubits on {figures['ranks']} rank(s) "
        f"({figures['local_qubits']} local qubits per rank)",
        f"  steps {figures['steps']}: {figures['sweeps']} sweeps, {figures['global_swaps']} "
        f"global swaps ({figures['swapped_bits']} bits), {figures['measure_steps']} "
        f"measurement steps",
        f"  gates after fusion: {figures['gates']}",
        f"  global swaps: {figures['global_swaps']} "
        f"(lower bound {figures['lower_bound_global_swaps']})",
        f"  bytes exchanged per rank: {format_bytes(figures['bytes_exchanged_per_rank'])}",
        f"  state per rank: {format_bytes(figures['state_bytes_per_rank'])}; "
        f"memory per rank: {format_bytes(figures['memory_per_rank'])}",
        f"  working set: 2^{figures['block_qubits']} amplitudes; "
        f"runs of 2^{figures['page_qubits']}",
        f"  plan hash: {figures['plan_hash']}",
    ]
    if plan.trajectories:
        lines.append("  mid-circuit measurement: every shot reruns the plan")
    if verbose:
        lines.append("  steps:")
        lines += ["  " + describe_step(i, s) for i, s in enumerate(plan.steps)]
    return "\n".join(lines)
