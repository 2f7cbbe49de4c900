"""Adjoint differentiation: the cached plan run forward, then backwards on two buffers.

Called by ``qgt.session.spmd.SpmdRanks.run_task`` on every rank, for a Task whose
``extra["adjoint"]`` holds observable coefficients (K observables x the task's Pauli
labels).  The result's ``metadata["adjoint"]`` is the (K, P) Jacobian of those
observables' expectation values with respect to the circuit's P parameters.

    forward    psi <- the plan's steps; at its expectation steps (the last ones):
               <P_j> as usual, and lambda += c_j P_j psi (same layout as psi); the
               relayouts between expectation steps (swaps, bit-swap sweeps) on both
    backward   the steps in reverse order, on psi and lambda together:
                 GlobalSwap  the same swap on both (a swap is its own inverse)
                 Sweep       one cache-blocked pass over both (qgt_kern_adjoint_sweep):
                             per unit, its ops in reverse; at an op U that depends on t
                             g_t += 2 Re <lambda| (dU/dt) U^dag |psi>
                             then psi <- U^dag psi, lambda <- U^dag lambda

    layout      ... Sweep  GlobalSwap  Sweep ... ExpectStep GlobalSwap ExpectStep
    psi     --->--->--->--->--->--->--->--->--->--->--->--->--->---+
    lambda                                          +--->--->--->--+  (built here)
    both    <---<---<---<---<---<---<---<---<---<---<---<---<---<--+  (reverse pass)

The plan is the one the cache holds, fused blocks included: for a block U = e_n ... e_1,
(dU/dt) U^dag = sum_j S_j (de_j/dt e_j^dag) S_j^dag with S_j = e_n ... e_{j+1}. For a
rotation de/dt e^dag is its constant generator (-i/2 G); for any other gate it is a
central difference (h = 1e-5: error ~1e-11), so any gate qgt runs is differentiable, not
only rotations. Only the parameters asked for are differentiated
(``extra["adjoint_columns"]``: PennyLane's trainable ones). One backward pass per
observable (a VJP folds them into one), so the working memory is two state-sized buffers
per rank (psi and lambda, each with its exchange buffers) whatever the number of
parameters and observables; it is checked against memory_limit before allocating. Out of
core, lambda is a second page store beside psi's (twice the scratch space, checked against
the free space; the plan's page groups are sized for both engines,
``choose_tier(adjoint=True)``) and the backward pass reads and writes both stores once per
outer sweep, group by group (see ``_ooc_sweep_back``).
"""

from __future__ import annotations

import copy
import time

import numpy as np

from qgt import _kern
from qgt.errors import CapacityError, InternalError, UserError
from qgt.plan.fusion import embed, embed_diag
from qgt.plan.steps import DIAG, ExpectStep, GlobalSwap, MeasureStep, PhysOp, Sweep
from qgt.precision import amp_bytes, of_plan
from qgt.runtime.engine import kernel_op, pack

STEP = 1e-5  # central-difference step for dU/dt (matrices are smooth in their angles)


def _plus_identity(op: PhysOp, amat: np.ndarray) -> tuple:
    """A + I on the op's targets and controls: the form qgt_kern_adjoint_sweep takes
    (kernels leave amplitudes outside an op's support as they are, so <l|(A+I)p - p>
    is <l|A|p> on the support alone)."""
    a = np.asarray(amat, dtype=complex)
    if op.kind == DIAG:
        return kernel_op(op, a + 1.0)
    a = a.copy()
    a.flat[::a.shape[0] + 1] += 1.0
    return kernel_op(op, a)


def _reversed(ops, derivatives, packed=None):
    """What qgt_kern_adjoint_sweep takes for ``ops`` walked backwards: their daggers last
    op first (from ``packed``, the ops as the forward sweep packed them), the derivative
    matrices (A + I) of ``derivatives(index, op)`` -> [(parameter, A)], the inverse
    position each is taken before, and their parameters."""
    ders, at, params = [], [], []
    for k, o in enumerate(range(len(ops) - 1, -1, -1)):
        for j, amat in derivatives(o, ops[o]):
            ders.append(_plus_identity(ops[o], amat))
            at.append(k)
            params.append(j)
    inverse = (pack(ops) if packed is None else packed).daggered()
    return inverse, _kern.OpList(ders), at, params


def _slots_by_parameter(template) -> dict[int, list]:
    """Parameter index -> the template slots (parametric instructions) it enters."""
    from qiskit.circuit import ParameterExpression

    index = {p: j for j, p in enumerate(template.parameters)}
    deps: dict[int, list] = {}
    for slot in template.slots:
        cols: set[int] = set()
        if slot.closed is not None:
            for g in slot.closed[1]:
                cols |= {g.j} if hasattr(g, "j") else set(getattr(g, "cols", ()))
        else:
            for par in slot.op.params:
                if isinstance(par, ParameterExpression):
                    cols |= {index[p] for p in par.parameters if p in index}
        for j in (cols or range(len(index))):  # unknown: every parameter (safe)
            deps.setdefault(j, []).append(slot)
    return deps


def _items(entry, values, slots=None) -> dict:
    """Plan item -> matrix at ``values`` for the parametric items (all, or only those of
    ``slots``); the global phase item never moves an expectation value."""
    if slots is None and entry.last_items and \
            entry.last_items[0] == np.asarray(values, dtype=float).tobytes():
        return entry.last_items[1]  # what binding the plan to these values computed
    template = entry.template
    if slots is not None:
        template = copy.copy(template)
        template.slots, template.phase_getter = slots, None
    mats, _ = template.bind(values)
    return {entry.origins[k]: m for k, m in mats.items() if k in entry.origins}


def _lowered_derivative(entry, values, k: int, slot) -> dict:
    """Plan item -> d(matrix)/d(parameter k) for a slot without a one-angle generator: a
    central difference of its closed form, or of its lowering through the template."""
    vp, vm = np.array(values, dtype=float), np.array(values, dtype=float)
    vp[k] += STEP
    vm[k] -= STEP
    item = entry.origins.get(slot.start)
    if slot.closed is not None and item is not None:
        fn, getters = slot.closed
        return {item: (np.asarray(fn(*[g(vp) for g in getters]), dtype=complex) -
                       np.asarray(fn(*[g(vm) for g in getters]), dtype=complex)) / (2 * STEP)}
    plus, minus = _items(entry, vp, [slot]), _items(entry, vm, [slot])
    return {i: (np.asarray(plus[i]) - np.asarray(minus[i])) / (2 * STEP) for i in plus}


def _times_dagger(d: np.ndarray, m: np.ndarray) -> np.ndarray:
    """d m^dagger, for matrices or diagonals (vectors)."""
    d, m = np.asarray(d), np.asarray(m)
    if d.ndim == 1 and m.ndim == 1:
        return d * m.conj()
    return (np.diag(d) if d.ndim == 1 else d) @ (np.diag(m) if m.ndim == 1 else m).conj().T


def _where(entry, plan) -> dict:
    """Plan item -> the (step, op, position in the op's sources) places built from it.  A
    plan rebound from the entry's keeps its ops' ``src`` (the same objects), so the map is
    made once per entry; a binding planned afresh gets its own."""
    cached = getattr(entry, "_adjoint_where", None)
    if cached is not None and _same_sources(cached[0], plan):
        return cached[1]
    where: dict[int, list] = {}
    for s, step in enumerate(plan.steps):
        if isinstance(step, Sweep):
            for o, op in enumerate(step.ops):
                for pos, (i, _) in enumerate(op.src):
                    where.setdefault(i, []).append((s, o, pos))
    entry._adjoint_where = (plan, where)
    return where


def _same_sources(a, b) -> bool:
    if len(a.steps) != len(b.steps):
        return False
    for x, y in zip(a.steps, b.steps):
        if isinstance(x, Sweep) != isinstance(y, Sweep):
            return False
        if isinstance(x, Sweep) and (len(x.ops) != len(y.ops) or any(
                p.src is not q.src for p, q in zip(x.ops, y.ops))):
            return False
    return True


class _Conjugator:
    """For a fused op M = e_n ... e_1 (its items embedded on its targets), S_j = e_n ...
    e_{j+1}: dM/dt M^dagger = sum_j S_j (dE_j E_j^dagger) S_j^dagger over the items t
    enters, since the e's are unitary.  Suffixes are made once per op and binding."""

    def __init__(self, base: dict):
        self.base = base
        self._suffix: dict = {}

    def suffix(self, s: int, o: int, op: PhysOp, pos: int) -> np.ndarray | None:
        key = (s, o)
        got = self._suffix.get(key)
        if got is None:
            got = [None] * len(op.src)
            acc = None
            for j in range(len(op.src) - 1, -1, -1):
                got[j] = acc
                i, own = op.src[j]
                e = embed(self.base[i], own, op.targets)
                acc = e if acc is None else acc @ e
            self._suffix[key] = got
        return got[pos]

    def place(self, s, o, op: PhysOp, pos: int, gen: np.ndarray) -> np.ndarray:
        """The generator of source ``pos`` as A on the whole op (op's kind and targets)."""
        if len(op.src) == 1:
            if op.kind == DIAG:
                return gen if gen.ndim == 1 else np.diag(gen)
            return np.diag(gen) if gen.ndim == 1 else gen
        _, own = op.src[pos]
        if op.kind == DIAG:  # a phase table: its parts commute, no conjugation
            return embed_diag(gen if gen.ndim == 1 else np.diag(gen), own, op.targets, True)
        g = embed(gen, own, op.targets, generator=True)
        sfx = self.suffix(s, o, op, pos)
        return g if sfx is None else sfx @ g @ sfx.conj().T


def derivative_ops(entry, values, plan, columns=None) -> dict:
    """{(step, op): [(parameter, A = dU/dt U^dag), ...]} for every op of ``plan`` (the
    entry's plan bound at ``values``) that parameter t reaches, for the parameters in
    ``columns`` (default: all).  A rotation's dE E^dag is its constant generator
    (qgt.frontend.params.generator); other slots take a central difference."""
    from qgt.frontend.params import generator

    deps = getattr(entry, "_adjoint_slots", None)
    if deps is None:
        deps = entry._adjoint_slots = _slots_by_parameter(entry.template)
    where = _where(entry, plan)
    base = {**entry.base, **_items(entry, values)}
    conj = _Conjugator(base)
    out: dict = {}
    for k in (range(len(values)) if columns is None else columns):
        acc: dict = {}
        for slot in deps.get(k, ()):
            gen = generator(slot, k)
            item = entry.origins.get(slot.start)
            if gen is not None and item is not None:
                gens = {item: gen}
            else:
                gens = {i: _times_dagger(d, base[i])
                        for i, d in _lowered_derivative(entry, values, k, slot).items()}
            for i, g in gens.items():
                for s, o, pos in where.get(i, ()):
                    op = plan.steps[s].ops[o]
                    a = conj.place(s, o, op, pos, g)
                    acc[(s, o)] = a if (s, o) not in acc else acc[(s, o)] + a
        for so, a in acc.items():
            out.setdefault(so, []).append((k, a))
    return out


def check_memory(cfg, plan, ranks_per_node: int, threads: int) -> str | None:
    """This rank's verdict on holding psi and lambda (two RAM slices with buffers)."""
    from qgt.runtime.capacity import fmt, memory_limit, ram_bytes

    limit, source = memory_limit(cfg, ranks_per_node)
    if plan.page_floor:  # the SSD tier: lambda is a second page store beside psi's
        import os

        from qgt.runtime.capacity import scratch_dir

        st = os.statvfs(scratch_dir(cfg))
        free = st.f_bavail * st.f_frsize
        amp = amp_bytes(of_plan(plan))
        dense = (amp << plan.local_bits) * ranks_per_node
        if dense > free and not cfg.sparse_pages:
            return (f"adjoint differentiation on the SSD tier keeps a second state on disk: "
                    f"{fmt(dense)} more on this node, but scratch_dir has {fmt(free)} free")
        # RAM: psi's engine, plus lambda's with no prefetch (2 group and 4 page buffers)
        from qgt.runtime.capacity import ADJOINT_GROUPS

        group, page = amp << plan.block_qubits, amp << plan.page_floor
        groups = cfg.prefetch_depth + 2 + ADJOINT_GROUPS  # the ring choose_tier sized
        need = groups * group + 8 * page
        if need > limit:
            return (f"adjoint differentiation on the SSD tier holds {groups} "
                    f"page groups of {fmt(group)} per rank ({fmt(need)}), but {source} is "
                    f"{fmt(limit)}: lower block_qubits or raise memory_limit")
        return None
    need = 2 * ram_bytes(plan.local_bits, cfg, threads)
    if need > limit:
        return (f"adjoint differentiation holds the state and one more state-sized buffer: "
                f"{fmt(need)} per rank, but {source} is {fmt(limit)}: use more ranks, a "
                "larger memory_limit, storage='auto' or 'ssd' (both states in pages on "
                "disk), or diff_method='parameter-shift'")
    return None


class Adjoint:
    """psi and lambda on one plan; ``jacobian`` runs forward + backward per row."""

    def __init__(self, engine, lam_engine, comm, threads: int):
        self.psi, self.lam = engine, lam_engine
        # a small slice runs on one thread (the engine's choice, SMALL_SLICE_BITS)
        self.comm, self.threads = comm, min(threads, getattr(engine, "threads", threads))
        self.L = engine.L
        self.base_index = engine.base

    def _add_terms(self, step: ExpectStep, coeffs) -> None:
        """lambda += sum_j c_j P_j psi over the step's Pauli terms."""
        terms = [(z, coeffs[index] * 1j ** ny) for index, z, ny
                 in zip(step.indices, step.zmasks, step.nys) if coeffs[index]]
        if self.psi.storage == "ssd":
            self._ooc_lambda(step, terms)
            return
        for z, c in terms:
            _kern.pauli_axpy(self.lam.state, self.psi.state, self.L, self.base_index,
                             step.xmask, z, c, self.threads)

    def _lambda_only(self, plan, coeffs) -> None:
        """lambda from psi as the run left it: valid when the run just ended on this
        engine (in RAM) and everything from its first expectation step on is one."""
        self._zero_lambda()
        for step in plan.steps:
            if isinstance(step, ExpectStep):
                self._add_terms(step, coeffs)

    def _run_left_psi(self, plan) -> bool:
        if self.psi.storage != "ram":
            return False
        first = next((i for i, st in enumerate(plan.steps) if isinstance(st, ExpectStep)),
                     None)
        return first is not None and all(isinstance(st, ExpectStep)
                                          for st in plan.steps[first:])

    def _forward(self, plan, coeffs) -> None:
        psi, lam = self.psi, self.lam
        psi.reset_state()
        started = False
        for step in plan.steps:
            if isinstance(step, ExpectStep):
                if not started:
                    self._zero_lambda()
                    started = True
                psi.run_step(step)  # the expectation values, as a plain run
                self._add_terms(step, coeffs)
            elif isinstance(step, MeasureStep):
                raise UserError("adjoint differentiation needs a circuit without "
                                "measurements")
            elif started:  # relayouts between expectation steps: on both buffers
                psi.run_step(step)
                lam.run_step(step)
            else:
                psi.run_step(step)
        if not started:
            self._zero_lambda()

    def _zero_lambda(self) -> None:
        lam = self.lam
        lam.reset_state()
        if lam.storage == "ssd":
            lam.store.clear()  # no stored page: all zero
        else:
            lam.state[:] = 0

    def _backward(self, plan, derivs: dict, n_params: int) -> np.ndarray:
        psi, lam = self.psi, self.lam
        first = next((i for i, st in enumerate(plan.steps) if isinstance(st, ExpectStep)),
                     len(plan.steps))
        if any(s > first for s, _ in derivs):
            raise InternalError("adjoint: a parametric op after the expectation steps")
        grad = np.zeros(n_params, dtype=complex)
        for s in range(len(plan.steps) - 1, -1, -1):
            step = plan.steps[s]
            if isinstance(step, GlobalSwap):
                psi.run_step(step)
                lam.run_step(step)
                continue
            if not isinstance(step, Sweep):
                continue
            if psi.storage == "ssd":
                self._ooc_sweep_back(s, step, derivs, grad)
                continue
            self._sweep_back(s, step, derivs, grad)
        return grad

    def _sweep_back(self, s: int, step: Sweep, derivs: dict, grad: np.ndarray) -> None:
        """One RAM sweep backwards in one cache-blocked pass over psi and lambda
        (csrc/qgt_kern_adjsweep.c): the daggered ops last first, each op's derivatives
        taken just before its dagger is applied."""
        inverse, ders, at, params = _reversed(step.ops, lambda o, op: derivs.get((s, o), ()),
                                              self.psi.packed_ops(step))
        t = time.perf_counter()
        sums = _kern.adjoint_sweep(self.psi.state, self.lam.state, self.L, self.base_index,
                                   list(step.wbits), inverse, ders, at, self.threads)
        np.add.at(grad, params, sums)
        self.psi.timings["compute"] += time.perf_counter() - t
        self.psi.passes += 1

    # ---- out of core: both page stores, group by group ----------------------------
    #
    #   psi pages  [a b c d] --read--> buf_psi --+-- reversed ops of one outer sweep:
    #   lam pages  [a b c d] --read--> buf_lam --+   transitions, then U^dag on both
    #                                     <--write-- both groups back
    #
    # A group holds every working bit of its sweep, so one read and one write of each
    # store per sweep serves all the sweep's ops; groups zero in both stores are skipped.
    def _joint_groups(self, wbits):
        psi, lam = self.psi, self.lam
        p = psi.p
        inside = [b - p for b in wbits if b >= p]
        outside = [b - p for b in range(p, psi.L) if b not in set(wbits)]
        in_mask = sum(1 << b for b in inside)
        from qgt.runtime.ooc import _deposit, _extract

        stored = np.union1d(psi.store.stored(), lam.store.stored()).astype(np.int64)
        bases = np.unique(stored & ~np.int64(in_mask))
        offs = _deposit(np.arange(1 << len(inside)), inside)
        return bases[:, None] + offs[None, :], _extract(bases, outside), outside

    def _buffers(self, gb: int):
        """Group buffers for psi and lambda: a ring buffer of each engine (idle while the
        adjoint streams its own groups), so the pass allocates nothing more."""
        psi, lam = self.psi, self.lam
        if len(psi.ring[0]) == 1 << gb and len(lam.ring[0]) == 1 << gb:
            return psi.ring[0], lam.ring[0]
        from qgt.runtime.pagestore import aligned_empty

        if getattr(self, "_bufs", None) is None or len(self._bufs[0]) != 1 << gb:
            self._bufs = (aligned_empty(1 << gb, dtype=psi.dtype),
                          aligned_empty(1 << gb, dtype=psi.dtype))
        return self._bufs

    def _ooc_lambda(self, step: ExpectStep, terms) -> None:
        from qgt.plan.planner import virtual_map

        psi, lam = self.psi, self.lam
        n = psi.plan.n_qubits
        vmap = virtual_map(step.wbits, n)
        xv = sum(1 << vmap[b] for b in range(n) if step.xmask >> b & 1)
        zvs = [(sum(1 << vmap[b] for b in range(n) if z >> b & 1), c) for z, c in terms]
        pages, index, outside = self._joint_groups(step.wbits)
        bp, bl = self._buffers(len(step.wbits))
        for g in range(len(pages)):
            psi._read_group(pages[g], bp)
            lam._read_group(pages[g], bl)
            vbase = psi._vbase(vmap, outside, int(index[g]))
            for zv, c in zvs:
                _kern.pauli_axpy(bl, bp, len(step.wbits), vbase, xv, zv, c, self.threads)
            lam._write_group(pages[g], bl)
        lam.passes += 1

    def _ooc_sweep_back(self, s: int, step: Sweep, derivs: dict, grad: np.ndarray) -> None:
        """An outer sweep backwards: per page group (both stores read once, written once),
        its inner sweeps last first, each one cache-blocked pass over the two group
        buffers (qgt_kern_adjoint_sweep), as a RAM sweep is over the two slices."""
        psi, lam = self.psi, self.lam
        if not step.inner:
            raise InternalError("an out-of-core sweep has no inner plan")
        # the inner sweeps' ops, in their order, multiply to the outer sweep's (commuting
        # ops may move), so walking them backwards is the inverse; an inner op's src is
        # its outer op's index, whose derivatives it takes
        inner = [(list(sw.wbits), *_reversed(sw.ops, lambda o, op: derivs.get(
            (s, op.src[0][0]), ()))) for sw in reversed(step.inner)]
        gb = len(step.wbits)
        pages, index, outside = self._joint_groups(step.wbits)
        bp, bl = self._buffers(gb)
        for g in range(len(pages)):
            psi._read_group(pages[g], bp)
            lam._read_group(pages[g], bl)
            vbase = psi._vbase(step.vmap, outside, int(index[g]))
            t = time.perf_counter()
            for wbits, inverse, ders, at, params in inner:
                sums = _kern.adjoint_sweep(bp, bl, gb, vbase, wbits, inverse, ders, at,
                                           self.threads)
                np.add.at(grad, params, sums)
            psi.timings["compute"] += time.perf_counter() - t
            psi._write_group(pages[g], bp)
            lam._write_group(pages[g], bl)
        psi.passes += 1

    def jacobian(self, plan, derivs, n_params: int, rows,
                 after_run: bool = False) -> tuple[np.ndarray, dict]:
        """Rows of coefficients over the labels -> (rows, parameters) gradients; the
        expectation values of the first forward pass.  ``after_run``: psi holds the
        final state of a run of ``plan`` just made, which the first row then starts
        from instead of running the plan again (when no relayout follows the
        expectation steps)."""
        jac = np.zeros((len(rows), n_params))
        expectations: dict = {}
        reuse = after_run and self._run_left_psi(plan)
        for r, coeffs in enumerate(rows):
            if r == 0 and reuse:
                self._lambda_only(plan, coeffs)
            else:
                self._forward(plan, coeffs)
            if r == 0:
                expectations = dict(self.psi.expectations)
            local = self._backward(plan, derivs, n_params)
            tot = self.comm.allreduce_sum(np.concatenate([local.real, local.imag]))
            jac[r] = 2.0 * tot[:n_params]
        return jac, expectations


def check_plan(plan) -> None:
    for step in plan.steps:
        if isinstance(step, Sweep) and any(op.condition is not None for op in step.ops):
            raise UserError("adjoint differentiation needs a circuit without classically "
                            "conditioned gates")
        if isinstance(step, MeasureStep) or plan.trajectories:
            raise UserError("adjoint differentiation needs a circuit without measurements")


def run_adjoint(ranks, task, entry, values, plan, engine, res) -> None:
    """After a normal run of one binding on ``engine``: the Jacobian of the rows of
    ``task.extra["adjoint"]`` into ``res.metadata["adjoint"]`` (every rank)."""
    check_plan(plan)
    # checked before lambda's buffers are allocated; not again while the engine kept for
    # this shape (SpmdRanks.lambda_engine, RAM) holds them
    if not ranks.holds_lambda(plan):
        err = ranks.comm.agree(check_memory(ranks.cfg, plan, ranks.comm.local_size,
                                            ranks.threads))
        if err:
            raise CapacityError(err)
    t0 = time.perf_counter()
    rows = np.atleast_2d(np.asarray(task.extra["adjoint"], dtype=float))
    n = entry.n_parameters
    # the parameters asked for (a front end's trainable ones), default all
    columns = task.extra.get("adjoint_columns")
    derivs = derivative_ops(entry, values, plan, columns) if n else {}
    t1 = time.perf_counter()
    before, moved, passes = dict(engine.timings), engine.bytes_moved(), engine.passes
    lam, own = ranks.lambda_engine(plan, engine.rng)
    lam_moved = lam.bytes_moved()
    try:
        jac, _ = Adjoint(engine, lam, ranks.comm, ranks.threads).jacobian(
            plan, derivs, n, rows, after_run=True)
        for k, v in lam.timings.items():
            engine.timings[k] = engine.timings.get(k, 0.0) + v
        # this rank's passes and bytes of the adjoint pass, both buffers
        io = {k: engine.bytes_moved().get(k, 0) - moved.get(k, 0) +
              lam.bytes_moved().get(k, 0) - lam_moved.get(k, 0)
              for k in ("read", "written", "exchanged")}
        io["passes"] = engine.passes - passes + lam.passes
    finally:
        if own:
            lam.close()
    res.metadata["adjoint_io"] = ranks.comm.allgather(io)
    res.metadata["adjoint"] = jac
    res.metadata["adjoint_passes"] = len(rows)
    res.timings["adjoint"] = time.perf_counter() - t0
    res.timings["adjoint_derivatives"] = t1 - t0
    for k in ("compute", "communication", "reductions"):
        res.timings[k] = res.timings.get(k, 0.0) + engine.timings.get(k, 0.0) - \
            before.get(k, 0.0)


__all__ = ["Adjoint", "derivative_ops", "check_memory", "check_plan", "run_adjoint"]
