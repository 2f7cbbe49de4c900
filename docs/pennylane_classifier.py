"""A small variational classifier on qgt.qubit, trained with adjoint gradients.

The worked example of docs/pennylane.md:

    python docs/pennylane_classifier.py                    # one process
    mpiexec -n 2 python docs/pennylane_classifier.py       # the same script on 2 ranks
    python docs/pennylane_classifier.py lightning.qubit    # the same on Lightning

12 qubits, a batch of 10 inputs of 12 features (angle embedding, the batch broadcast in
one call), 3 hardware-efficient layers of RY + RZ with a CNOT ring (72 weights), the
label read from <Z0 Z1>, 5 epochs of Adam.  Under mpiexec every rank runs this script;
rank 0 prints.  ``qgt bench --pennylane`` times ``train`` on qgt.qubit and lightning.qubit.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pennylane as qml
from pennylane import numpy as pnp

N, LAYERS, EPOCHS = 12, 3, 5


def data(seed: int = 7):
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(0, np.pi, size=(10, N))
    labels = np.where(inputs[:, :N // 2].sum(axis=1) > inputs[:, N // 2:].sum(axis=1),
                      1.0, -1.0)
    weights = pnp.array(rng.normal(0, 0.3, size=(LAYERS, N, 2)), requires_grad=True)
    return inputs, labels, weights


def model_on(dev):
    @qml.qnode(dev, diff_method="adjoint")
    def model(weights, x):  # x: one input (N,) or a batch (B, N), broadcast
        qml.AngleEmbedding(x, wires=range(N), rotation="Y")
        for layer in range(LAYERS):
            for w in range(N):
                qml.RY(weights[layer, w, 0], wires=w)
                qml.RZ(weights[layer, w, 1], wires=w)
            for w in range(N):
                qml.CNOT(wires=[w, (w + 1) % N])
        return qml.expval(qml.Z(0) @ qml.Z(1))

    return model


def train(device: str = "qgt.qubit", epochs: int = EPOCHS, quiet: bool = False,
          **device_kw) -> dict:
    """Train from the fixed start; the seconds are those of the optimiser's steps.
    Under MPI every rank trains and rank 0 prints."""
    dev = qml.device(device, wires=N, **device_kw)
    rank = getattr(getattr(dev, "session", None), "rank", 0)
    say = print if rank == 0 and not quiet else (lambda *a, **k: None)
    model = model_on(dev)
    inputs, labels, weights = data()

    def loss(w):
        return qml.math.mean((model(w, inputs) - labels) ** 2)

    opt = qml.AdamOptimizer(stepsize=0.1)
    say(f"{device}: {N} qubits, {weights.size} weights, {len(inputs)} inputs, "
        f"{epochs} epochs")
    loss(weights)  # the first call imports, plans and allocates
    losses, seconds = [], 0.0
    with qml.Tracker(dev) as tracker:
        for epoch in range(epochs):
            t = time.perf_counter()
            weights, value = opt.step_and_cost(loss, weights)
            seconds += time.perf_counter() - t
            losses.append(float(value))
            acc = float(np.mean(np.sign(model(weights, inputs)) == labels))
            say(f"epoch {epoch + 1}: loss {losses[-1]:.4f}  accuracy {acc:.1f}  "
                f"({time.perf_counter() - t:.2f} s)")
    say(f"trained in {seconds:.2f} s ({epochs * len(inputs) / seconds:.0f} circuits with "
        f"gradients per second); final loss {float(loss(weights)):.4f}")
    t = tracker.totals
    say(f"tracker: {t.get('batches', 0)} batches, {t.get('executions', 0)} executions")
    if "plan_cache_hits" in t:
        say(f"  plan-cache hits {t['plan_cache_hits']} of {t['executions']}; seconds: plan "
            f"{t['plan_seconds']:.3f}, compute {t['compute_seconds']:.3f}, communication "
            f"{t['communication_seconds']:.3f}")
        stats = dev.session.cache_stats()
        say(f"  session: {dev.session.size} rank(s), planner calls "
            f"{stats['planner_calls']}, cache entries {stats['entries']}")
    return {"seconds": seconds, "losses": losses, "circuits": epochs * len(inputs)}


if __name__ == "__main__":
    train(sys.argv[1] if len(sys.argv) > 1 else "qgt.qubit")
