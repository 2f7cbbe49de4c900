"""The SSD tier end to end on real MPI ranks: direct I/O with 4 KiB pages, sparse
states far beyond the disk's size, scratch space handed back after a run and after a
killed run, and the preflight that refuses a job that cannot fit."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from qiskit.quantum_info import Statevector

from qgt.frontend import load_qiskit
from tests.conftest import MPIEXEC, QGT, clean_env, run_qgt


def _io(res: dict) -> list[dict]:
    return res["metadata"]["io"]


@pytest.mark.parametrize("ranks", [1, 2])
def test_direct_io_pages_match_qiskit(ranks, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    p = run_qgt(ranks, ["run", "random:15:10:4", "--set", "storage=ssd", "--set",
                        "ssd_page_size=4KiB", "--set", "direct_io=true", "--set",
                        "memory_limit=1MiB", "--set", "block_qubits=8", "--set",
                        f"scratch_dir={scratch}", "--statevector", str(tmp_path / "s.h5"),
                        "--output", str(tmp_path / "r.json"), "--quiet"])
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "s.h5", "r") as f:
        state = f["state"][...]
    want = Statevector(load_qiskit("random:15:10:4").remove_final_measurements(inplace=False))
    assert np.abs(state - want.data).max() < 1e-10
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["metadata"]["storage"] == "ssd"
    for io in _io(res):
        assert io["page_bytes"] == 4096 and io["read"] > 0 and io["written"] > 0
        assert io["buffer_bytes"] <= 1 << 20  # the ring fits memory_limit
    assert list(scratch.iterdir()) == []  # nothing left behind


def test_sparse_ghz_40_runs_in_a_few_pages(tmp_path):
    # 2^40 amplitudes = 16 TiB dense; GHZ never has more than two non-zero pages
    p = run_qgt(2, ["run", "ghz:40", "--set", "storage=ssd", "--set", "memory_limit=1GiB",
                    "--set", "ssd_page_size=1MiB", "--set", f"scratch_dir={tmp_path}",
                    "--shots", "400", "--seed", "2", "--output", str(tmp_path / "r.json"),
                    "--quiet"], timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    counts = res["counts"]
    assert set(counts) == {"0" * 40, "1" * 40} and sum(counts.values()) == 400
    for io in _io(res):
        assert io["max_pages_stored"] <= 2
        assert io["file_bytes_on_disk"] <= 4 << 20


def _open_page_files(scratch) -> list[str]:
    """Page files in ``scratch`` that some process still holds open (deleted or not)."""
    held = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            fds = list(fd_dir.iterdir())
        except OSError:  # the process is gone, or not ours to read
            continue
        for fd in fds:
            try:  # one descriptor closing meanwhile must not hide the others
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith(str(scratch)):
                held.append(link)
    return held


def test_killed_run_leaves_no_scratch_files(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cmd = [MPIEXEC, "-n", "2", QGT, "run", "trotter:22:40", "--set", "storage=ssd", "--set",
           "memory_limit=8MiB", "--set", "ssd_page_size=64KiB", "--set",
           f"scratch_dir={scratch}", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=clean_env())
    try:
        t0 = time.monotonic()
        while len(_open_page_files(scratch)) < 2 and time.monotonic() - t0 < 60:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        held = _open_page_files(scratch)
        assert len(held) >= 2 and all(h.endswith("(deleted)") for h in held)  # nameless
        assert list(scratch.iterdir()) == []
    finally:  # kill every rank whatever happened, and reap the job
        subprocess.run(["pkill", "-KILL", "-f", f"scratch_dir={scratch}"], check=False)
        proc.communicate(timeout=60)
    time.sleep(0.5)
    # no process holds them any more, so the file system has their blocks back
    assert _open_page_files(scratch) == [] and list(scratch.iterdir()) == []


def test_preflight_refuses_what_cannot_fit(tmp_path):
    t0 = time.monotonic()
    # sparse pages off: a dense 2^41-amplitude slice cannot fit any disk here
    p = run_qgt(2, ["run", "ghz:42", "--set", "storage=ssd", "--set", "sparse_pages=false",
                    "--set", f"scratch_dir={tmp_path}"], timeout=90)
    assert p.returncode == 2 and "scratch" in p.stderr and "free" in p.stderr
    # a group cannot hold the in-page bits plus the widest gate
    p = run_qgt(1, ["run", "random:16:4:1", "--set", "storage=ssd", "--set",
                    "memory_limit=64KiB", "--set", f"scratch_dir={tmp_path}"], timeout=90)
    assert p.returncode == 2 and "memory_limit" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and time.monotonic() - t0 < 60


SMALL_SSD = ["--set", "storage=ssd", "--set", "memory_limit=16KiB", "--set", "ssd_page_size=256",
             "--set", "direct_io=false", "--set", "block_qubits=4", "--set", "page_qubits=1"]


def _run_small(tmp_path, ranks: int, name: str, *extra) -> dict:
    out = tmp_path / f"{name}.json"
    p = run_qgt(ranks, ["run", "random:11:10:5", *SMALL_SSD, "--set", f"scratch_dir={tmp_path}",
                        "--seed", "9", "--output", str(out), "--quiet", *extra])
    assert p.returncode == 0, p.stderr
    return json.loads(out.read_text())


def test_the_last_sweep_writes_back_only_what_is_read(tmp_path):
    qc = load_qiskit("random:11:10:5").remove_final_measurements(inplace=False)
    probs = Statevector(qc).probabilities_dict()
    sampled = _run_small(tmp_path, 1, "sampled", "--shots", "4000")
    nothing = _run_small(tmp_path, 1, "nothing", "--shots", "0")
    written = _run_small(tmp_path, 1, "written", "--shots", "4000",
                         "--statevector", str(tmp_path / "s.h5"))
    two = _run_small(tmp_path, 2, "two", "--shots", "4000")
    # one rank, only samples read the state: they are drawn as the last sweep passes
    (io,) = _io(sampled)
    assert io["sampled_in_last_sweep"] and not io["last_sweep_written"]
    (io,) = _io(nothing)
    assert not io["sampled_in_last_sweep"] and not io["last_sweep_written"]
    # a state file needs the pages: written back, then read
    (io,) = _io(written)  # samples, then a state file: every page is needed
    assert io["last_sweep_written"] and not io["last_sweep_in_writer"]
    assert io["written"] > _io(sampled)[0]["written"]
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert np.abs(f["state"][...] - Statevector(qc).data).max() < 1e-10
    # a state file alone: the last sweep runs group by group into the file, and the file
    # still holds the state
    filed = {}
    for ranks in (1, 2):
        filed[ranks] = _run_small(tmp_path, ranks, f"filed{ranks}", "--shots", "0",
                                  "--statevector", str(tmp_path / f"f{ranks}.h5"))
        # (a plan that ends in a global swap has no last sweep to hand over)
        ends_in_sweep = filed[ranks]["metadata"]["steps"][-1]["kind"] == "sweep"
        assert ends_in_sweep or ranks > 1
        assert all(io["last_sweep_in_writer"] == ends_in_sweep != io["last_sweep_written"]
                   for io in _io(filed[ranks]))
        with h5py.File(tmp_path / f"f{ranks}.h5", "r") as f:
            assert np.abs(f["state"][...] - Statevector(qc).data).max() < 1e-10
    assert _io(filed[1])[0]["written"] < _io(written)[0]["written"]
    # on two ranks a rank's shots depend on the other's weight: written back, then sampled
    assert all(io["last_sweep_written"] for io in _io(two))
    for res in (sampled, written, two):
        counts = res["counts"]
        assert sum(counts.values()) == 4000
        assert all(probs.get(k, 0) > 1e-12 for k in counts)  # never an impossible outcome
        tv = 0.5 * sum(abs(counts.get(k, 0) / 4000 - p) for k, p in probs.items())
        assert tv < 0.15, tv  # a uniform sample would be at 0.9
