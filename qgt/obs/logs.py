"""Logging through Python's ``logging``, with the rank in every record.

Called by ``qgt.api`` at the start of a run (``configure``) and by everything that
logs (``get``).  The ``log_level`` key sets the level of the ``qgt`` logger:

- info: the tier chosen, bindings, plan decisions, checkpoints written;
- debug: per-step timings.

A record is printed by rank 0 only, unless it is rank-specific (``extra=EVERY_RANK``):
a job of 512 ranks must not print the same line 512 times.  A warning is printed once
per run (repeats are dropped).  When the program has configured logging itself (a
handler on the root or the ``qgt`` logger), qgt adds no handler of its own and the
records, each carrying ``record.rank``, go to the program's handlers.
"""

from __future__ import annotations

import logging
import sys

LOGGER = "qgt"
EVERY_RANK = {"every_rank": True}  # extra= for a record each rank must print
_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG}


class _RankFilter(logging.Filter):
    """Stamps the rank on each record; drops rank-0-only records on other ranks and
    warnings already printed."""

    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        if self.rank != 0 and not getattr(record, "every_rank", False):
            return False
        if record.levelno == logging.WARNING:
            msg = record.getMessage()
            if msg in self.seen:
                return False
            self.seen.add(msg)
        return True


class _Handler(logging.StreamHandler):
    """qgt's own stderr handler (marked, so ``configure`` replaces rather than adds)."""


def configure(level: str, rank: int) -> logging.Logger:
    """Set the ``qgt`` logger to ``level`` for this rank's run; returns it."""
    log = logging.getLogger(LOGGER)
    log.setLevel(_LEVELS[level])
    for f in [f for f in log.filters if isinstance(f, _RankFilter)]:
        log.removeFilter(f)
    log.addFilter(_RankFilter(rank))
    for h in [h for h in log.handlers if isinstance(h, _Handler)]:
        log.removeHandler(h)
    if not log.handlers and not logging.getLogger().handlers:
        h = _Handler(sys.stderr)
        h.setFormatter(logging.Formatter("qgt[rank %(rank)s] %(levelname)s: %(message)s"))
        log.addHandler(h)
        log.propagate = False
    return log


def get() -> logging.Logger:
    """The ``qgt`` logger (filters and level set by ``configure``).  Children are not
    used: a logger's filters do not apply to its children's records."""
    return logging.getLogger(LOGGER)
