"""Checkpoint files: write one atomically from all ranks, list, verify, find and read them.

Called by the runtime (``Checkpointer.write`` at a trigger, ``find_latest`` + ``read_meta`` +
``read_local`` on resume) and by ``qgt.io.inspect`` (``qgt inspect``).  The format is in
docs/checkpoint-format.md; in short::

    <checkpoint_dir>/ckpt-000007/        renamed from ckpt-000007.tmp/ once complete
        rank00000.h5  /slice             this rank's 2^n/P amplitudes, logical order,
        rank00001.h5  /slice             chunked, fletcher32 checksums
        master.h5     /state             virtual: 2^n amplitudes spanning the rank files
                      /executed          uint8 per plan item; attributes (step, hashes, ...)

``comm`` is duck-typed like ``qgt.runtime.comm.Comm`` (rank, size, bcast, barrier, agree),
so this module never imports mpi4py.  One job owns a checkpoint directory: a new write
removes any ``.tmp`` left there by a job that died mid-write.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime

import h5py
import numpy as np

from qgt import __version__
from qgt.errors import CheckpointError, ConfigError, InternalError

FORMAT_VERSION = 1
MASTER = "master.h5"
_NAME = re.compile(r"^ckpt-(\d{6,})$")
_TMP = re.compile(r"^ckpt-(\d{6,})\.tmp$")
_CHUNK = 1 << 16  # amplitudes per chunk (1 MiB): the unit a checksum covers
_BLOCK = 1 << 20  # amplitudes per read while verifying, to bound memory
# v110 is the oldest format with virtual datasets and checksummed metadata; "latest" would
# lock out readers with an older HDF5 than the writer's.
_LIBVER = ("v110", "v110")
_BUG = "bug: "  # marks an agreed error that is an internal error, not a checkpoint failure

# attributes the caller gives; the writer adds format_version, n_qubits, ranks, step,
# qgt_version and created
CALLER_KEYS = ("circuit_hash", "plan_hash", "layout", "clbits", "rng_state", "config",
               "trajectory", "elapsed")
ATTR_KEYS = ("format_version", "circuit_hash", "plan_hash", "step", "n_qubits", "ranks",
             "layout", "clbits", "rng_state", "config", "qgt_version", "created",
             "trajectory", "elapsed")


def rank_file(rank: int) -> str:
    return f"rank{rank:05d}.h5"


def is_checkpoint_name(path: str) -> bool:
    """Whether ``path`` is named like a complete checkpoint (``ckpt-000007``)."""
    return bool(_NAME.match(os.path.basename(os.path.normpath(path))))


class Checkpointer:
    """Writes checkpoints into ``directory``, keeping the newest ``keep``."""

    def __init__(self, directory: str, keep: int, comm):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ConfigError(f"checkpoint_keep must be an integer >= 1, not {keep!r}")
        self.directory = os.path.abspath(directory)
        self.keep = keep
        self.comm = comm

    def write(self, local: np.ndarray, attrs: dict, executed: np.ndarray) -> str:
        """Collective: every rank passes its slice (logical order); returns the new
        checkpoint's path on every rank, or every rank raises the same error."""
        comm = self.comm
        err = seq = None
        try:
            local = _check_slice(local)
            meta = _encode_attrs(attrs, len(local), comm.size, executed)
            meta["precision"] = next(k for k, v in _DTYPES.items() if v == local.dtype)
        except (_Bug, TypeError, ValueError) as e:
            err = f"{_BUG}rank {comm.rank}: {e}"
        if comm.rank == 0:
            try:
                seq = self._make_tmp()
            except OSError as e:
                err = err or (f"writing a checkpoint in {self.directory} failed on rank 0: "
                              f"{_reason(e)}")
        seq = comm.bcast(seq)
        # each error is agreed on before the next step, so every rank takes the same branch
        # and none is left waiting in a collective the others skipped
        err = comm.agree(err)
        if err is None:
            try:
                _write_h5(os.path.join(self._tmp(seq), rank_file(comm.rank)),
                          lambda f: _fill_rank_file(f, local, comm.rank))
            except Exception as e:  # any failure at all must reach the other ranks
                err = _failure(self._final(seq), comm.rank, e)
            err = comm.agree(err)
        if err is None:
            if comm.rank == 0:
                try:
                    self._commit(seq, meta, executed)
                    self._prune()
                except Exception as e:  # as above
                    err = _failure(self._final(seq), 0, e)
            err = comm.bcast(err)
        if err is not None:
            self._abandon(seq)
            if err.startswith(_BUG):
                raise InternalError(f"writing a checkpoint: {err[len(_BUG):]}")
            raise CheckpointError(err)
        return self._final(seq)

    def _tmp(self, seq: int) -> str:
        return os.path.join(self.directory, f"ckpt-{seq:06d}.tmp")

    def _final(self, seq: int | None) -> str:
        return os.path.join(self.directory, f"ckpt-{seq:06d}" if seq is not None else "ckpt-?")

    def _make_tmp(self) -> int:
        """Rank 0: clear stale ``.tmp`` dirs, pick the next sequence number, make its dir."""
        os.makedirs(self.directory, exist_ok=True)
        seqs = [0]
        for name in os.listdir(self.directory):
            if _TMP.match(name):
                shutil.rmtree(os.path.join(self.directory, name))
            elif m := _NAME.match(name):
                seqs.append(int(m.group(1)))
        seq = max(seqs) + 1
        os.mkdir(self._tmp(seq))
        return seq

    def _commit(self, seq: int, meta: dict, executed: np.ndarray) -> None:
        """Rank 0, once every rank file is on disk: master, then the atomic rename."""
        tmp, final = self._tmp(seq), self._final(seq)
        _write_h5(os.path.join(tmp, MASTER), lambda f: _fill_master(f, meta, executed))
        _fsync_dir(tmp)
        os.rename(tmp, final)  # the commit point: readers only ever see complete dirs
        _fsync_dir(self.directory)

    def _prune(self) -> None:
        # an old checkpoint that cannot be removed is harmless, and the next write retries
        for path in list_checkpoints(self.directory)[self.keep:]:
            shutil.rmtree(path, ignore_errors=True)

    def _abandon(self, seq: int | None) -> None:
        """Rank 0 removes the partial checkpoint (renamed or not: its number is new, so
        the name is ours); the others wait, so nobody reports the failure before that."""
        if self.comm.rank == 0 and seq is not None:
            shutil.rmtree(self._tmp(seq), ignore_errors=True)
            shutil.rmtree(self._final(seq), ignore_errors=True)
        self.comm.barrier()


def list_checkpoints(directory: str) -> list[str]:
    """Complete checkpoints in ``directory`` (``.tmp`` ones are not), newest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), name) for name in names if (m := _NAME.match(name))]
    return [os.path.join(directory, name) for _, name in sorted(found, reverse=True)
            if os.path.isdir(os.path.join(directory, name))]


def verify(path: str) -> None:
    """Raise ``CheckpointError`` naming what is wrong with the checkpoint at ``path``;
    reads every amplitude, so that every checksum is checked."""
    problem = _problem(path)
    if problem:
        raise CheckpointError(f"checkpoint {path} failed verification: {problem}")


def find_latest(directory: str, comm, circuit_hash: str | None = None
                ) -> tuple[str | None, list[str]]:
    """Collective: the newest checkpoint that verifies (or None), and a warning for each
    newer one skipped as corrupt.  One of another circuit is refused, not skipped: the
    directory was probably mixed up, and starting over would discard somebody's work."""
    answer = (None, [], None)
    if comm.rank == 0:
        try:
            answer = _find_latest(directory, circuit_hash)
        except Exception as e:  # a bug on rank 0 must still reach the other ranks
            answer = (None, [], f"{_BUG}{type(e).__name__}: {e}")
    path, warnings, err = comm.bcast(answer)
    if err is not None:
        if err.startswith(_BUG):
            raise InternalError(f"finding a checkpoint: {err[len(_BUG):]}")
        raise CheckpointError(err)
    return path, warnings


def _find_latest(directory, circuit_hash):
    candidates = list_checkpoints(directory)
    warnings = []
    for i, path in enumerate(candidates):
        try:
            theirs = read_meta(path)["circuit_hash"]
        except CheckpointError:
            theirs = None  # unreadable: _problem says why
        if circuit_hash is not None and theirs is not None and theirs != circuit_hash:
            return None, warnings, (f"checkpoint {path} belongs to another circuit (hash "
                                    f"{theirs} != {circuit_hash}); use another checkpoint_dir")
        problem = _problem(path)
        if problem is None:
            return path, warnings, None
        then = "using the previous one" if i + 1 < len(candidates) else "no older one is left"
        warnings.append(f"checkpoint {path} is corrupt ({problem}); {then}")
    return None, warnings, None


def read_meta(path: str) -> dict:
    """The master's attributes as Python values, plus ``executed`` (uint8 per plan item)."""
    try:
        return _read_meta(path)
    except _Damaged as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None


def read_local(path: str, rank: int, size: int) -> np.ndarray:
    """Amplitudes [rank*2^n/size, (rank+1)*2^n/size) in logical order; ``size`` is the
    reader's rank count, any power of two up to 2^n (not necessarily the writer's)."""
    meta = read_meta(path)
    n, total = meta["n_qubits"], 1 << meta["n_qubits"]
    if size < 1 or size & (size - 1) or size > total or not 0 <= rank < size:
        raise CheckpointError(
            f"checkpoint {path} holds 2^{n} amplitudes: it can be read by a power-of-two "
            f"number of ranks up to {total}, not as rank {rank} of {size}")
    per, wper = total // size, total // meta["ranks"]
    lo, hi = rank * per, (rank + 1) * per
    # a missing source file would read as the fill value (NaN), silently
    for r in range(lo // wper, (hi - 1) // wper + 1):
        if not os.path.isfile(os.path.join(path, rank_file(r))):
            raise CheckpointError(f"checkpoint {path}: missing file {rank_file(r)}")
    out = np.empty(hi - lo, dtype=_DTYPES[checkpoint_precision(meta)])
    read_range(path, lo, out)
    return out


# ---- writing -------------------------------------------------------------------------------

class _Bug(Exception):
    """Bad arguments from the caller (a bug in qgt), agreed on before raising InternalError."""


class Pieces:
    """A slice too large for RAM, given as its length and a function yielding
    (offset, array) pieces in order (the out-of-core engine's pages)."""

    def __init__(self, length: int, pieces, dtype=np.complex128):
        self.length = length
        self.pieces = pieces
        self.dtype = np.dtype(dtype)

    def __len__(self) -> int:
        return self.length


def read_range(path: str, start: int, out: np.ndarray) -> None:
    """Fill ``out`` with amplitudes [start, start + len(out)) of the checkpoint's /state."""
    try:
        with h5py.File(os.path.join(path, MASTER), "r") as f:
            f["state"].read_direct(out, np.s_[start:start + len(out)])
    except (OSError, KeyError) as e:
        raise CheckpointError(f"reading checkpoint {path} failed (`qgt inspect {path}` "
                              f"checks it): {e}") from None


def _check_slice(local) -> np.ndarray:
    if isinstance(local, Pieces):
        return local
    local = np.ascontiguousarray(local)
    if local.dtype not in _DTYPES.values() or local.ndim != 1 or len(local) < 1:
        raise _Bug(f"a checkpoint slice must be a 1-d complex128 or complex64 array, not "
                   f"{local.dtype} {local.shape}")
    return local


# the precision a checkpoint records (master attribute ``precision``; a checkpoint
# written before it existed is double) and the dtype of its slices
_DTYPES = {"double": np.dtype(np.complex128), "single": np.dtype(np.complex64)}


def checkpoint_precision(meta: dict) -> str:
    return str(meta.get("precision", "double"))


def _encode_attrs(attrs: dict, per_rank: int, ranks: int, executed) -> dict:
    """The master's attributes, checked: a wrong key or layout is a bug in the caller."""
    missing = [k for k in CALLER_KEYS if k not in attrs]
    unknown = [k for k in attrs if k not in CALLER_KEYS + ("step", "n_qubits")]
    if missing or unknown:
        raise _Bug(f"checkpoint attributes: missing {missing}, unknown {unknown}")
    n = (per_rank * ranks).bit_length() - 1
    if per_rank * ranks != 1 << n or attrs.get("n_qubits", n) != n:
        raise _Bug(f"{per_rank} amplitudes per rank x {ranks} ranks is not 2^n_qubits")
    executed = np.asarray(executed)
    if executed.ndim != 1 or not np.isin(executed, (0, 1)).all():
        raise _Bug("executed must be a 1-d array of 0/1 per plan item")
    step = int(executed.sum())
    if attrs.get("step", step) != step:
        raise _Bug(f"step {attrs['step']} != {step} executed items")
    layout = [int(q) for q in attrs["layout"]]
    if layout != list(range(n)):
        raise _Bug(f"checkpoint layout {layout} is not the identity: the runtime must "
                   "restore logical order first")
    try:
        clbits = str(int(attrs["clbits"]))
    except (TypeError, ValueError):
        raise _Bug(f"clbits {attrs['clbits']!r} is not an integer") from None

    def text(v):
        return v if isinstance(v, str) else json.dumps(v, sort_keys=True)

    return {"format_version": FORMAT_VERSION, "circuit_hash": str(attrs["circuit_hash"]),
            "plan_hash": str(attrs["plan_hash"]), "step": step, "n_qubits": n,
            "ranks": ranks, "layout": np.array(layout, dtype=np.int64), "clbits": clbits,
            "rng_state": text(attrs["rng_state"]), "config": text(attrs["config"]),
            "qgt_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "trajectory": int(attrs["trajectory"]), "elapsed": float(attrs["elapsed"])}


def _fill_rank_file(f, local, rank: int) -> None:
    if isinstance(local, Pieces):
        ds = f.create_dataset("slice", shape=(len(local),), dtype=local.dtype,
                              chunks=(min(len(local), _CHUNK),), fletcher32=True)
        for offset, data in local.pieces():
            ds[offset:offset + len(data)] = data
    else:
        f.create_dataset("slice", data=local, chunks=(min(len(local), _CHUNK),),
                         fletcher32=True)
    f.attrs["rank"] = rank


def _fill_master(f, meta: dict, executed) -> None:
    n, ranks = meta["n_qubits"], meta["ranks"]
    per = (1 << n) // ranks
    layout = h5py.VirtualLayout(shape=(1 << n,), dtype=_DTYPES[checkpoint_precision(meta)])
    for r in range(ranks):
        # relative names: the directory can be renamed or moved as a whole
        layout[r * per:(r + 1) * per] = h5py.VirtualSource(
            "./" + rank_file(r), "slice", shape=(per,))
    f.create_virtual_dataset("state", layout, fillvalue=complex("nan"))
    ex = np.asarray(executed, dtype=np.uint8)
    if len(ex):  # HDF5 cannot chunk (so checksum) an empty dataset
        f.create_dataset("executed", data=ex, chunks=(min(len(ex), _CHUNK),), fletcher32=True)
    else:
        f.create_dataset("executed", data=ex)
    for k, v in meta.items():
        f.attrs[k] = v


def _write_h5(path: str, fill) -> None:
    """Create an HDF5 file at ``path`` with ``fill(h5py_file)``, then fsync it.

    HDF5 goes through ``_RawFile``, which keeps a write error (ENOSPC, EIO) to itself and
    raises it only after HDF5 has closed the file: an error inside HDF5's own flush at close
    leaves h5py's objects half torn down, and the process can crash.
    """
    raw = _RawFile(path)
    try:
        try:
            with h5py.File(raw, "w", libver=_LIBVER) as f:
                fill(f)
        except Exception:
            # HDF5 may trip over what it failed to write: report the cause (ENOSPC)
            raw.raise_error()
            raise
        raw.raise_error()
        os.fsync(raw.fd)
    finally:
        os.close(raw.fd)


class _RawFile:
    """The file object HDF5 writes through: positioned I/O on a descriptor, with the first
    error kept for ``finish`` (HDF5 sees success and carries on into a file we discard)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.pos = 0
        self.error: OSError | None = None

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self.pos, os.fstat(self.fd).st_size)[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and done < len(view):
            try:
                done += os.pwrite(self.fd, view[done:], self.pos + done)
            except OSError as e:
                self.error = e
        self.pos += len(view)
        return len(view)

    def read(self, size: int = -1) -> bytes:  # h5py only takes objects that have read()
        if size < 0:
            size = max(0, os.fstat(self.fd).st_size - self.pos)
        data = os.pread(self.fd, size, self.pos)
        self.pos += len(data)
        return data

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        data = os.pread(self.fd, len(view), self.pos)
        view[:len(data)] = data
        self.pos += len(data)
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        try:
            os.ftruncate(self.fd, size)
        except OSError as e:
            self.error = self.error or e
        return size

    def flush(self) -> None:
        pass  # _write_h5 fsyncs once, at the end

    def raise_error(self) -> None:
        if self.error is not None:
            raise OSError(self.error.errno, self.error.strerror, self.path) from None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror} ({e.filename})" if e.filename else e.strerror
    return str(e)


def _failure(final: str, rank: int, e: Exception) -> str:
    if isinstance(e, OSError):
        return f"writing checkpoint {final} failed on rank {rank}: {_reason(e)}"
    return f"{_BUG}rank {rank}: {type(e).__name__}: {e}"  # h5py refusing our own arguments


# ---- reading -------------------------------------------------------------------------------

class _Damaged(Exception):
    """What is wrong with a checkpoint; the public functions add its path."""


def _read_meta(path: str) -> dict:
    master = os.path.join(path, MASTER)
    if not os.path.isfile(master):
        raise _Damaged(f"missing file {MASTER}" if os.path.isdir(path) else "no such directory")
    try:
        with h5py.File(master, "r") as f:
            meta = {k: _plain(v) for k, v in f.attrs.items()}
            if meta.get("format_version") != FORMAT_VERSION:
                raise _Damaged(f"bad format_version {meta.get('format_version')!r} (qgt "
                               f"{__version__} reads version {FORMAT_VERSION})")
            missing = [k for k in ATTR_KEYS if k not in meta]
            if missing:
                raise _Damaged(f"{MASTER} lacks attributes {missing}")
            state = f.get("state")
            if state is None or state.shape != (1 << meta["n_qubits"],) or not state.is_virtual:
                raise _Damaged(f"size mismatch in {MASTER}: /state is not a virtual dataset "
                               f"of 2^{meta['n_qubits']} amplitudes")
            meta["executed"] = f["executed"][...]
    except (OSError, KeyError) as e:
        raise _Damaged(f"{MASTER} is unreadable ({e})") from None
    return meta


def _plain(v):
    """An attribute as a plain Python value (h5py gives numpy scalars and arrays)."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v.decode() if isinstance(v, bytes) else v


def _problem(path: str) -> str | None:
    """What is wrong with a checkpoint, or None when every file and checksum is fine."""
    try:
        meta = _read_meta(path)
    except _Damaged as e:
        return str(e)
    n, ranks = meta["n_qubits"], meta["ranks"]
    if ranks < 1 or ranks & (ranks - 1) or ranks > 1 << n:
        return f"{MASTER} says {ranks} ranks for {n} qubits"
    if meta["step"] != int(meta["executed"].sum()):
        return f"{MASTER}: step {meta['step']} but {meta['executed'].sum()} executed items"
    for r in range(ranks):
        problem = _rank_problem(os.path.join(path, rank_file(r)), (1 << n) // ranks,
                                _DTYPES.get(checkpoint_precision(meta)))
        if problem:
            return problem
    return None


def _rank_problem(file: str, per: int, dtype=np.dtype(np.complex128)) -> str | None:
    name = os.path.basename(file)
    if not os.path.isfile(file):
        return f"missing file {name}"
    try:
        f = h5py.File(file, "r")
    except OSError as e:
        return f"{name} is not a readable HDF5 file ({e})"
    with f:
        ds = f.get("slice")
        if dtype is None:
            return f"{MASTER} records an unknown precision"
        if ds is None or ds.shape != (per,) or ds.dtype != dtype:
            shape = None if ds is None else (ds.shape, str(ds.dtype))
            return f"size mismatch in {name}: slice is {shape}, expected (({per},), {dtype})"
        if not ds.fletcher32:
            return f"{name} was written without checksums"
        buf = np.empty(min(per, _BLOCK), dtype=dtype)
        for lo in range(0, per, _BLOCK):
            m = min(_BLOCK, per - lo)
            try:
                ds.read_direct(buf, np.s_[lo:lo + m], np.s_[0:m])
            except OSError as e:
                return f"checksum failure in {name} (amplitudes {lo}..{lo + m - 1}: {e})"
    return None
