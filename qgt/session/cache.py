"""The plan cache: a circuit structure is lowered and planned once, then rebound.

Called by ``qgt.session.spmd`` on every rank.  Rank 0 decides hit or miss and, on a miss,
broadcasts the new entry, so every rank's cache holds the same entries in the same order.

    key = (structure fingerprint, observables, rank count, configuration)
    entry = template (lowered at generic values) + plan + item map
    values v  ->  template.bind(v): new matrices of the parametric ops
              ->  rebind(plan, ...): the same schedule, those ops' fused blocks rebuilt

A circuit without parameters is an entry with nothing to rebind: running it again is a
hit that skips lowering and planning altogether.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from qgt.errors import InternalError
from qgt.plan.planner import item_origins
from qgt.plan.rebind import fused_sources, rebind


@dataclass
class Entry:
    """One planned structure."""

    name: str
    circuit: object  # qgt.ops.Circuit, lowered at the template's generic values
    plan: object
    template: object | None  # qgt.frontend.params.Template, or None without parameters
    origins: dict[int, int] = field(default_factory=dict)  # lowered op -> plan item
    base: dict[int, np.ndarray] = field(default_factory=dict)  # fused neighbours' matrices
    plan_seconds: float = 0.0
    figures: dict = field(default_factory=dict)
    last_items: tuple = ()  # (values as bytes, plan item -> matrix) of the latest binding

    @property
    def n_parameters(self) -> int:
        return len(self.template.parameters) if self.template is not None else 0

    def bound(self, values) -> object:
        """The plan for one value vector (the entry's own plan without parameters)."""
        if self.template is None:
            return self.plan
        mats, phase = self.template.bind(values)
        items = {self.origins[k]: m for k, m in mats.items() if k in self.origins}
        # the adjoint pass of this binding reads the same matrices (adjoint._items)
        self.last_items = (np.asarray(values, dtype=float).tobytes(), items)
        if -1 in self.origins:
            items[self.origins[-1]] = np.array([np.exp(1j * phase)])
        return rebind(self.plan, {**self.base, **items})


def make_entry(name: str, circ, plan, template, plan_seconds: float, figures: dict) -> Entry:
    """An entry for a freshly planned circuit: which plan items the parameters reach, and
    the matrices of the items fused together with them (a rebuilt block needs all)."""
    entry = Entry(name, circ, plan, template, plan_seconds=plan_seconds, figures=figures)
    if template is None:
        return entry
    entry.origins = item_origins(circ)
    touched = {entry.origins[k] for s in template.slots for k in range(s.start, s.stop)
               if k in entry.origins}
    fused = fused_sources(plan)  # the global phase item is never fused (it has no targets)
    if touched & fused:
        from qgt.plan.planner import plan_items

        items = plan_items(circ)[0]
        entry.base = {i: np.asarray(items[i].matrix) for i in fused}
    missing = [k for s in template.slots for k in range(s.start, s.stop)
               if k not in entry.origins and hasattr(circ.ops[k], "matrix")]
    if missing:
        raise InternalError(f"plan cache: lowered ops {missing} have no plan item")
    return entry


class PlanCache:
    """Entries by key, least recently used evicted beyond ``size``; counts what it did."""

    def __init__(self, size: int = 64):
        self.size = size
        self.entries: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.planner_calls = 0
        self.plan_seconds = 0.0
        self.bind_seconds = 0.0

    def get(self, key):
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
            self.hits += 1
        return entry

    def put(self, key, entry: Entry) -> None:
        self.misses += 1
        self.planner_calls += 1
        self.plan_seconds += entry.plan_seconds
        self.entries[key] = entry
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def bind(self, entry: Entry, values):
        t = time.perf_counter()
        plan = entry.bound(values)
        self.bind_seconds += time.perf_counter() - t
        return plan

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "planner_calls": self.planner_calls,
                "entries": len(self.entries), "plan_seconds": self.plan_seconds,
                "bind_seconds": self.bind_seconds}
