"""The runtime: executes a Plan on one MPI rank (state slice, exchanges, reductions)."""
