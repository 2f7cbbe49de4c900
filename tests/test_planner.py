"""The planner alone (no MPI, no C): plans run on a simple full-vector executor must
reproduce Qiskit's Statevector, respect the tier rules, and batch swaps."""

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Pauli, Statevector
from qiskit.synthesis.qft import synth_qft_full

from qgt.errors import UserError
from qgt.frontend import load_circuit, lower
from qgt.plan import GlobalSwap, Sweep, make_plan
from tests.plan_reference import run_plan

CONFIGS = [  # (ranks, block_qubits, page_qubits)
    (1, 16, 4), (2, 5, 2), (4, 4, 1), (4, 6, 0), (8, 4, 2),
]


@pytest.mark.parametrize("ranks,w,c0", CONFIGS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_circuits_match_statevector(ranks, w, c0, seed):
    qc = random_circuit(9, 8, max_operands=3, seed=seed)
    plan = make_plan(lower(qc), ranks, block_qubits=w, page_qubits=c0)
    psi, _ = run_plan(plan)
    assert np.allclose(psi, Statevector(qc).data, atol=1e-10)


@pytest.mark.parametrize("ranks,shared", [(4, 1), (8, 1), (8, 2)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nodes_of_shared_windows_exchange_only_between_nodes(ranks, shared, seed):
    # nodes of 2^shared ranks: the rank bits above the windows select a node
    qc = random_circuit(9, 8, max_operands=3, seed=seed)
    qc.compose(synth_qft_full(9, do_swaps=True), range(9), inplace=True)
    plan = make_plan(lower(qc), ranks, block_qubits=4, page_qubits=1, shared_bits=shared,
                     observables=["XIYZIIXZY"])
    assert plan.shared_bits == shared and plan.exchange_bits == plan.rank_bits - shared
    assert any(isinstance(s, GlobalSwap) for s in plan.steps)
    psi, expect = run_plan(plan)  # every exchange leaves from the rank's own slice
    assert np.allclose(psi, Statevector(qc).data, atol=1e-10)
    want = Statevector(qc).expectation_value(Pauli("XIYZIIXZY")).real
    assert expect[0] == pytest.approx(want, abs=1e-10)


@pytest.mark.parametrize("ranks,w,c0", CONFIGS)
def test_qft_and_swaps_match(ranks, w, c0):
    qc = QuantumCircuit(8)
    qc.h(range(8))
    qc.rz(0.3, 7)
    qc.compose(synth_qft_full(8, do_swaps=True), range(8), inplace=True)
    qc.swap(0, 7)
    qc.cx(7, 0)
    plan = make_plan(lower(qc), ranks, block_qubits=w, page_qubits=c0)
    psi, _ = run_plan(plan)
    assert np.allclose(psi, Statevector(qc).data, atol=1e-10)


@pytest.mark.parametrize("ranks,w", [(1, 4), (2, 4), (4, 4), (4, 16), (8, 16)])
def test_expectations_match(ranks, w):
    qc = random_circuit(7, 6, seed=11)
    labels = ["XIZYIIX", "ZZZZZZZ", "YIIIIIY", "IIIXIII", "XXXIIII"]
    plan = make_plan(lower(qc), ranks, block_qubits=w, page_qubits=1, observables=labels)
    _, ex = run_plan(plan)
    sv = Statevector(qc)
    for i, lab in enumerate(labels):
        assert ex[i] == pytest.approx(sv.expectation_value(Pauli(lab)).real, abs=1e-10)


def test_diagonal_gates_on_rank_bits_never_exchange():
    qc = QuantumCircuit(10)
    qc.h(range(6))  # only low qubits need to be in the working set
    for a in range(10):
        for b in range(a + 1, 10):
            qc.cp(0.1 * (a + b), a, b)
    qc.rzz(0.4, 8, 9)
    qc.mcx([8, 9], 0)  # controls on rank bits select ranks, no data moves
    plan = make_plan(lower(qc), 4, block_qubits=6, page_qubits=2)
    assert not any(isinstance(s, GlobalSwap) for s in plan.steps)
    assert plan.lower_bound_exchanges == 0
    psi, _ = run_plan(plan)
    assert np.allclose(psi, Statevector(qc).data, atol=1e-10)


def test_qft_global_swaps_are_batched():
    # QFT-20 on 4 ranks, the state written in logical order: the rank bits start with
    # the qubits needed last (the initial layout is free); one exchange brings both in,
    # and one sends the two qubits whose final labels are rank bits back out
    plan = make_plan(load_circuit("qft:20"), 4, block_qubits=10, page_qubits=4)
    swaps = [s for s in plan.steps if isinstance(s, GlobalSwap)]
    assert [len(s.pairs) for s in swaps] == [2, 2]
    assert plan.lower_bound_exchanges == 1


def test_sweeps_cover_qft_in_few_passes():
    # 20 qubits, a working set of 12 with 4 fixed run bits: each sweep covers 8+ targets
    plan = make_plan(load_circuit("qft:20"), 1, block_qubits=12, page_qubits=4)
    n_sweeps = sum(isinstance(s, Sweep) for s in plan.steps)
    assert n_sweeps <= 4


def test_bad_rank_counts_are_user_errors():
    circ = load_circuit("ghz:4")
    with pytest.raises(UserError, match="power of two"):
        make_plan(circ, 3)
    with pytest.raises(UserError, match="too many"):
        make_plan(circ, 16)


def test_plan_hash_is_stable_and_parameter_sensitive():
    a = make_plan(load_circuit("trotter:6:2"), 2, 4, 1)
    b = make_plan(load_circuit("trotter:6:2"), 2, 4, 1)
    c = make_plan(load_circuit("trotter:6:3"), 2, 4, 1)
    assert a.digest() == b.digest() != c.digest()


def test_bad_observable_is_a_user_error():
    with pytest.raises(UserError, match="Pauli string of 4"):
        make_plan(load_circuit("ghz:4"), 1, observables=["XX"])


@pytest.mark.parametrize("ranks", [2, 4])
def test_restore_and_undo_layout_at_every_step(ranks):
    """A checkpoint restores logical order mid-plan, then undoes it: the final state
    must be unchanged whichever step it happens after."""
    from qgt.ops import Circuit
    from qgt.plan.planner import plan_items, restore_steps, undo_steps
    from qgt.plan.steps import Plan
    from tests.reference import simulate_reference

    qc = random_circuit(8, 8, seed=5)
    qc.swap(0, 7)
    qc.swap(1, 5)  # relabellings: the normalisation needs several bit-swap sweeps
    circ = lower(qc)
    plan = make_plan(circ, ranks, block_qubits=4, page_qubits=1)
    want = Statevector(qc).data
    for i in range(len(plan.steps)):
        restore = restore_steps(plan, plan.layouts[i])
        steps = plan.steps[:i + 1] + restore
        mid = Plan(plan.n_qubits, plan.rank_bits, plan.block_qubits, plan.page_qubits, steps)
        psi_mid, _ = run_plan(mid)
        # logical order mid-way: equal to the simple reference on the items done so far
        done = {j for s in plan.steps[:i + 1] for j in getattr(s, "items", ())}
        items = [it for j, it in enumerate(plan_items(circ)[0]) if j in done]
        want_mid, _ = simulate_reference(Circuit(8, 0, items))
        assert np.allclose(psi_mid, want_mid, atol=1e-10), i
        full = Plan(plan.n_qubits, plan.rank_bits, plan.block_qubits, plan.page_qubits,
                    steps + undo_steps(restore) + plan.steps[i + 1:])
        psi, _ = run_plan(full)
        assert np.allclose(psi, want, atol=1e-10), i


def test_resume_plan_skips_done_items():
    qc = random_circuit(8, 8, seed=6)
    circ = lower(qc)
    plan = make_plan(circ, 2, block_qubits=4, page_qubits=1)
    k = len(plan.steps) // 2
    done = {j for s in plan.steps[:k] for j in getattr(s, "items", ())}
    # state after the first k steps, in logical order, then the rest planned for 4 ranks
    from qgt.plan.planner import restore_steps
    from qgt.plan.steps import Plan

    head = Plan(8, 1, 4, 1, plan.steps[:k] + restore_steps(plan, plan.layouts[k - 1]))
    psi, _ = run_plan(head)
    rest = make_plan(circ, 4, block_qubits=4, page_qubits=1, done=done)
    assert rest.n_items == plan.n_items
    got, _ = run_plan(rest, initial=psi)
    assert np.allclose(got, Statevector(qc).data, atol=1e-10)


SSD_CONFIGS = [  # (ranks, (page bits, group bits), inner block, inner run bits)
    (1, (3, 7), 4, 1), (2, (2, 6), 4, 1), (4, (3, 7), 5, 2), (8, (1, 5), 4, 0),
]


@pytest.mark.parametrize("ranks,ssd,w,c0", SSD_CONFIGS)
@pytest.mark.parametrize("seed", [1, 2])
def test_out_of_core_plans_match_statevector(ranks, ssd, w, c0, seed):
    qc = random_circuit(10, 8, max_operands=3, seed=seed)
    qc.swap(0, 9)  # a relabelling that leaves a rank-home qubit on an in-page bit
    qc.swap(1, 8)
    labels = ["XIIIIIIIZY", "ZZZZZZZZZZ"]
    plan = make_plan(lower(qc), ranks, block_qubits=w, page_qubits=c0, observables=labels,
                     ssd=ssd)
    assert plan.page_floor == ssd[0]
    psi, ex = run_plan(plan)
    sv = Statevector(qc)
    assert np.allclose(psi, sv.data, atol=1e-10)
    for i, lab in enumerate(labels):
        assert ex[i] == pytest.approx(sv.expectation_value(Pauli(lab)).real, abs=1e-10)


def test_out_of_core_group_too_small_is_a_capacity_error():
    from qgt.errors import CapacityError

    with pytest.raises(CapacityError, match="memory_limit"):
        make_plan(load_circuit("random:10:5:1"), 1, ssd=(6, 7))


@pytest.mark.parametrize("ranks,w,c0", CONFIGS)
@pytest.mark.parametrize("seed", [1, 2])
def test_plans_that_do_not_restore_the_layout_relabel_instead(ranks, w, c0, seed):
    """Counts and expectations read a permuted state by relabelling bits: the state is
    the same up to the final layout, and terminal measurements name physical bits."""
    from tests.plan_reference import logical_state

    qc = random_circuit(9, 8, max_operands=3, seed=seed)
    qc.swap(0, 8)
    qc.measure_all()
    plan = make_plan(lower(qc), ranks, block_qubits=w, page_qubits=c0, restore=False)
    psi, _ = run_plan(plan)
    qc.remove_final_measurements()
    assert np.allclose(logical_state(psi, plan), Statevector(qc).data, atol=1e-10)
    assert plan.terminal == tuple((plan.final_layout[q], q) for q in range(9))
    assert plan.decisions["restore_layout"] is False


def test_qft31_out_of_core_counts_take_two_passes():
    circ = load_circuit("qft:31")
    counts_only = make_plan(circ, 1, 16, 4, ssd=(20, 26), restore=False)
    assert [type(s).__name__ for s in counts_only.steps] == ["Sweep", "Sweep"]
    written = make_plan(circ, 1, 16, 4, ssd=(20, 26))
    assert len(written.steps) > 2  # writing the state puts the qubits back in order


def test_qft31_out_of_core_state_written_in_three_passes():
    """The restore swaps whose bits the last sweep holds run at its end: QFT-31's bit
    reversal needs one restore pass out of core (with 2^26-amplitude groups), not two."""
    written = make_plan(load_circuit("qft:31"), 1, 16, 4, ssd=(20, 26))
    assert [type(s).__name__ for s in written.steps] == ["Sweep"] * 3
    last_compute = [op.name for op in written.steps[1].ops]
    assert last_compute[-10:] == ["swapbits"] * 10 and "h" in last_compute
    assert {op.name for op in written.steps[2].ops} == {"swapbits"}
    assert written.final_layout == tuple(range(31))


@pytest.mark.parametrize("spec,ranks,w,c0,ssd", [
    ("qft:10", 1, 8, 2, None), ("qft:12", 1, 6, 2, (3, 7)), ("qpe:10", 2, 6, 2, None),
    ("qpe:10", 1, 6, 2, (3, 7))])
def test_restore_folded_into_the_last_sweep_matches_statevector(spec, ranks, w, c0, ssd):
    """Where the fold applies, the plan has fewer restore sweeps than the swaps alone
    would need, ends in logical order, and still gives Qiskit's state."""
    from qgt.frontend import load_qiskit

    circ = load_circuit(spec)
    plan = make_plan(circ, ranks, block_qubits=w, page_qubits=c0, ssd=ssd)
    folded = [s for s in plan.steps if isinstance(s, Sweep) and s.items
              and s.ops[-1].name == "swapbits"]
    assert len(folded) == 1 and plan.final_layout == tuple(range(circ.n_qubits))
    psi, _ = run_plan(plan)
    qc = load_qiskit(spec)
    qc.remove_final_measurements()
    assert np.allclose(psi, Statevector(qc).data, atol=1e-10)


def test_no_fold_into_a_sweep_that_only_moves_amplitudes():
    """A last sweep of CX chains may run as block moves; restore swaps on its low bits
    would make it a full gather pass, so the restore keeps its own sweep."""
    qc = QuantumCircuit(10)
    qc.h(0)
    for i in range(9):
        qc.cx(i, i + 1)
    qc.swap(0, 9)
    qc.swap(1, 8)
    qc.h(3)
    for i in range(3, 9):
        qc.cx(i, i + 1)
    plan = make_plan(lower(qc), 1, block_qubits=8, page_qubits=2)
    *_, last_compute, restore = plan.steps
    assert {op.name for op in restore.ops} == {"swapbits"}
    assert "swapbits" not in {op.name for op in last_compute.ops}
    psi, _ = run_plan(plan)
    assert np.allclose(psi, Statevector(qc).data, atol=1e-10)


@pytest.mark.parametrize("ranks", [2, 4])
def test_qft28_distributed_takes_one_global_swap(ranks):
    """The initial layout is free (|0...0> is the same in every layout): the rank bits
    start with the qubits the QFT needs last, so one exchange brings them in."""
    plan = make_plan(load_circuit("qft:28"), ranks, restore=False)
    swaps = [s for s in plan.steps if isinstance(s, GlobalSwap)]
    assert len(swaps) == 1 == plan.lower_bound_exchanges


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_planner_swaps_against_the_exact_minimum(seed):
    from qgt.plan.exact import exact_global_swaps
    from qgt.plan.planner import plan_items

    qc = random_circuit(6, 6, max_operands=2, seed=seed)
    circ = lower(qc)
    plan = make_plan(circ, 4, block_qubits=3, page_qubits=1, restore=False)
    got = plan.counts()["global_swaps"]
    exact = exact_global_swaps(plan_items(circ)[0], 6, 2, got)
    assert exact is not None and plan.lower_bound_exchanges <= exact <= got


def test_exact_minimum_of_qft_is_the_planners():
    from qgt.plan.exact import exact_global_swaps
    from qgt.plan.planner import plan_items

    circ = load_circuit("qft:8")
    plan = make_plan(circ, 2, block_qubits=7, page_qubits=2, restore=False)
    assert exact_global_swaps(plan_items(circ)[0], 8, 1, 3) == 1
    assert plan.counts()["global_swaps"] == 1


def test_the_lower_bound_follows_wires_through_swap_relabellings():
    """SWAP gates only rename qubits: a wire touched under two names counts once."""
    from qgt.ops import Circuit, Gate, Swap

    h = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    circ = Circuit(3, 0, [Gate("h", (0,), h), Gate("h", (1,), h), Swap(1, 2),
                          Gate("h", (2,), h), Swap(1, 2)])
    for restore in (False, True):
        plan = make_plan(circ, 2, block_qubits=2, page_qubits=0, restore=restore)
        assert plan.lower_bound_exchanges <= plan.counts()["global_swaps"] == 0


def test_sweeps_skip_the_qubits_still_in_zero():
    # GHZ: the first sweep's 16 bits are all it touches; the 10 above still hold |0>,
    # so it sweeps 1/1024 of the state.  The second sweep's outside bits are all touched.
    plan = make_plan(load_circuit("ghz:26"), 1)
    first, second = [s for s in plan.steps if isinstance(s, Sweep)]
    assert first.zero_mask == sum(1 << b for b in range(26) if b not in first.wbits)
    assert second.zero_mask == 0


def test_zero_bits_follow_global_swaps_and_stop_at_expectations():
    qc = QuantumCircuit(8)
    qc.h(0)
    qc.cx(0, 7)  # q7 starts on a rank bit or comes local through a swap
    qc.swap(1, 2)  # a relabelling: the restore after the expectation swaps bits 1 and 2
    plan = make_plan(lower(qc), 4, block_qubits=4, page_qubits=1, observables=["XIIIIIIX"])
    psi, _ = run_plan(plan)  # checks every sweep's zero bits really are zero
    assert np.allclose(psi, Statevector(qc).data)
    assert any(s.zero_mask for s in plan.steps if isinstance(s, Sweep))
    after = plan.steps[next(i for i, s in enumerate(plan.steps) if type(s).__name__
                            == "ExpectStep"):]
    assert [s.zero_mask for s in after if isinstance(s, Sweep)] == [0]


def test_a_resumed_plan_assumes_nothing_is_zero():
    circ = load_circuit("qft:12")
    plan = make_plan(circ, 2, block_qubits=4, page_qubits=1, done={0, 1})
    assert all(s.zero_mask == 0 for s in plan.steps if isinstance(s, Sweep))
