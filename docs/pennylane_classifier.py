"""A small variational classifier on qgt.qubit, trained with adjoint gradients.

The worked example of docs/pennylane.md:

    python docs/pennylane_classifier.py                # one process
    mpiexec -n 2 python docs/pennylane_classifier.py   # the same script on 2 ranks

12 qubits, 10 inputs of 12 features (angle embedding), 3 hardware-efficient layers of
RY + RZ with a CNOT ring (72 weights), the label read from <Z0 Z1>, 5 epochs of Adam.
Under mpiexec every rank runs this script; rank 0 prints.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pennylane as qml
from pennylane import numpy as pnp

N, LAYERS, EPOCHS = 12, 3, 5
DEVICE = sys.argv[1] if len(sys.argv) > 1 else "qgt.qubit"

rng = np.random.default_rng(7)
inputs = rng.uniform(0, np.pi, size=(10, N))
labels = np.where(inputs[:, :N // 2].sum(axis=1) > inputs[:, N // 2:].sum(axis=1), 1.0, -1.0)

dev = qml.device(DEVICE, wires=N)


@qml.qnode(dev, diff_method="adjoint")
def model(weights, x):
    qml.AngleEmbedding(x, wires=range(N), rotation="Y")
    for layer in range(LAYERS):
        for w in range(N):
            qml.RY(weights[layer, w, 0], wires=w)
            qml.RZ(weights[layer, w, 1], wires=w)
        for w in range(N):
            qml.CNOT(wires=[w, (w + 1) % N])
    return qml.expval(qml.Z(0) @ qml.Z(1))


def loss(weights):
    preds = qml.math.stack([model(weights, x) for x in inputs])
    return qml.math.mean((preds - labels) ** 2)


def accuracy(weights) -> float:
    preds = np.array([model(weights, x) for x in inputs])
    return float(np.mean(np.sign(preds) == labels))


rank = getattr(getattr(dev, "session", None), "rank", 0)
say = print if rank == 0 else (lambda *a, **k: None)
weights = pnp.array(rng.normal(0, 0.3, size=(LAYERS, N, 2)), requires_grad=True)
opt = qml.AdamOptimizer(stepsize=0.1)
say(f"{DEVICE}: {N} qubits, {weights.size} weights, {len(inputs)} inputs, {EPOCHS} epochs")
t0 = time.perf_counter()
with qml.Tracker(dev) as tracker:
    for epoch in range(EPOCHS):
        t = time.perf_counter()
        weights, value = opt.step_and_cost(loss, weights)
        say(f"epoch {epoch + 1}: loss {float(value):.4f}  accuracy {accuracy(weights):.1f}  "
            f"({time.perf_counter() - t:.2f} s)")
total = time.perf_counter() - t0
say(f"trained in {total:.2f} s; final loss {float(loss(weights)):.4f}")
t = tracker.totals
say(f"tracker: {t.get('batches', 0)} batches, {t.get('executions', 0)} executions")
if "plan_cache_hits" in t:
    say(f"  plan-cache hits {t['plan_cache_hits']} of {t['executions']}; seconds: plan "
        f"{t['plan_seconds']:.3f}, compute {t['compute_seconds']:.3f}, communication "
        f"{t['communication_seconds']:.3f}")
    stats = dev.session.cache_stats()
    say(f"  session: {dev.session.size} rank(s), planner calls {stats['planner_calls']}, "
        f"cache entries {stats['entries']}")
