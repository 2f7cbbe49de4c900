"""The disk calibration (qgt.bench.calibrate): a small direct-I/O measurement returns
sane numbers and leaves nothing behind, and the cache round-trips under a private
XDG_CACHE_HOME, keyed by host and file system.  Also the out-of-core benchmark's own
arithmetic (qgt.bench.ooc): its OS-paging baseline applies the right gates, and its
sanity checks of QFT|0> tell a uniform sample from a biased one."""

from __future__ import annotations

import json
import types

import pytest

from qgt.bench import calibrate

SIZE = 8 << 20


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def test_measure_small_file(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    res = calibrate.measure(str(scratch), SIZE, block=1 << 20)
    for key in ("disk_write_Bps", "disk_read_Bps", "disk_write_ring_Bps", "disk_read_ring_Bps",
                "memory_pass_Bps"):
        assert res[key] > 0, key
    assert res["scratch_dir"] == str(scratch) and res["host"] and res["measured_at"]
    assert res["disk_bytes"] == SIZE and res["block_bytes"] == 1 << 20
    assert res["ring_bytes"] == SIZE  # the ring is capped at the file size
    assert list(scratch.iterdir()) == []  # the test file is removed


def test_cache_round_trip(tmp_path, cache_home):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert calibrate.cached(str(scratch)) is None  # nothing stored yet
    res = calibrate.calibrate(str(scratch), SIZE)
    assert (cache_home / "qgt" / "calibration.json").is_file()
    assert calibrate.cached(str(scratch)) == res
    # the key is the file system, not the directory: a sibling on the same disk shares it
    other = tmp_path / "other"
    other.mkdir()
    assert calibrate.cached(str(other)) == res
    assert calibrate.cached(str(tmp_path / "missing")) is None


def test_corrupt_cache_reads_as_absent(tmp_path, cache_home):
    path = cache_home / "qgt" / "calibration.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert calibrate.cached(str(tmp_path)) is None
    calibrate.calibrate(str(tmp_path), SIZE)  # and a new calibration replaces it
    assert json.loads(path.read_text())["version"] == calibrate.CACHE_VERSION


def test_main_prints_a_table(tmp_path, cache_home, capsys):
    args = types.SimpleNamespace(scratch_dir=str(tmp_path), size="8MiB")
    assert calibrate.main(args) == 0
    out = capsys.readouterr().out
    assert "disk write" in out and "disk read" in out and "memory pass" in out
    assert calibrate.cached(str(tmp_path)) is not None


# ---- the out-of-core benchmark's own arithmetic (qgt.bench.ooc), small and fast ------------
def test_paging_baseline_applies_the_circuit(monkeypatch):
    """The OS-paging baseline's gate passes (on chunked views, SWAPs as relabellings)
    give the circuit's state: its timings are for the right work."""
    import numpy as np
    from qiskit.quantum_info import Statevector

    from qgt.bench import ooc
    from qgt.frontend import load_circuit, load_qiskit
    from qgt.ops import Gate, Swap

    monkeypatch.setattr(ooc, "CHUNK_BITS", 5)  # force several chunks per gate at n = 9
    rng = np.random.default_rng(3)
    for spec in ("qft:9", "random:9:8:3", "qaoa:9:2:1"):
        circ = load_circuit(spec)
        n = circ.n_qubits
        v0 = rng.normal(size=1 << n) + 1j * rng.normal(size=1 << n)
        v0 /= np.linalg.norm(v0)
        psi = v0.copy().reshape((2,) * n)
        pos = list(range(n))
        for op in circ.ops:
            if isinstance(op, Swap):
                pos[op.a], pos[op.b] = pos[op.b], pos[op.a]
            elif isinstance(op, Gate):
                assert ooc._apply_paged(psi, n, op, pos, float("inf")) == 1.0
        idx = np.arange(1 << n)
        phys = sum(((idx >> q) & 1) << pos[q] for q in range(n))
        got = psi.reshape(-1)[phys] * np.exp(1j * circ.global_phase)
        want = Statevector(v0).evolve(load_qiskit(spec).remove_final_measurements(inplace=False))
        assert np.abs(got - want.data).max() < 1e-12, spec


def test_uniform_checks_tell_uniform_from_biased():
    import numpy as np

    from qgt.bench import ooc

    rng = np.random.default_rng(1)
    n, shots = 31, 1000

    def counts(keys):
        out: dict[str, int] = {}
        for k in keys:
            out[format(int(k), f"0{n}b")] = out.get(format(int(k), f"0{n}b"), 0) + 1
        return out

    assert ooc._uniform_checks(counts(rng.integers(0, 1 << n, shots)), n, shots)["ok"]
    biased = rng.integers(0, 1 << n, shots) & ~(1 << (n - 1))  # top qubit never 1
    assert not ooc._uniform_checks(counts(biased), n, shots)["ok"]
    obs = ooc._qft_observables(n, 6)
    assert sorted(obs.values()) == [0.0, 1.0]
    assert all(len(k) == n for k in obs) and max(k.count("X") for k in obs) == 6
