"""The result of a run: counts, expectation values, timings and metadata.

Built by ``qgt.api.simulate`` identically on every rank; ``to_json`` is what
``qgt run --output`` writes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace


@dataclass
class Result:
    n_qubits: int
    ranks: int
    shots: int
    seed: int
    counts: dict[str, int] = field(default_factory=dict)
    expectation_values: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    bytes_exchanged_per_rank: int = 0
    peak_memory_per_rank: list[int] = field(default_factory=list)
    state_bytes_per_rank: int = 0
    plan: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    statevector: str | None = None
    memory: list[str] | None = None  # per-shot outcomes when asked for (front ends)
    state: object = field(default=None, repr=False)  # the final state when asked for

    def to_dict(self) -> dict:
        out = asdict(replace(self, state=None))  # never deep-copy a state vector
        out.pop("state")
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
