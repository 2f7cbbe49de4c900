"""Pauli-string observables: parsing the user's label into X/Z masks.

Called by the planner (which needs the X/Y qubits local) and the command line.
Labels are in Qiskit order: the rightmost character is qubit 0.
"""

from __future__ import annotations

from qgt.errors import UserError


def parse_pauli(label: str, n: int) -> tuple[list[int], list[int], int]:
    """Return (x qubits, z qubits, number of Y) for a label like 'XIZY'.

    Y = i X Z, so a Y contributes to both masks and a factor i.
    """
    lab = label.strip().upper()
    if len(lab) != n or any(ch not in "IXYZ" for ch in lab):
        raise UserError(
            f"observable '{label}' must be a Pauli string of {n} characters from I, X, Y, Z "
            f"(rightmost is qubit 0), e.g. '{'Z' * min(n, 2)}{'I' * max(0, n - 2)}'")
    xq, zq, ny = [], [], 0
    for pos, ch in enumerate(reversed(lab)):
        if ch in "XY":
            xq.append(pos)
        if ch in "ZY":
            zq.append(pos)
        ny += ch == "Y"
    return xq, zq, ny
