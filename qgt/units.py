"""Parse and print byte sizes ("16MiB", "4G") and durations ("90s", "1h30m").

Callers: ``qgt.config`` (size and duration keys), and anything that shows a size or a
time to a user (plan summaries, progress, capacity errors).  Pure functions, no I/O.

Sizes are binary: "4G", "4Gi" and "4GiB" all mean 4 * 2^30 bytes, as in Slurm's ``--mem``.
"4GB" is refused rather than guessed, because half the world reads it as 10^9.
Errors are ``ConfigError`` with a message that reads as a reason ("'4GB' is
ambiguous ..."); ``qgt.config`` adds the key and where the value came from.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from qgt.errors import ConfigError

_SIZE_UNITS = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
# number, then an optional unit letter, then an optional "i", then an optional "B";
# whitespace between the number and the unit is allowed ("4 GiB").
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtpe]?)(i?)(b?)\s*$", re.IGNORECASE)

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd])", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Return the number of bytes in ``value``: an int, or text like "4GiB", "512M", "4096".

    Fractions are fine when they come out to whole bytes ("1.5GiB"); "4GB" is refused
    as ambiguous (decimal or binary?) with a hint to write "4GiB".
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{value!r} is not a size (expected bytes or text like '16MiB')")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{value} is not a size: it is negative")
        return value
    m = _SIZE_RE.match(value)
    if m is None:
        raise ConfigError(
            f"{value!r} is not a size (expected bytes or a number with K, M, G, T, "
            f"KiB, MiB, GiB or TiB, e.g. '16MiB')"
        )
    number, unit, i, b = m.groups()
    if unit and b and not i:
        raise ConfigError(
            f"{value!r} is ambiguous (decimal or binary?); qgt sizes are binary: "
            f"write '{number}{unit.upper()}iB' ({unit.upper()}iB = 2^{_SIZE_UNITS[unit.lower()]} "
            f"bytes) or a number of bytes"
        )
    if i and not unit:
        raise ConfigError(f"{value!r} is not a size: 'i' must follow a unit letter (K, M, G, T)")
    nbytes = Fraction(number) * (1 << _SIZE_UNITS[unit.lower()])
    if nbytes.denominator != 1:
        raise ConfigError(f"{value!r} is not a whole number of bytes")
    return int(nbytes)


def format_size(nbytes: int) -> str:
    """Write ``nbytes`` as the largest binary unit that divides it exactly: "16MiB", "4097"."""
    if nbytes == 0:
        return "0"
    for unit, shift in sorted(_SIZE_UNITS.items(), key=lambda kv: -kv[1]):
        if shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift}{unit.upper()}iB"
    return str(nbytes)


def format_size_approx(nbytes: float) -> str:
    """Write ``nbytes`` rounded for reading, e.g. "1.5 GiB", "512 B" (for reports, not files)."""
    for unit, shift in sorted(_SIZE_UNITS.items(), key=lambda kv: -kv[1]):
        if shift and abs(nbytes) >= (1 << shift):
            return f"{nbytes / (1 << shift):.3g} {unit.upper()}iB"
    return f"{nbytes:.0f} B"


def parse_duration(value: float | str) -> float:
    """Return the number of seconds in ``value``: a number of seconds, or text like "90s",
    "5m", "1h", "2d", "1h30m", "0.5h".  A bare number in text is seconds ("600")."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{value!r} is not a duration (expected seconds or text like '90s')")
    seconds = _parse_duration_text(value) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{value!r} is not a duration: it must be a finite number >= 0")
    return seconds


def _parse_duration_text(text: str) -> float:
    s = text.strip()
    try:
        return float(Fraction(s))  # a bare number: seconds
    except (ValueError, ZeroDivisionError):
        pass
    parts = list(_DURATION_PART.finditer(s))
    # the parts must tile the whole text (spaces allowed between them), and each unit
    # may appear once: "1h30m" is fine, "1h 1h", "5 minutes" and "1h30" are not
    leftover = _DURATION_PART.sub("", s).strip()
    units = [p.group(2).lower() for p in parts]
    if not parts or leftover or len(set(units)) != len(units):
        raise ConfigError(
            f"{text!r} is not a duration (expected seconds, or a number with s, m, h or d, "
            f"e.g. '90s', '5m', '1h30m')"
        )
    return float(
        sum(Fraction(p.group(1)) * _DURATION_UNITS[u] for p, u in zip(parts, units, strict=True))
    )


def format_duration(seconds: float) -> str:
    """Write ``seconds`` compactly: 0 -> "0", 90 -> "1m30s", 5400 -> "1h30m", 0.5 -> "0.5s"."""
    if seconds == 0:
        return "0"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    out = []
    for unit, size in sorted(_DURATION_UNITS.items(), key=lambda kv: -kv[1]):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)
