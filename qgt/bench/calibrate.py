"""Disk and memory calibration: what one out-of-core pass can cost on this node.

Called by ``qgt calibrate`` (``main``) and by the out-of-core benchmark
(``qgt.bench.ooc``), which compares the engine's achieved I/O rate with ``measure``'s.
``measure`` writes then reads a scratch file with direct I/O (O_DIRECT, page-aligned
buffers, ``block``-sized requests, one at a time: what ``dd oflag=direct`` does), once
with one buffer and once cycling through a 1 GiB buffer as the engine does, and times
an in-RAM read+write pass over a numpy array. ``calibrate`` stores the figures in
``$XDG_CACHE_HOME/qgt/calibration.json`` (default ``~/.cache/qgt``), keyed by host and
the scratch file system's device number, so ``cached`` can answer later without
writing gigabytes again.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from qgt.errors import UserError
from qgt.units import format_size, parse_size

_ALIGN = 4096  # O_DIRECT wants offsets, lengths and buffers aligned to the block size
MEMORY_PASS_MAX = 1 << 30
RING_MAX = 1 << 30  # the engine's group buffer at memory_limit=4GiB
CACHE_VERSION = 2  # 2: the *_ring_Bps figures


def _aligned(nbytes: int) -> mmap.mmap:
    """A page-aligned buffer (anonymous mmap), filled with random bytes so a
    compressing or deduplicating device cannot make the figures look better."""
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    np.frombuffer(buf, dtype=np.uint8)[:] = np.random.default_rng(0).integers(
        0, 256, nbytes, dtype=np.uint8)
    return buf


def _open_direct(path: str, flags: int) -> tuple[int, bool]:
    """Open with O_DIRECT; file systems without it (tmpfs) fall back to buffered I/O,
    and the caller records that the figures are not direct-I/O figures."""
    try:
        return os.open(path, flags | os.O_DIRECT, 0o600), True
    except OSError as e:
        if e.errno != 22:  # EINVAL: O_DIRECT not supported here
            raise
        return os.open(path, flags, 0o600), False


def _disk(scratch_dir: str, size: int, block: int, ring: int) -> dict:
    """Write (then fsync) and read back a fresh file; request i uses the i-th block of a
    ``ring``-byte buffer (ring == block: one buffer, as dd does)."""
    path = os.path.join(scratch_dir, f"qgt-calibrate-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    buf = _aligned(ring)
    view = memoryview(buf)
    slots = ring // block

    def piece(i: int, n: int):
        k = i % slots
        return view[k * block:k * block + n]

    try:
        fd, direct = _open_direct(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            t = time.perf_counter()
            for i, off in enumerate(range(0, size, block)):
                n = min(block, size - off)
                if os.pwrite(fd, piece(i, n), off) != n:
                    raise OSError(f"short write to {path}")
            os.fsync(fd)
            t_write = time.perf_counter() - t
        finally:
            os.close(fd)
        if not direct:  # a buffered read would only measure the page cache just filled
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        fd, _ = _open_direct(path, os.O_RDONLY)
        try:
            t = time.perf_counter()
            for i, off in enumerate(range(0, size, block)):
                n = min(block, size - off)
                if os.preadv(fd, [piece(i, n)], off) != n:
                    raise OSError(f"short read from {path}")
            t_read = time.perf_counter() - t
        finally:
            os.close(fd)
    finally:
        view.release()
        buf.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return {"write_Bps": size / t_write, "read_Bps": size / t_read, "direct_io": direct}


def _memory_pass(nbytes: int, threads: int, repeat: int = 3) -> float:
    """Bytes/s of an in-place read+write pass (read and written bytes both counted, as
    in MACHINE_FACTS), split over ``threads`` threads; numpy releases the GIL in
    ufuncs.  Best of ``repeat`` after a first pass that faults the pages in."""
    a = np.ones(max(1, nbytes // 8))
    parts = np.array_split(a, threads)

    def one(x):
        np.multiply(x, 1.0000001, out=x)

    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for i in range(repeat + 1):
            t = time.perf_counter()
            list(pool.map(one, parts))
            if i:
                best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best


def _kernel_flops(threads: int, qubits: int = 4, bits: int = 16, repeat: int = 5) -> float:
    """Flops/s of the sweep kernel on a dense ``qubits``-qubit gate over an in-cache
    2^bits buffer (8 flops per complex multiply-add, 2^qubits per amplitude): the
    arithmetic ceiling ``qgt report`` compares sweeps with.  Best of ``repeat``."""
    from qgt import _kern

    rng = np.random.default_rng(1)
    m = rng.standard_normal((1 << qubits, 1 << qubits)) + 1j * rng.standard_normal(
        (1 << qubits, 1 << qubits))
    ops = _kern.OpList([(_kern.KIND_DENSE, tuple(range(qubits)), 0, 0, m)] * 8)
    buf = np.ones(1 << bits, dtype=complex) / (1 << (bits // 2))
    best = float("inf")
    for i in range(repeat + 1):
        t = time.perf_counter()
        _kern.sweep(buf, bits, 0, list(range(bits)), ops, threads)
        if i:
            best = min(best, time.perf_counter() - t)
    return 8 * 8 * (1 << qubits) * (1 << bits) / best


def measure(scratch_dir: str, size_bytes: int = 1 << 30, block: int = 16 << 20) -> dict:
    """Direct-I/O write (then fsync) and read of a ``size_bytes`` file in ``scratch_dir``
    in ``block``-sized requests; the file is removed.  Also an in-RAM read+write pass
    over min(size_bytes, 1 GiB).  All rates in bytes per second.

    ``disk_write_Bps``/``disk_read_Bps`` reuse one ``block`` buffer, as ``dd bs=16M``
    does.  The ``*_ring_Bps`` figures repeat the test with each request on the next
    block of a min(size_bytes, 1 GiB) buffer, as the out-of-core engine's group buffers
    are used: on the KVM development machine that is up to twice as fast (MACHINE_FACTS's
    figures are one-buffer figures), so both are reported."""
    if not os.path.isdir(scratch_dir):
        raise UserError(f"scratch directory '{scratch_dir}' does not exist")
    block = max(_ALIGN, min(block, size_bytes) // _ALIGN * _ALIGN)
    size = max(block, size_bytes // _ALIGN * _ALIGN)
    one = _disk(scratch_dir, size, block, block)
    ring = max(block, min(size, RING_MAX) // block * block)
    many = _disk(scratch_dir, size, block, ring)
    threads = len(os.sched_getaffinity(0))
    return {"disk_write_Bps": one["write_Bps"], "disk_read_Bps": one["read_Bps"],
            "disk_write_ring_Bps": many["write_Bps"], "disk_read_ring_Bps": many["read_Bps"],
            "direct_io": one["direct_io"], "disk_bytes": size, "block_bytes": block,
            "ring_bytes": ring,
            "memory_pass_Bps": _memory_pass(min(size_bytes, MEMORY_PASS_MAX), threads),
            # one core's rate times the cores: two OpenMP threads on an in-cache buffer
            # measure the other core's load more than the kernel
            "kernel_flops": _kernel_flops(1) * threads,
            "memory_threads": threads, "scratch_dir": os.path.abspath(scratch_dir),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname()}


# ---- the cache --------------------------------------------------------------------------
def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qgt" / "calibration.json"


def _default_scratch() -> str:
    # the same default as the scratch_dir configuration key, without reading QGT_*
    # variables (a calibration must not fail on an unrelated configuration error)
    return os.environ.get("TMPDIR") or "/tmp"


def _key(scratch_dir: str) -> str:
    # st_dev names the file system: any directory on the same disk shares a calibration
    return f"{socket.gethostname()}:{os.stat(scratch_dir).st_dev}"


def _load_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    return data.get("entries", {}) if isinstance(data.get("entries"), dict) else {}


def cached(scratch_dir: str | None = None) -> dict | None:
    """The stored calibration of this host and ``scratch_dir``'s file system, or None."""
    d = scratch_dir or _default_scratch()
    try:
        key = _key(d)
    except OSError:
        return None
    return _load_cache().get(key)


def measure_exchange(timeout: float = 120) -> dict:
    """Two ranks' exchange bandwidth (``qgt.bench.exchange_probe`` under the venv's
    mpiexec), or {} when no launcher is at hand or it fails."""
    import subprocess
    import sys

    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        return {}
    try:
        p = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "qgt.bench.exchange_probe"],
                           capture_output=True, text=True, timeout=timeout)
        return json.loads(p.stdout) if p.returncode == 0 else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def calibrate(scratch_dir: str, size_bytes: int = 1 << 30, exchange: bool = False) -> dict:
    """``measure`` and store the result in the cache (replacing this file system's entry);
    with ``exchange``, also two ranks' exchange bandwidth."""
    res = measure(scratch_dir, size_bytes)
    if exchange:
        res.update(measure_exchange())
    entries = _load_cache()
    entries[_key(scratch_dir)] = res
    path = _cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=2))
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file
    return res


def format_table(res: dict) -> str:
    gb = 1e9
    rows = [
        ("scratch_dir", res["scratch_dir"]),
        ("host", res["host"]),
        ("measured_at", res["measured_at"]),
        ("file", f"{format_size(res['disk_bytes'])} in {format_size(res['block_bytes'])} "
                 f"requests, {'direct I/O' if res['direct_io'] else 'BUFFERED (no O_DIRECT)'}"),
        ("disk write", f"{res['disk_write_Bps'] / gb:.2f} GB/s (with fsync; one buffer, "
                       f"as dd) {res['disk_write_ring_Bps'] / gb:.2f} GB/s (buffer ring of "
                       f"{format_size(res['ring_bytes'])})"),
        ("disk read", f"{res['disk_read_Bps'] / gb:.2f} GB/s (one buffer) "
                      f"{res['disk_read_ring_Bps'] / gb:.2f} GB/s (buffer ring)"),
        ("memory pass", f"{res['memory_pass_Bps'] / gb:.1f} GB/s (read+write bytes, "
                        f"{res['memory_threads']} threads)"),
    ]
    if "exchange_Bps" in res:
        rows.append(("exchange", f"{res['exchange_Bps'] / gb:.2f} GB/s per rank (2 ranks, "
                                 f"{format_size(res['exchange_bytes'])} messages)"))
    if "kernel_flops" in res:
        rows.append(("kernels", f"{res['kernel_flops'] / 1e9:.1f} GFlop/s (dense 4-qubit gates, "
                                f"in cache: one core's rate x {res['memory_threads']})"))
    return "\n".join(f"  {k:12s} {v}" for k, v in rows)


def add_arguments(p) -> None:
    """The options of ``qgt calibrate`` (for the CLI's subparser)."""
    p.add_argument("--scratch-dir", default=None,
                   help="directory on the disk to measure (default: $TMPDIR, else /tmp)")
    p.add_argument("--size", default="1GiB", help="test file size, e.g. 4GiB (default 1GiB)")
    p.add_argument("--kernels", action="store_true",
                   help="also measure the kernels' cost per op kind and width, which the "
                   "planner's fusion then uses on this node (qgt.bench.opcost)")
    p.add_argument("--exchange", action="store_true",
                   help="also measure two ranks' MPI exchange bandwidth (starts mpiexec -n 2)")


def main(args) -> int:
    """``qgt calibrate [--scratch-dir DIR] [--size BYTES]``: measure, store, print."""
    d = getattr(args, "scratch_dir", None) or _default_scratch()
    size = parse_size(getattr(args, "size", None) or (1 << 30))
    before = cached(d)
    res = calibrate(d, size, exchange=getattr(args, "exchange", False))
    print(f"qgt calibrate: {format_size(size)} test file in {res['scratch_dir']}")
    print(format_table(res))
    if before:
        print(f"  (replaces the calibration of {before['measured_at']}: write "
              f"{before['disk_write_Bps'] / 1e9:.2f}, read {before['disk_read_Bps'] / 1e9:.2f} "
              "GB/s, one buffer)")
    print(f"stored in {_cache_path()}")
    if getattr(args, "kernels", False):
        from qgt.bench import opcost

        costs = opcost.measure(len(os.sched_getaffinity(0)))
        print(opcost.format_costs(costs))
        print(f"stored in {opcost.store(costs)}")
    return 0


if __name__ == "__main__":
    import argparse

    _p = argparse.ArgumentParser(prog="python -m qgt.bench.calibrate")
    add_arguments(_p)
    raise SystemExit(main(_p.parse_args()))
