"""``qgt timeline trace.json -o timeline.png``: a run's trace drawn with matplotlib.

Called by the command line.  One lane per rank and thread (the main thread runs the
kernels and MPI; ``qgt-io_*`` are a rank's page I/O threads), spans coloured by the
resource they occupy; plan steps are a thin strip above each rank's main lane.  The
utilisation summary (printed and drawn under the plot) gives, per lane, the share of
the traced time it was busy, and per resource the total seconds over all lanes.

    rank 0 main   |##sweep##|~wait~|##pack##|=MPI=|##unpack##| ...
    rank 0 io_0   |  read  |   |  read  | write |
    rank 1 main   ...
"""

from __future__ import annotations

import json

from qgt.errors import UserError

COLOURS = {"compute": "#1f77b4", "memory": "#2ca02c", "network": "#d62728",
           "wait": "#cccccc", "disk": "#ff7f0e", "checkpoint": "#9467bd",
           "reduction": "#8c564b", "step": "#7f7f7f"}
IDLE = ("wait", "step")  # not counted as busy


def load(path: str) -> dict:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the trace '{path}': {e}") from None
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise UserError(f"'{path}' is not a trace-event file (no traceEvents list)")
    names, spans = {}, []
    for ev in events:
        if not isinstance(ev, dict):
            raise UserError(f"'{path}' is not a trace-event file: an event is {ev!r}")
        if ev.get("ph") == "M" and ev.get("name") == "thread_name":
            names[(ev["pid"], ev["tid"])] = ev["args"]["name"]
        elif ev.get("ph") == "X":
            spans.append(ev)
    if not spans:
        raise UserError(f"the trace '{path}' holds no events")
    return {"names": names, "spans": spans}


def _union(intervals) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def lanes(tr: dict) -> list[tuple]:
    """(pid, tid, label) in drawing order: by rank, main thread first."""
    keys = {(ev["pid"], ev["tid"]) for ev in tr["spans"]}
    label = {k: f"rank {k[0]} {tr['names'].get(k, k[1])}" for k in keys}
    return sorted(((k[0], k[1], label[k]) for k in keys),
                  key=lambda x: (x[0], "main" not in x[2], x[2]))


def utilisation(tr: dict) -> dict:
    spans = tr["spans"]
    t0 = min(ev["ts"] for ev in spans)
    t1 = max(ev["ts"] + ev["dur"] for ev in spans)
    span = max(t1 - t0, 1e-9)
    per_lane = {}
    for pid, tid, label in lanes(tr):
        busy = [(ev["ts"], ev["ts"] + ev["dur"]) for ev in spans
                if ev["pid"] == pid and ev["tid"] == tid and ev.get("cat") not in IDLE]
        per_lane[label] = _union(busy) / span
    per_cat: dict[str, float] = {}
    for ev in spans:
        if ev.get("cat") != "step":
            per_cat[ev.get("cat", "?")] = per_cat.get(ev.get("cat", "?"), 0.0) + ev["dur"] / 1e6
    return {"seconds": span / 1e6, "lanes": per_lane, "resources": per_cat}


def format_utilisation(u: dict) -> str:
    lines = [f"traced {u['seconds']:.3f} s"]
    lines += [f"  {k:24s} busy {100 * v:5.1f}%" for k, v in u["lanes"].items()]
    lines.append("  seconds by resource: " + ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(u["resources"].items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


def draw(tr: dict, out: str, title: str = "") -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ls = lanes(tr)
    u = utilisation(tr)
    t0 = min(ev["ts"] for ev in tr["spans"])
    text_h = 0.16 * (len(u["lanes"]) + 3)
    lanes_h = 0.9 + 0.45 * len(ls)
    fig, (ax, tx) = plt.subplots(2, 1, figsize=(12, lanes_h + text_h),
                                 gridspec_kw={"height_ratios": [lanes_h, text_h]})
    row = {(pid, tid): i for i, (pid, tid, _) in enumerate(ls)}
    for cat, colour in COLOURS.items():
        for lane_key, y in row.items():
            bars = [((ev["ts"] - t0) / 1e3, max(ev["dur"] / 1e3, 1e-4)) for ev in tr["spans"]
                    if (ev["pid"], ev["tid"]) == lane_key and ev.get("cat", "?") == cat]
            if not bars:
                continue
            if cat == "step":  # plan steps: a thin strip at the top of the lane
                ax.broken_barh(bars, (y - 0.45, 0.12), facecolors=colour, edgecolor="white",
                               linewidth=0.3)
            else:
                ax.broken_barh(bars, (y - 0.3, 0.7), facecolors=colour, linewidth=0)
    ax.set_yticks(range(len(ls)))
    ax.set_yticklabels([label for _, _, label in ls])
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds since the first step")
    ax.set_title(title or "qgt trace", loc="left")
    used = {ev.get("cat") for ev in tr["spans"]}
    ax.legend(handles=[Patch(color=c, label=k) for k, c in COLOURS.items() if k in used],
              loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=8, fontsize=8, frameon=False)
    tx.axis("off")
    tx.text(0.0, 1.0, format_utilisation(u), family="monospace", fontsize=8, va="top",
            transform=tx.transAxes)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return u


def main(args) -> int:
    """``qgt timeline trace.json -o timeline.png``."""
    from qgt.io.paths import writable_file

    err = writable_file(args.output, "-o")
    if err:
        raise UserError(err)
    tr = load(args.trace)
    u = draw(tr, args.output, args.title)
    print(format_utilisation(u))
    print(f"wrote {args.output}")
    return 0


def add_arguments(p) -> None:
    p.add_argument("trace", help="a trace written by qgt run --trace")
    p.add_argument("-o", "--output", default="timeline.png", help="the PNG to write")
    p.add_argument("--title", default="", help="the plot's title")
