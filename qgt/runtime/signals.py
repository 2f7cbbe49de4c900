"""Preemption signals: SIGTERM and SIGUSR1 (Slurm's ``--signal=B:USR1@T`` and
preemption) only set a flag here; the runtime looks at it at the next plan-step
boundary, where all ranks agree to checkpoint and stop.

Installed by the command line (``qgt run``); library users may call ``install()``
from their main thread.
"""

from __future__ import annotations

import signal

_received: list[str] = []
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def _handler(signum, _frame) -> None:
    _received.append(signal.Signals(signum).name)


def install() -> None:
    for s in STOP_SIGNALS:
        signal.signal(s, _handler)


def pending() -> str | None:
    """The first stop signal received so far, if any."""
    return _received[0] if _received else None


def clear() -> None:
    _received.clear()
