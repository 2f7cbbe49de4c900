"""``qgt report result.json``: which resource bound each plan step.

Called by the command line.  Reads the per-step table a run records
(``metadata.steps``: per rank seconds, engine timings and bytes) and the rates
``qgt calibrate`` measured on this machine (memory pass, disk read and write, kernel
arithmetic; exchange bandwidth when recorded), falling back to the development
machine's figures (``qgt.obs.progress.DEFAULT_RATES``), marked as defaults.

For each step it models the time every resource would need at its calibrated rate:

    memory   bytes the kernels stream through RAM / memory_pass_Bps
    compute  the step's flops / kernel_flops
    disk     bytes read / disk_read_Bps + bytes written / disk_write_Bps
    network  bytes exchanged / exchange_Bps

The step is bound by the resource with the largest modelled time; the table shows the
rate it achieved on that resource (its bytes or flops over the measured time of the
slowest rank) and what share of the calibrated rate that is (for disk, of the combined
read and write time).  A low efficiency means the
step waited on something the model leaves out: latency, imbalance, Python overhead.
"""

from __future__ import annotations

import json

from qgt.errors import UserError
from qgt.obs.progress import DEFAULT_RATES
from qgt.precision import amp_bytes
from qgt.units import format_size_approx as fmt

DEFAULT_KERNEL_FLOPS = 14e9  # one core of the development machine, dense 4-qubit gates
RESOURCES = ("memory", "compute", "disk", "network")


def rates(calibration: dict | None) -> tuple[dict, dict]:
    """The rates to compare with, and for each whether it was measured."""
    base = {**DEFAULT_RATES, "kernel_flops": DEFAULT_KERNEL_FLOPS}
    cal = calibration or {}
    out = {k: float(cal.get(k, v)) for k, v in base.items()}
    return out, {k: k in cal for k in base}


def _max(v) -> float:
    return max(v) if isinstance(v, list) and v else float(v or 0)


def model(row: dict, res: dict, r: dict) -> dict:
    """Seconds each resource would need for this step at the calibrated rates."""
    amp = amp_bytes(res.get("plan", {}).get("precision", "double"))
    slice_bytes = amp << (res["n_qubits"] - (res["ranks"].bit_length() - 1))
    ooc = res["metadata"].get("storage") == "ssd"
    read, written = _max(row.get("bytes_read", 0)), _max(row.get("bytes_written", 0))
    exch = _max(row.get("bytes_exchanged", 0))
    amount = dict.fromkeys(RESOURCES, 0.0)  # bytes, or flops for compute
    kind = row["kind"]
    if kind == "sweep":
        amount["memory"] = 2 * (read if ooc else slice_bytes)
        # out of core only the groups holding stored pages are computed on
        share = min(1.0, read / slice_bytes) if ooc else 1.0
        amount["compute"] = share * _max(row.get("flops", 0))
    elif kind == "global_swap":
        amount["memory"] = 2 * exch  # pack + unpack
        amount["network"] = exch
    else:  # reductions read the slice once
        amount["memory"] = read if ooc else slice_bytes
    amount["disk"] = read + written
    t = {"memory": amount["memory"] / r["memory_pass_Bps"],
         "compute": amount["compute"] / r["kernel_flops"],
         "disk": read / r["disk_read_Bps"] + written / r["disk_write_Bps"],
         "network": amount["network"] / r["exchange_Bps"]}
    return t, amount


def analyse(res: dict, calibration: dict | None = None) -> dict:
    if not isinstance(res, dict) or not isinstance(res.get("metadata"), dict):
        raise UserError("not a qgt result (no metadata): give the file qgt run --output wrote")
    steps = res["metadata"].get("steps")
    if not steps:
        raise UserError("the result has no per-step table (metadata.steps): it was written "
                        "by an older qgt; rerun with this version")
    r, measured = rates(calibration)
    rows, by_res = [], dict.fromkeys(RESOURCES, 0.0)
    total = 0.0
    for row in steps:
        secs = row.get("seconds", [0.0])
        wall = _max(secs)
        t, amount = model(row, res, r)
        bound = max(RESOURCES, key=lambda k: t[k])
        eff = t[bound] / wall if wall > 0 else 0.0
        achieved = amount[bound] / wall if wall > 0 else 0.0
        io_wait = _max(row.get("io_wait", 0))
        rows.append({"step": row["step"], "kind": row["kind"], "seconds": wall,
                     "imbalance": (wall / min(secs)) if isinstance(secs, list) and secs
                     and min(secs) > 0 else 1.0,
                     "bound": bound, "efficiency": eff, "achieved": achieved, "model": t,
                     "io_wait": io_wait,
                     "bytes": _max(row.get("bytes_read", 0)) + _max(row.get("bytes_written", 0))
                     + _max(row.get("bytes_exchanged", 0))})
        by_res[bound] += wall
        total += wall
    return {"rows": rows, "by_resource": by_res, "total": total, "rates": r,
            "measured": measured}


def _rate(k: str, v: float) -> str:
    return f"{v / 1e9:.1f} GFlop/s" if k == "kernel_flops" else f"{v / 1e9:.2f} GB/s"


def format_report(res: dict, a: dict, top: int = 0) -> str:
    lines = [f"qgt report: {res['metadata'].get('circuit', '?')}, {res['n_qubits']} qubits on "
             f"{res['ranks']} rank(s), {res['metadata'].get('storage', 'ram')} tier; plan steps "
             f"took {a['total']:.3f} s (slowest rank per step)",
             "rates compared with (qgt calibrate; 'default' = not measured here):"]
    for k, v in a["rates"].items():
        lines.append(f"  {k:16s} {_rate(k, v):>14s}  {'' if a['measured'][k] else 'default'}")
    lines.append("time by binding resource:")
    for k in RESOURCES:
        if a["by_resource"][k] > 0:
            share = a["by_resource"][k] / a["total"] if a["total"] else 0
            lines.append(f"  {k:8s} {a['by_resource'][k]:9.3f} s  {100 * share:5.1f}%")
    rows = a["rows"]
    if top:
        rows = sorted(rows, key=lambda x: -x["seconds"])[:top]
    lines.append(f"{'step':>5s} {'kind':12s} {'seconds':>9s} {'bytes':>10s} {'bound':8s} "
                 f"{'achieved':>14s} {'of calib.':>9s} {'imbalance':>9s}")
    unit = {"memory": "memory_pass_Bps", "compute": "kernel_flops", "disk": "disk_read_Bps",
            "network": "exchange_Bps"}
    for x in rows:
        note = f"  io wait {x['io_wait']:.3f} s" if x["io_wait"] else ""
        lines.append(f"{x['step']:5d} {x['kind']:12s} {x['seconds']:9.4f} {fmt(x['bytes']):>10s} "
                     f"{x['bound']:8s} {_rate(unit[x['bound']], x['achieved']):>14s} "
                     f"{100 * x['efficiency']:8.0f}% {x['imbalance']:9.2f}{note}")
    return "\n".join(lines)


def main(args) -> int:
    """``qgt report result.json [--top N] [--json]``."""
    from qgt.bench.calibrate import cached

    try:
        with open(args.result) as f:
            res = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the result '{args.result}': {e}") from None
    a = analyse(res, cached(args.scratch_dir))
    print(json.dumps(a, indent=2) if args.json else format_report(res, a, args.top))
    return 0


def add_arguments(p) -> None:
    p.add_argument("result", help="a result.json written by qgt run --output")
    p.add_argument("--top", type=int, default=0, help="only the N slowest steps")
    p.add_argument("--json", action="store_true", help="print the analysis as JSON")
    p.add_argument("--scratch-dir", default=None,
                   help="the file system whose calibration to use (default: $TMPDIR or /tmp)")
