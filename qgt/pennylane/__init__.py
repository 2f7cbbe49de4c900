"""qgt's PennyLane front door: the ``qgt.qubit`` device (``qgt.pennylane.device``).

Registered under the ``pennylane.plugins`` entry point, so ``qml.device("qgt.qubit",
wires=n, **qgt_config)`` finds it.  Needs the ``pennylane`` extra.
"""

from qgt.pennylane.device import QgtDevice

__all__ = ["QgtDevice"]
