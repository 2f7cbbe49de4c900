"""The only module that imports h5py: state-vector files (one per rank) and the
master file whose virtual dataset ``/state`` spans them in logical Qiskit order.

Called by ``qgt.api`` after a run (every rank writes its own slice; rank 0 writes
the master once all slices exist) and by the tests, which read ``/state`` with plain
h5py.  Source files are referenced by name relative to the master's directory, so
the set of files can be moved together.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

FORMAT_VERSION = 1


def slice_path(master: str, rank: int) -> str:
    root, _ = os.path.splitext(master)
    return f"{root}.rank{rank:05d}.h5"


def write_slice(master: str, rank: int, pieces, length: int, fletcher32: bool = True,
                dtype=np.complex128) -> str:
    """Write this rank's slice (already in logical order) to its own file, from
    ``pieces``: (offset, array) in any order (one array in RAM; out of core page by
    page, or group by group as the last sweep passes); offsets no piece covers read 0;
    ``dtype`` complex128, or complex64 for a single-precision run."""
    path = slice_path(master, rank)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("slice", shape=(length,), dtype=dtype, fillvalue=0j,
                              fletcher32=fletcher32, chunks=(min(length, 1 << 16),))
        for offset, data in pieces:
            ds[offset:offset + len(data)] = data
        f.attrs["rank"] = rank
    os.replace(tmp, path)
    return path


def write_master(master: str, n_qubits: int, ranks: int, attrs: dict | None = None,
                 dtype=np.complex128) -> None:
    """Write the master file: ``/state`` is a virtual dataset over the rank files."""
    per_rank = (1 << n_qubits) // ranks
    layout = h5py.VirtualLayout(shape=(1 << n_qubits,), dtype=dtype)
    for r in range(ranks):
        src = os.path.basename(slice_path(master, r))
        layout[r * per_rank:(r + 1) * per_rank] = h5py.VirtualSource(
            "./" + src, "slice", shape=(per_rank,))
    tmp = master + ".tmp"
    with h5py.File(tmp, "w", libver="latest") as f:
        f.create_virtual_dataset("state", layout, fillvalue=np.nan + 0j)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["n_qubits"] = n_qubits
        f.attrs["ranks"] = ranks
        f.attrs["order"] = "qiskit (qubit 0 is the least significant bit)"
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    os.replace(tmp, master)


def read_state(master: str) -> np.ndarray:
    """Read the whole ``/state`` (small states only: tests and examples)."""
    with h5py.File(master, "r") as f:
        return f["state"][...]


def write_standalone(master: str, dest: str, chunk: int = 1 << 20) -> str:
    """Copy ``/state`` (and the master's attributes) into one self-contained file, chunk by
    chunk: what a download must be (the master alone only points at the rank files).
    Called by qgt.serve's workers for GET /tasks/{id}/statevector."""
    tmp = dest + ".tmp"
    with h5py.File(master, "r") as src, h5py.File(tmp, "w") as out:
        state = src["state"]
        ds = out.create_dataset("state", shape=state.shape, dtype=state.dtype,
                                chunks=(min(state.shape[0], 1 << 16),), fletcher32=True)
        for lo in range(0, state.shape[0], chunk):
            ds[lo:lo + chunk] = state[lo:lo + chunk]
        for k, v in src.attrs.items():
            out.attrs[k] = v
    os.replace(tmp, dest)
    return dest
