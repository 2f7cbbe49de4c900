"""Output paths checked before a run starts, so that hours of simulation are never lost
to a misspelt directory at the end.

Called by the command line (``--output``, ``--trace``: rank 0 writes them) and by
``qgt.api`` (``statevector`` and ``checkpoint_dir``: every rank writes its own file
there) before the first plan step.  Each function returns an error message naming the
path and what is wrong, or None; the callers agree on it across ranks.  Nothing is
created: a check that wrote probe files would leave litter on a parallel file system.
"""

from __future__ import annotations

import os

from qgt.units import format_size_approx as fmt


def _existing_parent(path: str) -> str:
    d = os.path.dirname(os.path.abspath(path)) or "/"
    while not os.path.exists(d):
        d = os.path.dirname(d)
    return d


def writable_file(path: str, what: str, need_bytes: int = 0) -> str | None:
    """Whether ``path`` can be created or overwritten (its directory must exist)."""
    p = os.path.abspath(path)
    d = os.path.dirname(p)
    if os.path.isdir(p):
        return f"{what} '{path}' is a directory, not a file"
    if not os.path.isdir(d):
        return (f"{what} '{path}': the directory '{os.path.dirname(path) or d}' does not "
                "exist; create it first")
    if not os.access(d, os.W_OK | os.X_OK):
        return f"{what} '{path}': the directory '{d}' is not writable"
    if os.path.exists(p) and not os.access(p, os.W_OK):
        return f"{what} '{path}' exists and is not writable"
    return _room(path, what, d, need_bytes)


def writable_dir(path: str, what: str, need_bytes: int = 0) -> str | None:
    """Whether ``path`` is a writable directory, or can be created as one."""
    p = os.path.abspath(path)
    if os.path.exists(p) and not os.path.isdir(p):
        return f"{what} '{path}' exists and is not a directory"
    d = p if os.path.isdir(p) else _existing_parent(p)
    if not os.path.isdir(d):
        return f"{what} '{path}': '{d}' is not a directory"
    if not os.access(d, os.W_OK | os.X_OK):
        return f"{what} '{path}': '{d}' is not writable"
    return _room(path, what, d, need_bytes)


def _room(path: str, what: str, d: str, need_bytes: int) -> str | None:
    """Whether the file system of directory ``d`` has ``need_bytes`` free for ``path``."""
    if need_bytes:
        st = os.statvfs(d)
        free = st.f_bavail * st.f_frsize
        if need_bytes > free:
            return (f"{what} '{path}' needs {fmt(need_bytes)} on this node but its file "
                    f"system has {fmt(free)} free")
    return None


def first_error(*errors: str | None) -> str | None:
    return next((e for e in errors if e), None)
