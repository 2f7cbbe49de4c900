"""Checkpoint and restart end to end on real MPI ranks: preemption by signal, a rank
killed with SIGKILL at a random step, a corrupted newest checkpoint, a full disk, a
checkpoint of another circuit, resuming on 1, 2 and 4 ranks from a 2-rank checkpoint.
Every resumed run must reproduce the uninterrupted run's state (1e-12) and counts."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import MPIEXEC, QGT, clean_env, run_qgt

TROTTER = "trotter:13:12"
QPE = "qpe:12"
FAST = ["--set", "block_qubits=5", "--set", "page_qubits=1"]  # many steps


def _state(path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["state"][...]


def _ckpts(d: Path) -> list[Path]:
    return sorted(p for p in d.glob("ckpt-*") if not p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs: final state and counts (seed 9)."""
    d = tmp_path_factory.mktemp("ref")
    out = {}
    for circ in (TROTTER, QPE):
        sv, res = d / f"{circ[:3]}.h5", d / f"{circ[:3]}.json"
        p = run_qgt(2, ["run", circ, "--shots", "500", "--seed", "9", "--statevector", str(sv),
                        "--output", str(res), "--quiet", *FAST])
        assert p.returncode == 0, p.stderr
        out[circ] = (_state(sv), json.loads(res.read_text())["counts"])
    return out


def _start(ranks: int, circ: str, ckdir: Path, extra=()) -> subprocess.Popen:
    cmd = [MPIEXEC, "-n", str(ranks), QGT, "run", circ, "--shots", "500", "--seed", "9",
           "--set", f"checkpoint_dir={ckdir}", "--set", "checkpoint_every_steps=1",
           "--quiet", *FAST, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env())


def _wait_for(ckdir: Path, count: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while len(list(ckdir.glob("ckpt-*"))) < 1 or _seq(ckdir) < count:
        if proc.poll() is not None:
            pytest.fail(f"run ended before checkpoint {count}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("no checkpoint appeared")
        time.sleep(0.02)


def _seq(ckdir: Path) -> int:
    seqs = [int(p.name.split("-")[1].split(".")[0]) for p in _ckpts(ckdir)]
    return max(seqs, default=0)


def _resume(ranks: int, circ: str, ckdir: Path, tmp: Path, tag: str):
    sv, res = tmp / f"{tag}.h5", tmp / f"{tag}.json"
    p = run_qgt(ranks, ["run", circ, "--shots", "500", "--seed", "9", "--resume", str(ckdir),
                        "--statevector", str(sv), "--output", str(res), "--quiet", *FAST])
    assert p.returncode == 0, p.stderr
    return _state(sv), json.loads(res.read_text()), p.stderr


def test_signal_checkpoints_and_resume_on_1_2_4_ranks(reference, tmp_path):
    ck = tmp_path / "ck"
    proc = _start(2, TROTTER, ck)
    _wait_for(ck, 5, proc)
    proc.send_signal(signal.SIGUSR1)  # mpiexec forwards it to the ranks, as srun does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 85, err
    assert "--resume" in err and "Traceback" not in err
    want_state, want_counts = reference[TROTTER]
    for ranks in (1, 2, 4):
        state, res, _ = _resume(ranks, TROTTER, ck, tmp_path, f"r{ranks}")
        assert np.abs(state - want_state).max() < 1e-12
        assert res["metadata"]["resumed_from"] is not None
    # trotter has no measurements: check counts on QPE below


@pytest.mark.parametrize("trial", range(3))
def test_rank_killed_at_a_random_step(reference, tmp_path, trial):
    rng = random.Random(trial)
    ck = tmp_path / "ck"
    proc = _start(2, QPE, ck)
    _wait_for(ck, rng.randint(2, 6), proc)  # QPE-12 here plans in 7 steps
    ranks = [pid for pid in _rank_pids(str(ck)) if pid != proc.pid]
    assert ranks, "no rank process found"
    os.kill(rng.choice(ranks), signal.SIGKILL)
    t0 = time.monotonic()
    proc.communicate(timeout=60)  # the job ends: no rank is left hanging
    assert proc.returncode != 0 and time.monotonic() - t0 < 60
    state, res, _ = _resume(2, QPE, ck, tmp_path, "resumed")
    want_state, want_counts = reference[QPE]
    assert np.abs(state - want_state).max() < 1e-12
    assert res["counts"] == want_counts


def _rank_pids(marker: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in c for c in cmd) and not cmd[0].endswith(b"mpiexec"):
            pids.append(int(d.name))
    return pids


def test_corrupted_newest_checkpoint_falls_back(reference, tmp_path):
    ck = tmp_path / "ck"
    # the same seed as the reference: a resumed run continues its checkpoint's random stream
    p = run_qgt(2, ["run", QPE, "--seed", "9", "--set", f"checkpoint_dir={ck}", "--set",
                    "checkpoint_keep=3", "--set", "checkpoint_every_steps=3", "--quiet", *FAST])
    assert p.returncode == 0, p.stderr
    newest = _ckpts(ck)[-1]
    victim = newest / "rank00001.h5"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the slice's chunks
    victim.write_bytes(bytes(data))
    state, res, err = _resume(2, QPE, ck, tmp_path, "fallback")
    assert newest.name in err and "corrupt" in err
    assert res["metadata"]["resumed_from"] != str(newest)
    want_state, want_counts = reference[QPE]
    assert np.abs(state - want_state).max() < 1e-12
    assert res["counts"] == want_counts
    inspect = subprocess.run([QGT, "inspect", str(newest)], capture_output=True, text=True,
                             env=clean_env(), timeout=60)
    assert "checksum" in (inspect.stdout + inspect.stderr).lower()


def test_checkpoint_of_another_circuit_is_refused(tmp_path):
    ck = tmp_path / "ck"
    p = run_qgt(1, ["run", "ghz:8", "--set", f"checkpoint_dir={ck}", "--set",
                    "checkpoint_at_end=true", "--quiet"])
    assert p.returncode == 0, p.stderr
    p = run_qgt(2, ["run", "qft:8", "--resume", str(ck)], timeout=90)
    assert p.returncode == 2
    assert "another circuit" in p.stderr and "Traceback" not in p.stderr


def test_full_disk_stops_cleanly_and_keeps_the_previous_checkpoint(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    # one 13-qubit checkpoint is ~140 KiB: the first fits, the second one cannot
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        p = run_qgt(2, ["run", TROTTER, "--set", f"checkpoint_dir={mnt}", "--set",
                        "checkpoint_every_steps=1", "--set", "checkpoint_keep=2", *FAST],
                    timeout=120)
        assert p.returncode == 2, p.stderr
        assert "space" in p.stderr.lower() and "Traceback" not in p.stderr
        assert not list(mnt.glob("*.tmp"))
        left = _ckpts(mnt)
        assert left, "the checkpoint written before the disk filled must survive"
        inspect = subprocess.run([QGT, "inspect", str(left[-1])], capture_output=True,
                                 text=True, env=clean_env(), timeout=60)
        assert inspect.returncode == 0 and "verified OK" in inspect.stdout
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


SSD = ["--set", "storage=ssd", "--set", "memory_limit=16KiB", "--set", "ssd_page_size=256",
       "--set", "direct_io=false"]


def test_out_of_core_run_checkpoints_and_resumes_on_either_tier(reference, tmp_path):
    ck = tmp_path / "ck"
    proc = _start(2, TROTTER, ck, SSD)
    _wait_for(ck, 4, proc)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 85, err
    want_state, _ = reference[TROTTER]
    for ranks, tier in ((4, SSD), (1, [])):
        sv, res = tmp_path / f"s{ranks}.h5", tmp_path / f"r{ranks}.json"
        p = run_qgt(ranks, ["run", TROTTER, "--resume", str(ck), "--statevector", str(sv),
                            "--output", str(res), "--quiet", *FAST, *tier])
        assert p.returncode == 0, p.stderr
        assert np.abs(_state(sv) - want_state).max() < 1e-12
        assert json.loads(res.read_text())["metadata"]["storage"] == ("ssd" if tier else "ram")
