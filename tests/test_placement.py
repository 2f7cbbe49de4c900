"""Tests of qgt.placement: binding plans on hwloc synthetic topologies (what each local
rank would get), the reports `qgt topology` prints, and real binding of this machine in
subprocesses (binding changes the process it runs in), with and without pyhwloc."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from qgt.errors import ConfigError, UserError
from qgt.placement import (
    describe_topology,
    l2_bytes,
    load_topology,
    plan_bindings,
    resolve_strategy,
    topology_report,
)

pytestmark = pytest.mark.filterwarnings("error")

REPO = Path(__file__).resolve().parents[1]
TWO_SOCKETS = "pack:2 numa:2 core:4 pu:2"  # 4 NUMA nodes of 4 cores, 2 PUs per core
FOUR_PACKAGES = "pack:4 core:2 pu:1"  # one NUMA node spanning 4 packages
SINGLE = "pack:1 core:4 pu:1"
SYNTHETIC = (TWO_SOCKETS, FOUR_PACKAGES, SINGLE)


def _cases():
    for synthetic in SYNTHETIC:
        cores = len(load_topology(synthetic).cores)
        for strategy in ("core", "socket", "numa"):
            for ranks in (1, 2, 3, 4, 8, 16):
                if ranks <= cores:
                    yield synthetic, strategy, ranks


@pytest.mark.parametrize(("synthetic", "strategy", "ranks"), list(_cases()))
def test_plan_gives_disjoint_local_shares(synthetic, strategy, ranks):
    topo = load_topology(synthetic)
    plans = plan_bindings(topo, strategy, ranks)
    assert [b.local_rank for b in plans] == list(range(ranks))
    seen: set[int] = set()
    node_cpus = {n.os_index: set(n.cpus) for n in topo.numa_nodes}
    for b in plans:
        assert b.cpus and not seen & set(b.cpus), "ranks must not share CPUs"
        seen |= set(b.cpus)
        # whole cores only, one kernel thread per core
        assert b.threads == len(b.cores)
        assert set(b.cpus) == {pu for c in b.cores for pu in topo.cores[c].pus}
        # every rank runs inside the NUMA node(s) its memory is bound to
        assert set(b.cpus) <= set().union(*(node_cpus[n] for n in b.numa_nodes))
        assert b.mem_policy == ("bind" if len(b.numa_nodes) == 1 else "interleave")
    assert seen == set(topo.pus), "every core of the node is given to some rank"


@pytest.mark.parametrize("ranks", [4, 8, 12, 16])
def test_numa_spreads_ranks_evenly_over_nodes(ranks):
    plans = plan_bindings(load_topology(TWO_SOCKETS), "numa", ranks)
    per_node = Counter(b.numa_nodes for b in plans)
    assert all(len(nodes) == 1 for nodes in per_node)
    assert len(per_node) == 4 and max(per_node.values()) - min(per_node.values()) <= 1


def test_numa_one_rank_per_node_gets_the_whole_node():
    plans = plan_bindings(load_topology(TWO_SOCKETS), "numa", 4)
    for r, b in enumerate(plans):
        assert b.cpus == tuple(range(8 * r, 8 * r + 8))
        assert b.numa_nodes == (r,) and b.mem_policy == "bind" and b.threads == 4


def test_numa_fewer_ranks_than_nodes_take_whole_nodes():
    plans = plan_bindings(load_topology(TWO_SOCKETS), "numa", 2)
    assert [b.numa_nodes for b in plans] == [(0, 1), (2, 3)]
    assert [b.mem_policy for b in plans] == ["interleave", "interleave"]


def test_socket_gives_each_rank_its_package():
    plans = plan_bindings(load_topology(TWO_SOCKETS), "socket", 2)
    assert [b.cpus for b in plans] == [tuple(range(16)), tuple(range(16, 32))]
    plans = plan_bindings(load_topology(FOUR_PACKAGES), "socket", 4)
    assert [b.cpus for b in plans] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert all(b.numa_nodes == (0,) for b in plans)


def test_core_with_one_rank_per_core():
    plans = plan_bindings(load_topology(TWO_SOCKETS), "core", 16)
    assert [b.cpus for b in plans] == [(2 * i, 2 * i + 1) for i in range(16)]
    assert [b.numa_nodes for b in plans] == [(i // 4,) for i in range(16)]


def test_none_binds_nothing_and_shares_threads():
    topo = load_topology(TWO_SOCKETS)
    plans = plan_bindings(topo, "none", 4)
    assert all(b.cpus == topo.pus and b.mem_policy == "default" for b in plans)
    assert all(b.threads == 4 for b in plans)
    assert "not bound" in plans[0].description


@pytest.mark.parametrize(
    ("synthetic", "strategy", "ranks"),
    [(TWO_SOCKETS, "core", 17), (FOUR_PACKAGES, "numa", 9), (SINGLE, "socket", 5)],
)
def test_more_ranks_than_cores_is_a_user_error(synthetic, strategy, ranks):
    with pytest.raises(UserError, match=rf"{ranks} ranks per node.*cores"):
        plan_bindings(load_topology(synthetic), strategy, ranks)


def test_a_crowded_domain_is_a_user_error():
    # NUMA node 0 keeps 1 core, node 1 has 2: 3 ranks fit the node but not node 0
    topo = load_topology("numa:2 core:2 pu:1")
    topo = dataclasses.replace(topo, cores=topo.cores[1:])
    with pytest.raises(UserError, match="puts 2 ranks on NUMA node 0, which has only 1"):
        plan_bindings(topo, "numa", 3)


def test_bad_requests_name_what_is_allowed():
    topo = load_topology(SINGLE)
    with pytest.raises(ConfigError, match="did you mean 'numa'"):
        plan_bindings(topo, "nmua", 2)
    with pytest.raises(UserError, match="at least 1"):
        plan_bindings(topo, "core", 0)
    with pytest.raises(UserError, match="synthetic topology"):
        load_topology("pack:2 bogus:3")
    assert resolve_strategy(" Package ") == "socket" and resolve_strategy("NUMA") == "numa"


def test_describe_and_report_show_topology_and_every_rank():
    topo = load_topology("pack:2 numa:2 l2:4(size=1MB) core:1 pu:2")
    assert l2_bytes(topo) == 1_000_000
    text = describe_topology(topo)
    assert "2 packages, 4 NUMA nodes, 16 cores, 32 PUs" in text
    assert "NUMA node 3: 1 GiB" in text and "L2" in text
    report = topology_report("numa", 8, TWO_SOCKETS)
    assert "binding 'numa' with 8 ranks per node" in report
    assert all(f"local rank {r}/8" in report for r in range(8))
    assert "unequal" not in report
    assert "unequal shares" in topology_report("core", 3, TWO_SOCKETS)
    json.dumps([b.to_dict() for b in plan_bindings(load_topology(SINGLE), "core", 2)])
    json.dumps(load_topology(SINGLE).to_dict())


def test_this_machine_topology_is_usable():
    topo = load_topology()
    assert topo.cores and topo.numa_nodes and not topo.synthetic
    assert set(os.sched_getaffinity(0)) <= set(topo.pus)
    assert l2_bytes(topo) is None or l2_bytes(topo) >= 64 * 1024
    assert "this process may now run on PUs" in topology_report("none", 1)


CHILD = """
import json, os, sys
{prelude}
from qgt.placement import allocate_bound, apply_binding, load_topology, plan_bindings
topo = load_topology()
plans = plan_bindings(topo, sys.argv[1], int(sys.argv[2]))
binding = plans[int(sys.argv[3])]
effect = apply_binding(binding, huge_pages=True)
buf = allocate_bound(3 * 4096 + 5, binding, huge_pages=True)
print(json.dumps({{"plan": binding.to_dict(), "effect": effect, "source": topo.source,
    "affinity": sorted(os.sched_getaffinity(0)), "buf": [len(buf), int(buf.sum())]}}))
"""


def _child(strategy: str, ranks: int, rank: int, hwloc: bool = True) -> tuple[dict, str]:
    prelude = "" if hwloc else "sys.modules['pyhwloc'] = None  # as if it failed to import"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(prelude=prelude), strategy, str(ranks), str(rank)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def _local_ranks() -> int:
    return min(2, len(load_topology().cores))


@pytest.mark.parametrize("hwloc", [True, False], ids=["hwloc", "no-pyhwloc"])
def test_core_binding_takes_effect(hwloc):
    ranks = _local_ranks()
    for rank in range(ranks):
        out, stderr = _child("core", ranks, rank, hwloc)
        plan, effect = out["plan"], out["effect"]
        assert out["affinity"] == plan["cpus"] == effect["cpus"]
        assert out["buf"] == [3 * 4096 + 5, 0]
        if hwloc:
            assert effect["backend"] == "hwloc" and out["source"].startswith("hwloc")
            if not effect["warnings"]:  # some containers forbid memory policies
                assert effect["numa_nodes"] == plan["numa_nodes"]
        else:
            assert effect["backend"] == "sched_setaffinity" and "sysfs" in out["source"]
            assert "pyhwloc is unavailable" in stderr


def test_none_changes_nothing():
    out, _ = _child("none", 1, 0)
    assert out["effect"]["cpus"] == out["affinity"] == sorted(os.sched_getaffinity(0))
    assert out["effect"]["warnings"] == []
