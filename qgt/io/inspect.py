"""The text of ``qgt inspect PATH``: what a checkpoint holds and whether it is intact.

Called by ``qgt.cli`` (and usable from Python).  PATH is one checkpoint directory, or a
checkpoint_dir holding several: then they are listed, newest first, and the newest is
detailed.  Reading only; the checksums are verified by reading every amplitude.
"""

from __future__ import annotations

import os

from qgt.errors import CheckpointError
from qgt.io import checkpoint as ck
from qgt.units import format_duration, format_size_approx

_CLBITS_SHOWN = 64  # hex digits of the classical register shown before eliding


def describe_checkpoint(path_or_dir: str) -> str:
    path = os.path.normpath(path_or_dir)
    if os.path.isfile(os.path.join(path, ck.MASTER)) or ck.is_checkpoint_name(path):
        return _details(path)
    if not os.path.isdir(path):
        raise CheckpointError(f"{path_or_dir}: no such checkpoint or checkpoint directory")
    found = ck.list_checkpoints(path)
    partial = [n for n in os.listdir(path) if n.startswith("ckpt-") and n.endswith(".tmp")]
    lines = [f"{len(found)} checkpoint(s) in {path} (newest first):" if found
             else f"no complete checkpoints in {path}"]
    for p in found:
        lines.append(f"  {os.path.basename(p)}  {_summary(p)}")
    if partial:
        lines.append(f"  ({len(partial)} incomplete .tmp dir(s) ignored: a write was "
                     "interrupted; the next write removes them)")
    if found:
        lines += ["", _details(found[0])]
    return "\n".join(lines)


def _summary(path: str) -> str:
    try:
        meta = ck.read_meta(path)
    except CheckpointError as e:
        return f"unreadable: {e}"
    size, _ = _disk_usage(path)
    return (f"{_progress(meta)}  created {meta['created']}  "
            f"{format_size_approx(size)}")


def _details(path: str) -> str:
    lines = [f"checkpoint {path}"]
    try:
        meta = ck.read_meta(path)
    except CheckpointError as e:
        return "\n".join([*lines, f"  unreadable: {e}"])
    n = meta["n_qubits"]
    size, files = _disk_usage(path)
    layout = "identity" if meta["layout"] == list(range(n)) else str(meta["layout"])
    rows = [
        ("circuit hash", meta["circuit_hash"]),
        ("plan hash", meta["plan_hash"]),
        ("progress", _progress(meta)),
        ("trajectory", meta["trajectory"]),
        ("ranks", meta["ranks"]),
        ("n_qubits", f"{n} ({format_size_approx(_amp(meta) << n)} of amplitudes)"),
        ("precision", meta.get("precision", "double")),
        ("layout", layout),
        ("size on disk", f"{format_size_approx(size)} in {files} files"),
        ("created", meta["created"]),
        ("elapsed", format_duration(round(meta["elapsed"], 1))),
        ("clbits", _clbits(meta["clbits"])),
        ("qgt version", f"{meta['qgt_version']} (format {meta['format_version']})"),
    ]
    try:
        ck.verify(path)
        rows.append(("checksums", "verified OK"))
    except CheckpointError as e:
        rows.append(("checksums", f"FAILED: {e}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join([*lines, *(f"  {k:<{width}}  {v}" for k, v in rows)])


def _progress(meta: dict) -> str:
    total = len(meta["executed"])
    pct = 100.0 * meta["step"] / total if total else 100.0
    return f"step {meta['step']} of {total} plan items ({pct:.1f}%)"


def _clbits(text: str) -> str:
    try:
        value = int(text)
    except ValueError:
        return f"{text!r} (not an integer)"
    digits = f"{value:x}"
    if len(digits) <= _CLBITS_SHOWN:
        return f"{value} (0x{digits})" if value > 9 else str(value)
    return f"0x{digits[:_CLBITS_SHOWN]}... ({value.bit_length()} bits)"


def _disk_usage(path: str) -> tuple[int, int]:
    sizes = [e.stat().st_size for e in os.scandir(path) if e.is_file()]
    return sum(sizes), len(sizes)


def _amp(meta: dict) -> int:
    from qgt.precision import amp_bytes

    return amp_bytes(str(meta.get("precision", "double")))
