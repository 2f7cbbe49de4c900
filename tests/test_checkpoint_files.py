"""The checkpoint file layer (qgt/io/checkpoint.py, qgt/io/inspect.py): round trips in one
process and on 2 ranks, reading a 2-rank checkpoint back with 1, 2 and 4 ranks, pruning,
damage detected and skipped, a foreign circuit refused, and a disk that fills up mid-write.

Multi-rank cases run tests/ckpt_driver.py under ``mpiexec`` with a timeout (a hang fails).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from qgt.errors import CheckpointError, ConfigError, InternalError
from qgt.io import checkpoint as ck
from qgt.io.inspect import describe_checkpoint
from tests.ckpt_driver import PLAN_ITEMS, amplitudes, attrs, executed
from tests.conftest import ROOT, run_mpi


class SoloComm:
    """The duck-typed communicator of a single process."""

    rank, size = 0, 1

    def bcast(self, obj):
        return obj

    def barrier(self):
        pass

    def agree(self, error):
        return error


def write_steps(directory, n_qubits, steps, keep=3, circuit_hash="c0ffee"):
    writer = ck.Checkpointer(str(directory), keep, SoloComm())
    return [writer.write(amplitudes(n_qubits, s), attrs(n_qubits, circuit_hash), executed(s))
            for s in steps]


def driver(ranks, op, args, tmp_path):
    """Run the mpiexec driver; returns one record per rank."""
    args_file, out_file = tmp_path / f"{op}-args.json", tmp_path / f"{op}-out.json"
    args_file.write_text(json.dumps(args))
    p = run_mpi(ranks, [sys.executable, str(ROOT / "tests" / "ckpt_driver.py"), op,
                        str(args_file), str(out_file)], timeout=60)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(out_file.read_text())


def flip_byte(rank_file, chunk=0, at=100):
    """Flip one byte inside a chunk of amplitudes (not HDF5's own metadata)."""
    with h5py.File(rank_file, "r") as f:
        offset = f["slice"].id.get_chunk_info(chunk).byte_offset + at
    with open(rank_file, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x01]))


# ---- one process ---------------------------------------------------------------------------

def test_round_trip_in_one_process(tmp_path):
    (path,) = write_steps(tmp_path / "ck", 6, [3])
    assert path == str(tmp_path / "ck" / "ckpt-000001")
    assert sorted(os.listdir(path)) == ["master.h5", "rank00000.h5"]
    meta = ck.read_meta(path)
    assert meta["format_version"] == 1 and meta["step"] == 3 and meta["n_qubits"] == 6
    assert meta["ranks"] == 1 and meta["layout"] == list(range(6))
    assert int(meta["clbits"]) == 2**70 + 5
    assert json.loads(meta["rng_state"]) == {"seed": 7, "draws": 3}
    assert json.loads(meta["config"]) == {"checkpoint_keep": 2}
    assert meta["circuit_hash"] == "c0ffee" and meta["plan_hash"] == "feed"
    assert meta["trajectory"] == 0 and meta["elapsed"] == 12.5 and meta["qgt_version"]
    assert meta["executed"].tolist() == executed(3).tolist()
    assert np.array_equal(ck.read_local(path, 0, 1), amplitudes(6, 3))
    for size in (2, 4, 64):
        per = 64 // size
        for r in range(size):
            assert np.array_equal(ck.read_local(path, r, size),
                                  amplitudes(6, 3, r * per, (r + 1) * per))
    ck.verify(path)


def test_plain_h5py_reads_the_format(tmp_path):
    (path,) = write_steps(tmp_path, 5, [2])
    with h5py.File(os.path.join(path, "master.h5"), "r") as f:
        assert np.array_equal(f["state"][...], amplitudes(5, 2))
        assert f.attrs["step"] == 2 and f["executed"].shape == (PLAN_ITEMS,)
    with h5py.File(os.path.join(path, "rank00000.h5"), "r") as f:
        assert f["slice"].fletcher32 and f["slice"].chunks and f["slice"].dtype == np.complex128


def test_keep_prunes_old_and_stale_tmp(tmp_path):
    d = tmp_path / "ck"
    write_steps(d, 4, [1, 2], keep=2)
    (d / "ckpt-000003.tmp").mkdir()  # left by a job killed mid-write
    assert [os.path.basename(p) for p in ck.list_checkpoints(d)] == ["ckpt-000002",
                                                                     "ckpt-000001"]
    write_steps(d, 4, [3, 4, 5], keep=2)
    assert sorted(os.listdir(d)) == ["ckpt-000004", "ckpt-000005"]
    assert ck.read_meta(ck.list_checkpoints(d)[0])["step"] == 5


def test_bad_keep_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint_keep must be an integer >= 1"):
        ck.Checkpointer(str(tmp_path), 0, SoloComm())


def test_non_identity_layout_is_a_bug_and_leaves_nothing(tmp_path):
    bad = dict(attrs(3), layout=[1, 0, 2])
    writer = ck.Checkpointer(str(tmp_path / "ck"), 2, SoloComm())
    with pytest.raises(InternalError, match="not the identity"):
        writer.write(amplitudes(3, 1), bad, executed(1))
    assert os.listdir(tmp_path / "ck") == []


def test_failed_master_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    (old,) = write_steps(tmp_path, 6, [1])

    def disk_full(f, meta, executed):
        raise OSError(28, os.strerror(28), "master.h5")

    monkeypatch.setattr(ck, "_fill_master", disk_full)
    with pytest.raises(CheckpointError, match="ckpt-000002 failed on rank 0: No space left"):
        write_steps(tmp_path, 6, [2])
    assert os.listdir(tmp_path) == ["ckpt-000001"]
    assert ck.find_latest(str(tmp_path), SoloComm(), "c0ffee") == (old, [])


def test_empty_or_missing_directory(tmp_path):
    assert ck.list_checkpoints(tmp_path / "nope") == []
    assert ck.find_latest(str(tmp_path / "nope"), SoloComm(), "c0ffee") == (None, [])
    assert "no complete checkpoints" in describe_checkpoint(str(tmp_path))
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        describe_checkpoint(str(tmp_path / "nope"))


def test_flipped_byte_is_caught_and_the_previous_one_used(tmp_path):
    d = tmp_path / "ck"
    old, new = write_steps(d, 17, [1, 2])  # 2 MiB: two checksummed chunks
    flip_byte(os.path.join(new, "rank00000.h5"), chunk=1)
    with pytest.raises(CheckpointError, match="checksum failure in rank00000.h5"):
        ck.verify(new)
    ck.verify(old)
    with pytest.raises(CheckpointError, match="reading checkpoint .* failed"):
        ck.read_local(new, 0, 1)
    path, warnings = ck.find_latest(str(d), SoloComm(), "c0ffee")
    assert path == old
    assert len(warnings) == 1
    assert f"checkpoint {new} is corrupt (checksum failure" in warnings[0]
    assert warnings[0].endswith("using the previous one")
    text = describe_checkpoint(str(d))
    assert "checksums     FAILED" in text and "checksum failure in rank00000.h5" in text


def _damage_missing_rank(path):
    os.remove(os.path.join(path, "rank00000.h5"))


def _damage_missing_master(path):
    os.remove(os.path.join(path, "master.h5"))


def _damage_format_version(path):
    with h5py.File(os.path.join(path, "master.h5"), "r+") as f:
        f.attrs["format_version"] = 99


def _damage_size(path):
    with h5py.File(os.path.join(path, "rank00000.h5"), "w") as f:
        f.create_dataset("slice", data=np.zeros(8, np.complex128), fletcher32=True, chunks=(8,))


def _damage_truncate(path):
    rank = os.path.join(path, "rank00000.h5")
    os.truncate(rank, os.path.getsize(rank) // 2)


@pytest.mark.parametrize("damage, message", [
    (_damage_missing_rank, "missing file rank00000.h5"),
    (_damage_missing_master, "missing file master.h5"),
    (_damage_format_version, "bad format_version 99"),
    (_damage_size, "size mismatch in rank00000.h5"),
    (_damage_truncate, "rank00000.h5 is not a readable HDF5 file"),
])
def test_verify_names_the_damage(tmp_path, damage, message):
    old, new = write_steps(tmp_path, 6, [1, 2])
    damage(new)
    with pytest.raises(CheckpointError, match=message):
        ck.verify(new)
    path, warnings = ck.find_latest(str(tmp_path), SoloComm())
    assert path == old and message in warnings[0]


def test_only_checkpoint_corrupt_means_none(tmp_path):
    (path,) = write_steps(tmp_path, 6, [1])
    _damage_missing_rank(path)
    found, warnings = ck.find_latest(str(tmp_path), SoloComm(), "c0ffee")
    assert found is None and warnings[0].endswith("no older one is left")


def test_foreign_circuit_is_refused_not_skipped(tmp_path):
    write_steps(tmp_path, 6, [1], circuit_hash="aaaa")
    (latest,) = write_steps(tmp_path, 6, [2], circuit_hash="bbbb")
    with pytest.raises(CheckpointError,
                       match=f"checkpoint {latest} belongs to another circuit "
                             r"\(hash bbbb != aaaa\)"):
        ck.find_latest(str(tmp_path), SoloComm(), "aaaa")
    assert ck.find_latest(str(tmp_path), SoloComm(), None) == (latest, [])


def test_reading_with_an_impossible_rank_count(tmp_path):
    (path,) = write_steps(tmp_path, 3, [1])
    for rank, size in [(0, 3), (0, 16), (2, 2)]:
        with pytest.raises(CheckpointError, match="power-of-two number of ranks up to 8"):
            ck.read_local(path, rank, size)


def test_describe_one_checkpoint(tmp_path):
    (path,) = write_steps(tmp_path, 6, [4])
    text = describe_checkpoint(path)
    for line in ["circuit hash  c0ffee", f"progress      step 4 of {PLAN_ITEMS} plan items "
                 "(25.0%)", "ranks         1", "n_qubits      6", "layout        identity",
                 "size on disk", "created", "elapsed       12.5s",
                 f"clbits        {2**70 + 5}", "checksums     verified OK"]:
        assert line in text, text


# ---- several ranks -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_rank_dir(tmp_path_factory):
    """Three checkpoints of 8 qubits written by 2 ranks, keep=2."""
    tmp = tmp_path_factory.mktemp("two")
    records = driver(2, "write", {"dir": str(tmp / "ck"), "n_qubits": 8, "count": 3,
                                  "keep": 2}, tmp)
    assert records[0] == records[1] and "paths" in records[0], records
    return tmp / "ck", records[0]["paths"]


def test_two_ranks_write_one_checkpoint(two_rank_dir):
    d, paths = two_rank_dir
    assert [os.path.basename(p) for p in paths] == ["ckpt-000001", "ckpt-000002", "ckpt-000003"]
    assert ck.list_checkpoints(d) == [paths[2], paths[1]]  # keep=2
    assert sorted(os.listdir(paths[2])) == ["master.h5", "rank00000.h5", "rank00001.h5"]
    ck.verify(paths[2])
    meta = ck.read_meta(paths[2])
    assert meta["ranks"] == 2 and meta["step"] == 3
    assert np.array_equal(ck.read_local(paths[2], 0, 1), amplitudes(8, 3))


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_any_rank_count_reads_its_range(two_rank_dir, tmp_path, ranks):
    _, paths = two_rank_dir
    records = driver(ranks, "read", {"path": paths[2]}, tmp_path)
    per = 256 // ranks
    assert records == [{"lo": r * per, "len": per, "equal": True} for r in range(ranks)]


def test_ranks_agree_on_falling_back(two_rank_dir, tmp_path):
    d, paths = two_rank_dir
    copy = tmp_path / "ck"
    shutil.copytree(d, copy)
    newest = str(copy / os.path.basename(paths[2]))
    flip_byte(os.path.join(newest, "rank00001.h5"))
    records = driver(2, "find", {"dir": str(copy), "hash": "c0ffee"}, tmp_path)
    assert records[0] == records[1]
    assert records[0]["path"] == str(copy / "ckpt-000002")
    assert "checksum failure in rank00001.h5" in records[0]["warnings"][0]
    records = driver(2, "find", {"dir": str(copy), "hash": "other"}, tmp_path)
    assert all(r["error"] == "CheckpointError" and "belongs to another circuit" in r["message"]
               for r in records)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs, unmounted afterwards."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                           capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small file system to fill")
    if p.returncode != 0:
        pytest.skip(f"cannot mount a 256 KiB tmpfs to fill (needs root): {p.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True, timeout=30)


def test_full_disk_fails_on_every_rank_and_keeps_the_previous(tiny_disk, tmp_path):
    d = tiny_disk / "ck"
    records = driver(2, "write", {"dir": str(d), "n_qubits": 10, "count": 1, "keep": 2},
                     tmp_path)
    (ok,) = records[0]["paths"]
    records = driver(2, "write", {"dir": str(d), "n_qubits": 15, "count": 1, "keep": 2},
                     tmp_path)  # 512 KiB of amplitudes
    for r in records:
        assert r["error"] == "CheckpointError", records
        assert "writing checkpoint" in r["message"] and "failed on rank" in r["message"]
        assert "No space left on device" in r["message"]
    assert records[0] == records[1]
    assert sorted(os.listdir(d)) == ["ckpt-000001"]  # no .tmp left behind
    ck.verify(ok)
    assert ck.find_latest(str(d), SoloComm(), "c0ffee") == (ok, [])
    assert np.array_equal(ck.read_local(ok, 1, 2), amplitudes(10, 1, 512, 1024))
