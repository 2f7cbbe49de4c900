"""Overlap a global swap with the sweep before it.

Called by ``qgt.runtime.engine.Engine``.  When a sweep is followed by a global swap
whose local bits lie outside the sweep's working set, the sweep's units fall into
parts by the values of those bits, and only the parts the swap sends depend on each
other across ranks:

    sweep S (W), then GlobalSwap((p, r)):     p not in W
    the rank whose bit r reads u keeps part u (units with bit p = u), sends part 1-u

    before:  [ S on the whole slice ] [ exchange part 1-u ]
    now:     [ S on part 1-u ] [ exchange part 1-u          ]
                               [ S on part u, in a thread   ]

The kernels release the GIL, so the kept part is swept by a second thread while the
main thread packs, sends, receives and unpacks (it alone calls MPI).  For k swapped
pairs the kept part is 2^-k of the slice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from qgt.plan.steps import GlobalSwap


@dataclass
class Split:
    """The parts of a sweep around the global swap after it: (fixed mask, value) each."""

    pairs: tuple
    sent: list[tuple[int, int]]
    kept: tuple[int, int]


def split_for(wbits, nxt, L: int, rank: int) -> Split | None:
    """How to cut a sweep over ``wbits`` so that the global swap ``nxt`` (the next step)
    can overlap its kept part; None when it cannot (not a swap, or it moves a bit of W)."""
    if not isinstance(nxt, GlobalSwap):
        return None
    local = [p for p, _ in nxt.pairs]
    if any(p in wbits or p >= L for p in local):
        return None
    mask = sum(1 << p for p in local)
    u = sum(((rank >> (r - L)) & 1) << i for i, (_, r) in enumerate(nxt.pairs))

    def fixed(x: int) -> tuple[int, int]:
        return mask, sum(((x >> i) & 1) << p for i, p in enumerate(local))

    return Split(nxt.pairs, [fixed(u ^ j) for j in range(1, 1 << len(local))], fixed(u))


def alongside(work, exchange) -> None:
    """Run ``work()`` in a second thread while this one runs ``exchange()``; re-raise
    what either raised, the exchange's first."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as e:  # re-raised in the calling thread
            errors.append(e)

    t = threading.Thread(target=target, name="qgt-overlap")
    t.start()
    try:
        exchange()
    finally:
        t.join()
    if errors:
        raise errors[0]
