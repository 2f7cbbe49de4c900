"""The benchmark suite: circuit specs at a chosen n, same workload for every simulator
(the final state plus ``shots`` samples of a final measurement of all qubits)."""

SUITE = {
    "qft": "qft:{n}",
    "random": "random:{n}:20:1",
    "qpe": "qpe:{n}",
    "trotter": "trotter:{n}:4",
    "qaoa": "qaoa:{n}:4:1",
    "ghz": "ghz:{n}",
}


def suite_specs(n: int, only: str = "") -> dict[str, str]:
    names = [s.strip() for s in only.split(",") if s.strip()] or list(SUITE)
    unknown = [s for s in names if s not in SUITE]
    if unknown:
        from qgt.errors import UserError

        raise UserError(f"unknown benchmark circuit(s) {unknown}: the suite has {list(SUITE)}")
    return {name: SUITE[name].format(n=n) for name in names}
