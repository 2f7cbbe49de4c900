"""Gate fusion inside one sweep, across controls, chosen by a cost model.

Called by the planner on each sweep's ops (in dependency order, every dense target in
the working set W).  Inside a cache-resident unit a gate's cost is arithmetic and one
trip through the unit, so fusion pays exactly when it lowers the sum of the ops' costs:

- a controlled gate (CX, CZ, CP, CCX, CSWAP, MCX) whose controls are in W is the dense
  or diagonal block it is, on targets + controls, and fuses like any other;
- one-qubit gates wait (``pending``) for the next gate on their qubit and are folded
  into it when that gate is a block of two or more qubits (the 1q gates around a CX
  become one 4x4 block), otherwise they run on their own;
- commuting diagonals (rz, cp, rzz, cz, mcp, ``diagonal``) batch into one phase table of
  up to 6 bits anywhere in the state: a run of them is one pass, not one per gate;
- a gate merges into the last block touching its qubits (nothing in between touches
  them, so moving it earlier is exact) when ``CostModel`` says the merged block costs
  no more than the two apart.

    u(a) u(b) cx(a,b) u(a) u(b) cx(b,a)   ->   one 4x4 dense block on (a, b)
    cp(3,0) cp(3,1) cp(3,2) rz(3)         ->   one 16-entry phase table on (0, 1, 2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qgt.errors import InternalError
from qgt.plan.fusion import Controlled, compose
from qgt.plan.matrices import classify
from qgt.plan.steps import DENSE, DIAG, SWAPBITS, PhysOp

MAX_DIAG_BITS = 6  # the kernels' widest table (QGT_KERN_MAX_TARGETS)
MERGE_MARGIN = 0.1  # a phase table merged into a dense block must save this share


@dataclass(frozen=True)
class CostModel:
    """Milliseconds per op on a 2^26-amplitude slice, 2 threads (``qgt calibrate
    --kernels`` measures them on the node).  The defaults were measured on the
    development machine (2 cores of a Sapphire-Rapids-class Xeon, AVX-512, L1 tiles),
    2026-12-07; an AMD EPYC guest with AVX2 measured 20, 46, 150, 270, 480, 980 for
    dense 1- to 6-qubit blocks, 10 for a permutation and 14 for a phase table
    (2026-12-01).  Only ratios matter to the fuser."""

    dense: tuple[float, ...] = (0.0, 13.5, 23.2, 53.5, 86.8, 169.8, 355.1)
    # a one-qubit gate with a half-cost kernel: a real matrix (h, ry) or rx's shape (real
    # diagonal, imaginary off-diagonal)
    dense1_cheap: float = 11.4
    permutation: float = 9.2  # X, CX, SWAP: moves amplitudes, no arithmetic
    # a fused permutation of up to MAX_PERM_BITS bits (a CX chain): one sparse pass
    permutation_block: float = 27.8
    diagonal: float = 13.0  # any phase table up to MAX_DIAG_BITS bits
    source: str = "built-in"

    def of_dense(self, k: int) -> float:
        return self.dense[min(k, len(self.dense) - 1)]


DEFAULT_COSTS = CostModel()


def _bits(mask: int) -> tuple[int, ...]:
    if mask < 0:
        raise InternalError(f"a bit mask cannot be negative: {mask}")
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return tuple(out)


def is_cheap_1q(m) -> bool:
    """A 2x2 matrix the kernels apply at half the multiply-adds: real (h, ry) or rx's
    shape, real on the diagonal and imaginary off it."""
    return classify(m).cheap_1q


def is_permutation(m) -> bool:
    """A square matrix of 0s and 1s with one 1 per row and column: X, CX, SWAP (no
    arithmetic)."""
    return classify(m).permutation


def moves_only(op: PhysOp) -> bool:
    """An op that only moves amplitudes: a bit swap, or a dense permutation (X, CX, CCX,
    SWAP, a fused CX chain)."""
    return op.kind == SWAPBITS or (op.kind == DENSE and is_permutation(op.matrix))


@dataclass
class _Block:
    kind: str
    bits: frozenset
    cost: float
    op: PhysOp | None  # the original op while nothing merged into it
    parts: list = field(default_factory=list)  # (matrix, own) in order of application
    perm: bool = False  # a dense block that only moves amplitudes (X, CX, SWAP, chains)
    src: list = field(default_factory=list)  # (item, own)
    names: list = field(default_factory=list)

    def to_op(self) -> PhysOp:
        if self.op is not None:
            return self.op
        targets = tuple(sorted(self.bits))
        names = self.names if len(self.names) <= 4 else [
            self.names[0], f"..{len(self.names) - 2} more..", self.names[-1]]
        return PhysOp(self.kind, targets, compose(self.kind, self.parts, targets),
                      name="+".join(names), src=tuple(self.src))


class _Fuser:
    def __init__(self, max_qubits: int, wbits: set[int], costs: CostModel):
        self.max_qubits, self.w, self.costs = max_qubits, wbits, costs
        self.out: list[_Block] = []
        self.last: dict[int, int] = {}  # bit -> index in out of the last block touching it
        self.last_nd: dict[int, int] = {}  # ... of the last block on it that is not diagonal
        self.pending: dict[int, _Block] = {}  # bit -> a 1-qubit dense block not yet placed
        self.widths: dict[str, int] = {}

    # ---- what an op can become ----------------------------------------------------
    def _block(self, op: PhysOp) -> _Block:
        ctrls = _bits(op.ctrl_mask)
        bits = frozenset(op.targets) | frozenset(ctrls)
        # (the global phase, on no bits, stays on its own: the plan cache relies on it)
        fusable = (op.condition is None and len(op.src) == 1 and op.kind in (DENSE, DIAG)
                   and bool(bits))
        if op.kind == DENSE:
            fusable &= bits <= self.w and len(bits) <= self.max_qubits
            if is_permutation(op.matrix):
                cost = self.costs.permutation
            elif len(op.targets) == 1 and not ctrls and is_cheap_1q(op.matrix):
                cost = self.costs.dense1_cheap
            else:
                cost = self.costs.of_dense(len(op.targets))
        else:
            fusable &= len(bits) <= MAX_DIAG_BITS
            cost = self.costs.diagonal
        b = _Block(op.kind if fusable else "barrier", bits, cost, op,
                   perm=op.kind == DENSE and is_permutation(op.matrix))
        if fusable:
            (item, own), = op.src
            if ctrls:
                vals = tuple((op.ctrl_val >> c) & 1 for c in ctrls)
                own = Controlled(tuple(own), ctrls, vals)
            b.parts, b.src, b.names = [(op.matrix, own)], [(item, own)], [op.name]
        return b

    def _merged_cost(self, a: _Block, b: _Block) -> tuple[str, float] | None:
        """The kind and cost of a then b as one block, or None when they cannot merge."""
        if "barrier" in (a.kind, b.kind):
            return None
        bits = a.bits | b.bits
        if a.kind == DIAG and b.kind == DIAG:
            return (DIAG, self.costs.diagonal) if len(bits) <= MAX_DIAG_BITS else None
        cost = self._dense_cost(bits, a.perm and b.perm)
        return None if cost is None else (DENSE, cost)

    def _dense_cost(self, bits, perm: bool) -> float | None:
        """The cost of one dense block on ``bits`` (a permutation when ``perm``), or None
        when there can be no such block."""
        if not bits <= self.w or len(bits) > self.max_qubits:
            return None
        if perm:
            return self.costs.permutation if len(bits) <= 2 else self.costs.permutation_block
        return self.costs.of_dense(len(bits))

    @staticmethod
    def _absorb(into: _Block, other: _Block, kind: str, cost: float, after: bool) -> None:
        """``into`` becomes the block of both (``other`` applied after it, or before)."""
        if after:
            into.parts, into.src = into.parts + other.parts, into.src + other.src
            into.names = into.names + other.names
        else:
            into.parts, into.src = other.parts + into.parts, other.src + into.src
            into.names = other.names + into.names
        into.kind, into.bits, into.cost, into.op = kind, into.bits | other.bits, cost, None
        into.perm = into.perm and other.perm

    # ---- placing ------------------------------------------------------------------
    def _note(self, j: int, b: _Block) -> None:
        for q in b.bits:
            self.last[q] = max(self.last.get(q, -1), j)
            if b.kind != DIAG:
                self.last_nd[q] = max(self.last_nd.get(q, -1), j)

    def _insert(self, pos: int, b: _Block) -> None:
        self.out.insert(pos, b)
        for m in (self.last, self.last_nd):
            for q, j in m.items():
                if j >= pos:
                    m[q] = j + 1
        self._note(pos, b)

    def _try_merge(self, j: int, b: _Block) -> bool:
        prev = self.out[j]
        merged = self._merged_cost(prev, b)
        # a phase table turned dense must save MERGE_MARGIN: near-ties between a cheap table
        # with a cheap op and one complex dense block are within the figures' noise, and
        # the tables and cheap ops run in L1 tiles that a dense block breaks
        margin = MERGE_MARGIN if merged and merged[0] == DENSE and DIAG in (
            prev.kind, b.kind) else 0.0
        if merged and merged[1] <= (prev.cost + b.cost) * (1 - margin):
            self._absorb(prev, b, *merged, after=True)
            self._note(j, prev)  # its bits now, as the kind it became
            return True
        return False

    def _place_diag(self, b: _Block) -> bool:
        """A phase table commutes with every other one: merge it into any phase table
        placed after the last non-diagonal block on its bits, the one sharing most bits."""
        bound = max((self.last_nd.get(q, -1) for q in b.bits), default=-1)
        best, overlap = -1, -1
        for j in range(len(self.out) - 1, bound, -1):
            o = self.out[j]
            if o.kind == DIAG and len(o.bits | b.bits) <= MAX_DIAG_BITS:
                shared = len(o.bits & b.bits)
                if shared > overlap:
                    best, overlap = j, shared
        return best >= 0 and self._try_merge(best, b)

    def place(self, b: _Block, early: bool = False) -> None:
        """Merge ``b`` into the last block touching its bits if the model says so (a
        phase table: into any phase table it commutes up to); otherwise append it, or
        with ``early``, insert it right after the last block on its bits."""
        # a phase table joins one it commutes up to first: there it adds nothing, while a
        # merge into a dense block makes that block's arithmetic complex
        if b.kind == DIAG and self._place_diag(b):
            return
        j = max((self.last[q] for q in b.bits if q in self.last), default=-1)
        if j >= 0 and self._try_merge(j, b):
            return
        if early:
            self._insert(j + 1, b)
        else:
            self.out.append(b)
            self._note(len(self.out) - 1, b)

    def _flush(self, bits) -> None:
        """Place the 1-qubit blocks waiting on ``bits``, each as early as it can go (so
        the phase tables after it can still merge with the ones before)."""
        for q in sorted(bits):
            p = self.pending.pop(q, None)
            if p is not None:
                self.place(p, early=True)

    def add(self, op: PhysOp) -> None:
        b = self._block(op)
        if b.kind == DENSE and len(b.bits) == 1:
            (q,) = b.bits
            p = self.pending.get(q)
            if p is None:
                self.pending[q] = b
            else:
                self._absorb(p, b, DENSE, self.costs.of_dense(1), after=True)
            return
        waiting = [self.pending[q] for q in sorted(b.bits) if q in self.pending]
        if b.kind == DENSE and waiting:
            cost = self._dense_cost(b.bits, b.perm and all(p.perm for p in waiting))
            if cost is not None and cost <= b.cost + sum(p.cost for p in waiting):
                for p in waiting:
                    self._absorb(b, p, DENSE, cost, after=False)
                    del self.pending[min(p.bits)]
        self._flush(b.bits)
        self.place(b)

    def result(self) -> list[PhysOp]:
        self._flush(list(self.pending))
        ops = [b.to_op() for b in self.out]
        for op in ops:
            key = f"{op.kind} {len(op.targets)}"
            self.widths[key] = self.widths.get(key, 0) + 1
        return ops


def fuse(ops: list[PhysOp], max_qubits: int, wbits: set[int],
         costs: CostModel = DEFAULT_COSTS, widths: dict | None = None) -> list[PhysOp]:
    """The sweep's ops fused as the cost model chooses (``max_qubits`` bounds a dense
    block; below 2 nothing is fused).  ``widths`` (if given) counts the ops emitted by
    kind and width, for the plan's decisions."""
    if max_qubits < 2:
        return list(ops)
    f = _Fuser(max_qubits, set(wbits), costs)
    for op in ops:
        f.add(op)
    out = f.result()
    if widths is not None:
        for k, v in f.widths.items():
            widths[k] = widths.get(k, 0) + v
    return out
