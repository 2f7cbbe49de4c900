"""Plan summaries: what ``qgt plan`` prints and what a result records.

Pure functions of a Plan and a few machine figures; no MPI.
"""

from __future__ import annotations

from qgt.plan.steps import ExpectStep, GlobalSwap, MeasureStep, Plan, Sweep
from qgt.precision import amp_bytes, of_plan
from qgt.units import format_size_approx as format_bytes


def plan_figures(plan: Plan, exchange_buffer_bytes: int = 0, threads: int = 1) -> dict:
    """Counts and bytes per rank for a plan."""
    c = plan.counts()
    amp = amp_bytes(of_plan(plan))  # 16 bytes per amplitude, 8 in single precision
    slice_bytes = amp << plan.local_bits
    exchanged = sum((1 - 2.0 ** -len(s.pairs)) * slice_bytes
                    for s in plan.steps if isinstance(s, GlobalSwap))
    block_bytes = amp << plan.block_qubits
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
        "precision": of_plan(plan),
        "shared_ranks": 1 << plan.shared_bits,
        "shared_sweeps": sum(1 for s in plan.steps if isinstance(s, Sweep) and s.wbits
                             and max(s.wbits) >= plan.local_bits),
    } | _tier_figures(plan, c, slice_bytes, exchanged)


def _tier_figures(plan: Plan, c: dict, slice_bytes: int, exchanged: float) -> dict:
    """Passes over the slice and what they move; out of core these are disk bytes
    (dense upper bounds: zero pages are neither read nor written)."""
    passes = c["sweeps"] + c["global_swaps"]
    figs = {"storage": plan.decisions.get("storage", "ram"), "passes": passes}
    if plan.page_floor:
        amp = amp_bytes(of_plan(plan))
        group = amp << plan.block_qubits
        figs.update(
            page_bytes=amp << plan.page_floor, group_bytes=group,
            bytes_read_per_rank=int(c["sweeps"] * slice_bytes + exchanged),
            bytes_written_per_rank=int(c["sweeps"] * slice_bytes + exchanged),
            scratch_per_rank=slice_bytes)
    return figs


def predicted_seconds(figs: dict, bw: dict | None) -> float | None:
    """Time predicted from measured bandwidths (``qgt calibrate``), or None."""
    if not bw:
        return None
    if figs["storage"] == "ssd":
        return (figs["bytes_read_per_rank"] / bw["disk_read_Bps"]
                + figs["bytes_written_per_rank"] / bw["disk_write_Bps"])
    return figs["passes"] * 2 * figs["state_bytes_per_rank"] / bw["memory_pass_Bps"]


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
        first = f"observable #{s.indices[0]}"
        more = (f" and {len(s.indices) - 1} more sharing its X/Y pattern"
                if len(s.indices) > 1 else "")
        return f"{i:4d}  expectation  {first}{more}"
    return f"{i:4d}  {s!r}"


def format_plan(plan: Plan, figures: dict, verbose: bool = False) -> str:
    lines = [
        f"qgt plan: {figures['n_qubits']} qubits on {figures['ranks']} rank(s) "
        f"({figures['local_qubits']} local qubits per rank)",
        f"  steps {figures['steps']}: {figures['sweeps']} sweeps, {figures['global_swaps']} "
        f"global swaps ({figures['swapped_bits']} bits), {figures['measure_steps']} "
        f"measurement steps",
        f"  gates after fusion: {figures['gates']} ("
        + ", ".join(f"{v} {k}" for k, v in plan.decisions.get("fused_ops", {}).items()) + ")",
        f"  global swaps: {figures['global_swaps']} "
        f"(lower bound {figures['lower_bound_global_swaps']}" + (
            f"; exact minimum {figures['exact_global_swaps']}, by ILP)"
            if figures.get("exact_global_swaps") is not None else ")"),
        f"  bytes exchanged per rank: {format_bytes(figures['bytes_exchanged_per_rank'])}",
        f"  state per rank: {format_bytes(figures['state_bytes_per_rank'])} "
        f"({'complex64' if figures.get('precision') == 'single' else 'complex128'}); "
        f"memory per rank: {format_bytes(figures['memory_per_rank'])}",
        f"  working set: 2^{figures['block_qubits']} amplitudes; "
        f"runs of 2^{figures['page_qubits']}",
        f"  plan hash: {figures['plan_hash']}",
    ]
    if figures["storage"] == "ssd":
        lines += [
            f"  out of core: pages of {format_bytes(figures['page_bytes'])} on scratch_dir, "
            f"groups of {format_bytes(figures['group_bytes'])} in RAM",
            f"  passes over the slice: {figures['passes']}; per rank: read "
            f"{format_bytes(figures['bytes_read_per_rank'])}, written "
            f"{format_bytes(figures['bytes_written_per_rank'])} (dense upper bound), "
            f"scratch {format_bytes(figures['scratch_per_rank'])}",
        ]
    else:
        lines.append(f"  in RAM: {figures['passes']} passes over the slice")
    if figures["shared_ranks"] > 1:
        lines.append(f"  shared window: {figures['shared_ranks']} ranks share one node window; "
                     f"{figures['shared_sweeps']} sweeps reach its shared bits in place")
    t = figures.get("predicted_seconds")
    lines.append(f"  predicted time: {t:.1f} s (from qgt calibrate)" if t is not None else
                 "  predicted time: run 'qgt calibrate' once to measure this machine")
    if plan.trajectories:
        lines.append("  mid-circuit measurement: every shot reruns the plan")
    if verbose:
        lines.append("  steps:")
        lines += ["  " + describe_step(i, s) for i, s in enumerate(plan.steps)]
    return "\n".join(lines)
