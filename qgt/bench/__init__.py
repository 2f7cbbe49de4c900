"""``qgt bench``: the fixed suite timed for qgt and, in the same run, for its peers."""

from qgt.bench.runner import run_bench

__all__ = ["run_bench"]
