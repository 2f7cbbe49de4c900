"""The planner: turns a lowered circuit into a Plan of sweeps and global swaps.

Pure Python, no MPI: ``qgt plan`` and the tests call it directly; on a run, rank 0
calls it and broadcasts the plan.

Rules it relies on (DESIGN.md): diagonal gates and controls never move data, so only
the *moving* (non-diagonal) targets of a gate constrain where it can run.

- A Sweep picks a working set W of ``block_qubits`` local physical bits: the low
  ``page_qubits`` bits (so gathers copy contiguous runs) plus the local qubits whose
  next non-diagonal use comes soonest.  It then takes every gate, in dependency
  order, whose moving targets lie in W; a gate that cannot run blocks its qubits.
  Changing W between sweeps *is* the local swap: the gather folds it into the pass.
- When the next gate needs a qubit that lives on a rank bit, a GlobalSwap brings in,
  in one exchange, every rank-resident qubit needed within the lookahead window, and
  evicts the local qubits whose next use is furthest away (Belady's rule).

    before GlobalSwap((5, 7)):   rank bits [q7 q6] | local [q5 q4 ... q0]
    after:                       rank bits [q5 q6] | local [q7 q4 ... q0]
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from qgt.errors import CapacityError, InternalError, UserError
from qgt.ops import Circuit, Condition, Gate, Measure, Reset, Swap
from qgt.plan.fuser import DEFAULT_COSTS, CostModel, fuse, moves_only
from qgt.plan.layout import Layout
from qgt.plan.paulis import parse_pauli
from qgt.plan.steps import (
    DENSE,
    DIAG,
    SWAPBITS,
    ExpectStep,
    GlobalSwap,
    MeasureStep,
    PhysOp,
    Plan,
    Sweep,
)

_X = np.array([[0, 1], [1, 0]], dtype=complex)
_SWAP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)
_NO_USE = 1 << 62
MAX_MEASURE_GROUP = 16


def _rewrite(circ: Circuit) -> tuple[list, int]:
    """Reset -> measure into a hidden clbit + X conditioned on it; conditional SWAP -> gate."""
    items: list = []
    if circ.global_phase:
        items.append(Gate("global_phase", (), np.array([np.exp(1j * circ.global_phase)]),
                          diagonal=True))
    n_cl = circ.n_clbits
    for op in circ.ops:
        if isinstance(op, Reset):
            items.append(Measure(op.qubit, n_cl))
            items.append(Gate("x", (op.qubit,), _X, condition=Condition((n_cl,), 1)))
            n_cl += 1
        elif isinstance(op, Swap) and op.condition is not None:
            items.append(Gate("swap", (op.a, op.b), _SWAP, condition=op.condition))
        else:
            items.append(op)
    return items, n_cl


def _qubits(item) -> tuple[int, ...]:
    return (item.qubit,) if isinstance(item, Measure) else item.qubits


def _moving(item) -> tuple[int, ...]:
    return item.moving_targets if isinstance(item, Gate) else ()


class _Planner:
    def __init__(self, n: int, g: int, w: int, c0: int, fusion_max: int, floor: int = 0,
                 costs: CostModel = DEFAULT_COSTS, shared: int = 0):
        self.n, self.g, self.L = n, g, n - g
        # the top ``shared`` local bits select a rank of the node: sweeps reach them in
        # the node's shared window, but a rank's reductions read only its own slice
        self.slice_L = self.L - shared
        # out of core, the in-page bits never go to a rank bit: exchanges move whole pages
        self.floor = floor
        self.layout = Layout(n, self.L)
        self.w = min(w, self.L)
        self.c0 = c0
        self.fusion_max = fusion_max
        self.widths: dict[str, int] = {}  # fused ops by kind and width, for the decisions
        self.costs = costs
        self.steps: list = []
        self.layouts: list[tuple[int, ...]] = []  # the layout after each step
        # physical bits still |0> (make_plan starts from |0...0>; a restore or an inner
        # plan knows nothing of its state)
        self.zero: set[int] = set()

    def emit(self, step) -> None:
        if isinstance(step, Sweep):
            step = self._note_zero(step)
        elif isinstance(step, GlobalSwap):
            for a, b in step.pairs:
                self._swap_zero(a, b)
        elif isinstance(step, ExpectStep):
            self.zero = set()  # the adjoint pass relayouts lambda = O psi after it
        self.steps.append(step)
        self.layouts.append(self.layout.as_tuple())

    def _swap_zero(self, a: int, b: int) -> None:
        za, zb = a in self.zero, b in self.zero
        self.zero -= {a, b}
        self.zero |= ({b} if za else set()) | ({a} if zb else set())

    def _note_zero(self, step: Sweep) -> Sweep:
        """``step`` with the bits outside its working set that hold |0> as it starts
        (and those inside it, for block moves); then the bits its non-diagonal ops
        touch no longer do."""
        mask = sum(1 << b for b in self.zero if b not in step.wbits)
        inside = sum(1 << b for b in self.zero if b in step.wbits)
        for op in step.ops:
            if op.kind == DENSE:
                self.zero -= set(op.targets)
            elif op.kind == SWAPBITS:
                self._swap_zero(*op.targets)
        return dataclasses.replace(step, zero_mask=mask, zero_wbits=inside) \
            if mask or inside else step

    # ---- lookahead -------------------------------------------------------------
    def _upcoming(self, items, limit: int) -> list[int]:
        """Distinct moving-target qubits in order of first use, at most ``limit``."""
        seen: list[int] = []
        for _, it in items:
            for q in _moving(it):
                if q not in seen:
                    seen.append(q)
                    if len(seen) >= limit:
                        return seen
        return seen

    def _next_use(self, items) -> dict[int, int]:
        nxt: dict[int, int] = {}
        for i, (_, it) in enumerate(items):
            for q in _moving(it):
                nxt.setdefault(q, i)
        return nxt

    # ---- global swaps ----------------------------------------------------------
    def _bring_local(self, needed: list[int], items) -> None:
        """One GlobalSwap making every qubit of ``needed`` local (none of them is
        evicted), plus, room permitting, the rank-resident qubits needed soon after."""
        lay = self.layout
        window = set(self._upcoming(items, self.L - self.c0)) | set(needed)
        incoming = [q for q in needed if not lay.is_local(q)]
        incoming += [q for q in self._upcoming(items, self.L - self.c0)
                     if not lay.is_local(q) and q not in incoming]
        nxt = self._next_use(items)
        # an exchange trades part of a rank's own slice: bits of the node's shared window
        # above it are not the rank's to send
        slots = range(self.floor, self.slice_L)
        evictable = [lay.logical[p] for p in slots if lay.logical[p] not in window]
        if len(evictable) < len(incoming):
            # not enough room for the whole window: evict anything not needed right now
            evictable = [lay.logical[p] for p in slots if lay.logical[p] not in needed]
        # furthest next use first (Belady); among ties, qubits whose home is a rank bit,
        # so that the exchange also moves them towards the final (identity) layout
        home = self._final_labels(items)
        # (bits above the run bits pack into the exchange in long contiguous runs)
        # then bits the last sweep left alone: it can then sweep the part the swap keeps
        # while the swap runs (qgt.runtime.overlap)
        last = self.steps[-1].wbits if self.steps and isinstance(self.steps[-1], Sweep) else ()
        evictable.sort(key=lambda q: (-nxt.get(q, _NO_USE), lay.phys[q] in last,
                                      home[q] < self.L, lay.phys[q] < self.c0, -lay.phys[q]))
        k = min(len(incoming), len(evictable), self.g)
        first_needed = [q for q in needed if not lay.is_local(q)]
        if k < len(first_needed):
            raise UserError(
                f"cannot make qubits {first_needed} local: only {self.L} local qubits per rank; "
                "use fewer ranks")
        pairs = []
        outs = evictable[:k]
        ins = incoming[:k]
        # pair an evicted qubit with the rank bit that is its home when one is free
        homed = [q for q in outs if home[q] in {lay.phys[i] for i in ins}]
        rest = [q for q in outs if q not in homed]
        by_pos = {lay.phys[i]: i for i in ins}
        order = [(by_pos[home[q]], q) for q in homed]
        used = {i for i, _ in order}
        order += list(zip([i for i in ins if i not in used], rest))
        for q_in, q_out in order:
            p_local, p_rank = lay.phys[q_out], lay.phys[q_in]
            pairs.append((p_local, p_rank))
            lay.swap_physical(p_local, p_rank)
        self.emit(GlobalSwap(tuple(sorted(pairs))))

    def _final_labels(self, items) -> list[int]:
        """For each logical qubit, the label (hence the physical bit it must end on)
        after the SWAP relabellings still ahead."""
        owner = list(range(self.n))  # label -> the current qubit that will carry it
        for _, it in items:
            if isinstance(it, Swap):
                owner[it.a], owner[it.b] = owner[it.b], owner[it.a]
        home = [0] * self.n
        for label, q in enumerate(owner):
            home[q] = label
        return home

    # ---- sweeps ----------------------------------------------------------------
    def _working_set(self, items) -> tuple[int, ...]:
        lay = self.layout
        wset = set(range(self.c0))
        for q in self._upcoming(items, self.n):
            if len(wset) >= self.w:
                break
            if lay.is_local(q):
                wset.add(lay.phys[q])
        p = self.c0
        while len(wset) < self.w:
            wset.add(p)
            p += 1
        return tuple(sorted(wset))

    def _to_phys(self, gate: Gate, idx: int) -> PhysOp:
        phys = self.layout.phys
        mask = val = 0
        for c, v in zip(gate.controls, gate.ctrl_values or (1,) * len(gate.controls)):
            mask |= 1 << phys[c]
            val |= (v & 1) << phys[c]
        kind = DIAG if gate.diagonal else DENSE
        targets = tuple(phys[t] for t in gate.targets)
        return PhysOp(kind, targets, gate.matrix, mask, val, gate.condition, gate.name,
                      ((idx, targets),))

    def _sweep(self, items, wbits) -> list:
        """Take every item runnable under ``wbits``; return the items left."""
        lay = self.layout
        wset = set(wbits)
        blocked_q: set[int] = set()
        taken: list[PhysOp] = []
        ids: list[int] = []
        left: list = []
        stop = False
        for entry in items:
            idx, it = entry
            if stop or isinstance(it, Measure):
                stop = True
                left.append(entry)
                continue
            qs = set(_qubits(it))
            ok = not (qs & blocked_q)
            if ok and isinstance(it, Gate):
                ok = all(lay.phys[q] in wset for q in it.moving_targets)
            if ok and isinstance(it, Swap):
                lay.swap_logical(it.a, it.b)
                ids.append(idx)
            elif ok:
                taken.append(self._to_phys(it, idx))
                ids.append(idx)
            else:
                blocked_q |= qs
                left.append(entry)
                stop = len(blocked_q) >= self.n
        if ids:
            self.emit(Sweep(wbits, tuple(fuse(taken, self.fusion_max, wset, self.costs,
                                                  self.widths)),
                            tuple(ids)))
        return left

    def _measure(self, items) -> list:
        bits, clbits, logical, ids = [], [], [], []
        while items and isinstance(items[0][1], Measure) and len(bits) < MAX_MEASURE_GROUP:
            if items[0][1].qubit in logical:
                break  # measuring the same qubit twice: the second sees the first's collapse
            idx, m = items.pop(0)
            bits.append(self.layout.phys[m.qubit])
            clbits.append(m.clbit)
            logical.append(m.qubit)
            ids.append(idx)
        self.emit(MeasureStep(tuple(bits), tuple(clbits), tuple(logical), tuple(ids)))
        return items

    def run_ops(self, items: list) -> None:
        while items:
            head = items[0][1]
            if isinstance(head, Measure):
                items = self._measure(items)
                continue
            if any(not self.layout.is_local(q) for q in _moving(head)):
                self._bring_local(list(_moving(head)), items)
            before = len(items)
            items = self._sweep(items, self._working_set(items))
            if len(items) == before:
                raise RuntimeError("planner made no progress")  # pragma: no cover

    # ---- the end: expectation values, then back to the identity layout -----------
    def expectations(self, observables: list[str]) -> None:
        """One ExpectStep per X/Y pattern: a Hamiltonian's terms are evaluated in as many
        passes as it has distinct patterns, not one pass per term."""
        groups: dict[tuple[int, ...], list] = {}
        for i, label in enumerate(observables):
            xq, zq, ny = parse_pauli(label, self.n)
            groups.setdefault(tuple(xq), []).append((i, zq, ny))
        for xq, terms in groups.items():
            if any(not self.layout.is_local(q) for q in xq):
                self._bring_local(list(xq), [])  # all of xq: none of them may be evicted
            self._into_slice(xq)
            phys = self.layout.phys
            xmask = sum(1 << phys[q] for q in xq)
            zmasks = tuple(sum(1 << phys[q] for q in zq) for _, zq, _ in terms)
            wset = set(range(self.c0)) | {phys[q] for q in xq}
            p = 0
            while len(wset) < self.w:
                wset.add(p)
                p += 1
            self.emit(ExpectStep(tuple(i for i, _, _ in terms), xmask, zmasks,
                                 tuple(ny for _, _, ny in terms), tuple(sorted(wset))))

    def _into_slice(self, xq) -> None:
        """Qubits ``xq`` that a rank must read or send from its own slice (an X/Y pair,
        an exchange home to a rank bit): one on a node-shared bit first trades places
        with a slice bit (a bit swap, swept in the node's shared window)."""
        lay = self.layout
        high = [q for q in xq if lay.phys[q] >= self.slice_L]
        spare = [p for p in reversed(range(self.slice_L)) if lay.logical[p] not in xq]
        self._emit_swaps([(p, lay.phys[q]) for q, p in zip(high, spare)])

    def normalise(self) -> None:
        """Undo the layout so outputs are in logical Qiskit order."""
        lay = self.layout
        if self.floor:
            self._lift_rank_homes()
        for _ in range(self.g + 1):
            homing = [p for p in range(self.L, self.n) if lay.logical[p] != p and lay.is_local(p)]
            self._into_slice(homing)  # a qubit going home leaves from the rank's own slice
            pairs = [(lay.phys[p], p) for p in homing]
            if not pairs:
                wrong = [p for p in range(self.L, self.n) if lay.logical[p] != p]
                if not wrong:
                    break
                # rank bits hold each other's qubits: park one on a slice bit first
                pairs = [(self.slice_L - 1, wrong[0])]
            for p_local, p_rank in pairs:
                lay.swap_physical(p_local, p_rank)
            self.emit(GlobalSwap(tuple(sorted(pairs))))
        self._fold_into_last_sweep()
        self._emit_swaps(self._local_swaps(lay))

    def _local_swaps(self, lay: Layout) -> list[tuple[int, int]]:
        """The bit swaps, in order, that take local bits from ``lay`` to logical order."""
        swaps = []
        work = lay.copy()  # the layout changes only as each sweep is emitted
        for p in range(self.L):
            if work.logical[p] != p:
                other = work.phys[p]
                swaps.append((p, other))
                work.swap_physical(p, other)
        return swaps

    def _fold_into_last_sweep(self) -> None:
        """Send home, at the end of the plan's last sweep, every qubit whose home bit and
        current bit are both in that sweep's working set: a swap inside the cache-
        resident working set costs about what a one-qubit gate does, a restore sweep a
        pass over the state (out of core, a read and a write of it).  Done only when it
        leaves fewer restore sweeps; a qubit sent home never leaves it again.

            last sweep, W = {0..5, 25..30}:  gates ... swap(5,25) swap(4,26) ...
            restore sweeps: only for the qubits W could not send home
        """
        last = self.steps[-1] if self.steps else None
        if not isinstance(last, Sweep) or all(moves_only(op) for op in last.ops):
            return  # (a sweep of permutations may run as block moves: low swaps end that)
        wset, trial, folded = set(last.wbits), self.layout.copy(), []
        changed = True
        while changed:
            changed = False
            for p in sorted(wset):
                if trial.logical[p] != p and trial.phys[p] in wset:
                    folded.append((p, trial.phys[p]))
                    trial.swap_physical(p, trial.phys[p])
                    changed = True
        if not folded or (len(self._swap_groups(self._local_swaps(trial)))
                          >= len(self._swap_groups(self._local_swaps(self.layout)))):
            return
        for a, b in folded:
            self.layout.swap_physical(a, b)
            self._swap_zero(a, b)
        self.steps[-1] = dataclasses.replace(last, ops=last.ops + tuple(
            _swapbits(a, b) for a, b in folded))
        self.layouts[-1] = self.layout.as_tuple()

    def _swap_groups(self, swaps) -> list[tuple[list, set]]:
        """Bit swaps cut into as few sweeps as fit the working set (the low c0 bits plus
        the bits swapped): (ops, bits) per sweep.  With room for only one bit beyond c0
        (out of core, a page group as small as the planner allows), swap(a, b) goes
        through in-page bit 0:

            swap(a, b) = swap(0, a) . swap(0, b) . swap(0, a)     one outer bit each
        """
        base = set(range(self.c0))
        ops: list[tuple[int, int]] = []
        for a, b in swaps:
            if len(base | {a, b}) > self.w:
                ops += [(0, a), (0, b), (0, a)]
            else:
                ops.append((a, b))
        groups: list[tuple[list, set]] = []
        group: list[PhysOp] = []
        bits: set[int] = set(base)
        for a, b in ops:
            if len(bits | {a, b}) > self.w:
                groups.append((group, bits))
                group, bits = [], set(base)
            group.append(_swapbits(a, b))
            bits |= {a, b}
        if group:
            groups.append((group, bits))
        return groups

    def _emit_swaps(self, swaps) -> None:
        for group, bits in self._swap_groups(swaps):
            self._emit_perm(group, bits)

    def _lift_rank_homes(self) -> None:
        """Out of core: a qubit whose home is a rank bit but that SWAP relabellings left
        on an in-page bit moves to a page bit first, so the exchange moves whole pages."""
        lay = self.layout
        low = [q for q in range(self.L, self.n) if lay.phys[q] < self.floor]
        spare = [p for p in range(self.floor, self.L) if lay.logical[p] < self.L]
        self._emit_swaps([(lay.phys[q], p) for q, p in zip(low, spare)])

    def _emit_perm(self, group, bits) -> None:
        for op in group:
            self.layout.swap_physical(*op.targets)
        p = 0
        while len(bits) < self.w:
            bits.add(p) if p not in bits else None
            p += 1
        self.emit(Sweep(tuple(sorted(bits)), tuple(group)))


def _swapbits(a: int, b: int) -> PhysOp:
    return PhysOp(SWAPBITS, (a, b), np.zeros(0, dtype=complex), name="swapbits")


def _first_uses(items, n: int, observables_x: list[int]) -> tuple[dict[int, int], list[int]]:
    """Wire (the logical qubit a wire starts as) -> index of its first non-diagonal use
    (observables' X/Y come after every item), unused wires absent; and the final names:
    SWAP gates only relabel, so ``names[q]`` is the wire qubit q names at the end."""
    names = list(range(n))  # qubit name -> the wire it currently names
    first: dict[int, int] = {}
    for i, it in enumerate(items):
        if isinstance(it, Swap):
            names[it.a], names[it.b] = names[it.b], names[it.a]
            continue
        for q in _moving(it):
            first.setdefault(names[q], i)
    for q in observables_x:
        first.setdefault(names[q], len(items))
    return first, names


def initial_layout(items, n: int, g: int, observables_x: list[int]) -> Layout:
    """|0...0> is the same state in every layout, so the plan may start in any: the rank
    bits take the qubits needed non-diagonally last (or never), so the first global swap
    comes as late as it can and brings them all in."""
    L = n - g
    first, _ = _first_uses(items, n, observables_x)
    late = sorted(range(n), key=lambda q: (-first.get(q, 1 << 62), -q))[:g]
    lay = Layout(n, L)
    rank_free = [p for p in range(L, n) if lay.logical[p] not in late]
    for q in [q for q in late if lay.phys[q] < L]:
        lay.swap_physical(lay.phys[q], rank_free.pop())
    return lay


def lower_bound_exchanges(items: list, n: int, g: int, observables_x: list[int],
                          restore: bool = True) -> int:
    """A lower bound on the global exchanges of any schedule (gates may be reordered,
    the initial layout is free).

    Every qubit that is a non-diagonal target must be local at some time, and one
    exchange brings at most g qubits in: with u such qubits, ceil((u - L) / g) exchanges.
    When the state must end in logical order, a used qubit whose final label (after the
    SWAP relabellings) is a rank bit also needs an exchange out after its last use.
    This is simple and loose; ``qgt.plan.exact`` counts the minimum on small instances.
    """
    L = n - g
    if g == 0:
        return 0
    first, names = _first_uses(items, n, observables_x)
    used = set(first)
    bound = -(-max(0, len(used) - L) // g)
    if restore:
        final = {w: q for q, w in enumerate(names)}  # wire -> the label it ends with
        outs = {w for w in used if final[w] >= L}
        bound = max(bound, -(-len(outs) // g))
    return bound


def plan_items(circ: Circuit) -> tuple[list, list, bool]:
    """The circuit's plan items (numbered; checkpoints record which are done), its
    terminal measurements, and whether it needs trajectories (mid-circuit collapse)."""
    trajectories = circ.has_mid_circuit_collapse()
    if trajectories:
        terminal, body = [], list(circ.ops)
    else:
        terminal, body = circ.terminal_measurements()
    items, _ = _rewrite(Circuit(circ.n_qubits, circ.n_clbits, body, global_phase=circ.global_phase))
    return items, terminal, trajectories


def item_origins(circ: Circuit) -> dict[int, int]:
    """Lowered op index (in ``circ.ops``) -> plan item index, for the ops that become one
    item each (gates); the global phase, if any, is op -1.  The plan cache maps a new
    parameter value of an op to the item, and so to the fused ops built from it."""
    items, _, _ = plan_items(circ)
    where = {id(op): k for k, op in enumerate(circ.ops)}
    out = {}
    for i, it in enumerate(items):
        k = where.get(id(it))
        if k is not None:
            out[k] = i
    if circ.global_phase and items and getattr(items[0], "name", "") == "global_phase":
        out[-1] = 0
    return out


def circuit_digest(circ: Circuit) -> str:
    """A hash of the lowered circuit: a checkpoint resumes only the circuit it came from."""
    h = hashlib.sha256(repr((circ.n_qubits, circ.n_clbits)).encode())
    for it in plan_items(circ)[0]:
        mat = getattr(it, "matrix", None)
        h.update(repr((type(it).__name__, _qubits(it), getattr(it, "condition", None),
                       getattr(it, "ctrl_values", None), getattr(it, "clbit", None))).encode())
        if mat is not None:
            h.update(np.round(np.asarray(mat, dtype=complex), 14).tobytes())
    return h.hexdigest()[:16]


def check_ranks(n: int, ranks: int) -> int:
    """log2(ranks), or a UserError when ``ranks`` cannot split an ``n``-qubit state: not a
    power of two, or so many that a rank would hold less than one qubit's pair."""
    if ranks < 1 or ranks & (ranks - 1):
        raise UserError(f"the number of ranks must be a power of two, got {ranks}")
    if n < 1:
        raise UserError("the circuit has no qubits")
    g = ranks.bit_length() - 1
    if g >= n:
        raise UserError(f"{ranks} ranks is too many for {n} qubits: each rank must hold at "
                        f"least one qubit, so use at most {2 ** (n - 1)} ranks")
    return g


def make_plan(circ: Circuit, ranks: int, block_qubits: int = 16, page_qubits: int = 4,
              observables: list[str] | None = None, fusion_max_qubits: int = 4,
              done: set[int] | None = None, ssd: tuple[int, int] | None = None,
              restore: bool = True, costs: CostModel = DEFAULT_COSTS,
              precision: str = "double", shared_bits: int = 0) -> Plan:
    """Plan ``circ`` for ``ranks`` MPI ranks (a power of two); items in ``done`` (from a
    checkpoint, whose state is in logical order) are skipped.

    ``restore=False`` when nobody reads the final state itself (only samples, Pauli
    expectations or mid-circuit outcomes): the plan then ends in whatever layout its
    last step left, with no passes spent putting qubits back in logical order, and its
    terminal measurements name the physical bits their qubits ended on.  |0...0> is
    the same in every layout, so the start needs no pass either.

    ``ssd=(page_bits, group_bits)`` plans out of core: the outer plan's working set is a
    page group of 2^group_bits amplitudes that always holds the in-page bits, and every
    outer sweep carries an inner, cache-blocked plan (``block_qubits``, ``page_qubits``)
    for the group buffer.

    ``shared_bits``: the lowest that many rank bits select ranks of one node that keep
    their slices in one shared-memory window (qgt.runtime.shared).  Sweeps reach those
    bits in place, so only the rank bits above them need global swaps.
    """
    n = circ.n_qubits
    observables = list(observables or [])
    g = check_ranks(n, ranks)
    items, terminal, trajectories = plan_items(circ)
    kmax = max([len(_moving(it)) for it in items] + [1]
               + [len(parse_pauli(o, n)[0]) for o in observables])
    if ssd or max([len(parse_pauli(o, n)[0]) for o in observables] + [0]) > n - g:
        shared_bits = 0  # pages are per rank; X/Y are read within one slice
    shared_bits = min(shared_bits, g)
    gx = g - shared_bits  # the rank bits only an exchange reaches
    L = n - gx
    if kmax > L:
        raise UserError(
            f"a gate or observable acts non-diagonally on {kmax} qubits, but with {ranks} ranks "
            f"each rank holds only {L} qubits: use at most {2 ** (n - kmax)} ranks")
    if ssd:
        p, group = ssd
        w = min(group, L)
        if p > L or w - p < min(kmax, L - p):
            raise CapacityError(
                f"out of core, a page group must hold the {p} in-page qubits plus the {kmax} "
                f"qubits of the widest gate, but memory_limit allows groups of only {w} "
                "qubits: raise memory_limit or use a smaller ssd_page_size")
        c0, floor = p, p
    else:
        w = min(block_qubits, L)
        c0, floor = max(0, min(page_qubits, w - kmax)), 0
    # out of core a fused block must fit the inner plan's working set too
    fmax = min(fusion_max_qubits, block_qubits) if ssd else fusion_max_qubits
    pl = _Planner(n, gx, w, c0, fmax, floor, costs, shared_bits)
    obs_x = [q for o in observables for q in parse_pauli(o, n)[0]]
    if not done:  # a resumed state is in logical order; a fresh one is |0...0>
        pl.zero = set(range(n))
        if gx:
            pl.layout = initial_layout(items, n, gx, obs_x)
    pl.run_ops([(i, it) for i, it in enumerate(items) if not done or i not in done])
    pl.expectations(observables)
    if restore:
        pl.normalise()
    phys = pl.layout.phys
    plan = Plan(
        n_qubits=n, rank_bits=g, block_qubits=w, page_qubits=c0, steps=pl.steps,
        n_clbits=circ.n_clbits, final_layout=pl.layout.as_tuple(),
        terminal=tuple((phys[m.qubit], m.clbit) for m in terminal), trajectories=trajectories,
        lower_bound_exchanges=lower_bound_exchanges(items, n, gx, obs_x, restore),
        n_items=len(items), layouts=pl.layouts, page_floor=floor, precision=precision,
        shared_bits=shared_bits,
    )
    if ssd:
        plan.steps = [attach_inner(s, n, w, block_qubits, page_qubits)
                      if isinstance(s, Sweep) else s for s in plan.steps]
    plan.decisions = {"block_qubits": w, "page_qubits": c0, "fusion_max_qubits": fusion_max_qubits,
                      "max_gate_moving_qubits": kmax, "storage": "ssd" if ssd else "ram",
                      "fused_ops": dict(sorted(pl.widths.items())),
                      "restore_layout": restore, "cost_model": costs.source,
                      "precision": precision, "shared_rank_bits": shared_bits}
    if ssd:
        plan.decisions.update(inner_block=block_qubits, inner_page=page_qubits)
    return plan


def restore_steps(plan: Plan, layout: tuple[int, ...]) -> list:
    """Steps that take the state from ``layout`` to logical order (for a checkpoint,
    which always stores logical order so it can resume on any rank count)."""
    pl = _Planner(plan.n_qubits, plan.exchange_bits, plan.block_qubits, plan.page_qubits, 1,
                  plan.page_floor, shared=plan.shared_bits)
    pl.layout = Layout.from_phys(layout, plan.n_qubits - plan.exchange_bits)
    pl.normalise()
    if plan.page_floor:
        return [attach_inner(s, plan.n_qubits, plan.block_qubits, plan.decisions["inner_block"],
                             plan.decisions["inner_page"]) if isinstance(s, Sweep) else s
                for s in pl.steps]
    return pl.steps


def undo_steps(steps: list) -> list:
    """The inverse of ``restore_steps``' output: global swaps and bit swaps are their own
    inverses, so replay them backwards."""
    out = []
    for s in reversed(steps):
        if isinstance(s, Sweep):
            inner = tuple(Sweep(i.wbits, tuple(reversed(i.ops))) for i in reversed(s.inner))
            s = Sweep(s.wbits, tuple(reversed(s.ops)), (), inner, s.vmap)
        out.append(s)
    return out


def virtual_map(wbits, n: int) -> list[int]:
    """Physical bit -> bit of a page-group buffer whose bits are ``wbits`` (sorted):

        group buffer bit j  <->  physical bit wbits[j]        (j < len(wbits))
        every other physical bit  ->  a bit >= len(wbits), fixed within a group
    """
    inside = set(wbits)
    vmap = [0] * n
    for j, b in enumerate(wbits):
        vmap[b] = j
    for k, b in enumerate(b for b in range(n) if b not in inside):
        vmap[b] = len(wbits) + k
    return vmap


def attach_inner(sweep: Sweep, n: int, group_bits: int, block_qubits: int,
                 page_qubits: int) -> Sweep:
    """Give an out-of-core sweep its inner plan: the sweep's gates re-expressed in the
    bits of a page-group buffer (``virtual_map``), planned as cache-blocked sweeps over
    that buffer; they skip the group bits still |0> (``zero_wbits``) as the outer
    plan's sweeps do."""
    vmap = virtual_map(sweep.wbits, n)
    gates = []
    for op in sweep.ops:
        ctrls = [b for b in range(n) if op.ctrl_mask >> b & 1]
        vals = tuple((op.ctrl_val >> b) & 1 for b in ctrls)
        targets = tuple(vmap[t] for t in op.targets)
        if op.kind == SWAPBITS:
            gates.append(Gate("swapbits", targets, _SWAP))
        else:
            gates.append(Gate(op.name, targets, op.matrix, op.kind == DIAG,
                              tuple(vmap[c] for c in ctrls), vals, op.condition))
    kmax = max([len(g.moving_targets) for g in gates] + [1])
    w = min(block_qubits, group_bits)
    pl = _Planner(n, n - group_bits, w, max(0, min(page_qubits, w - kmax)), 1)
    # the group's bits still |0> as the sweep starts are |0> in every group
    pl.zero = {vmap[b] for b in sweep.wbits if sweep.zero_wbits >> b & 1}
    pl.run_ops(list(enumerate(gates)))
    if any(not isinstance(s, Sweep) for s in pl.steps):
        raise InternalError("an inner out-of-core plan needed a data exchange")
    return dataclasses.replace(sweep, inner=tuple(pl.steps), vmap=tuple(vmap))
