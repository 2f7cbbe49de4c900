"""PennyLane's own device test suite (``pl-device-test``) on ``qgt.qubit``: analytic and
with shots, in one process and under ``mpiexec -n 2`` (every rank runs the whole suite
on COMM_WORLD, SPMD, as a user's script would).

Each run is a subprocess with a timeout, as ``pl-device-test`` itself runs pytest.  Only
the skips listed in ALLOWED_SKIPS may appear (docs/pennylane.md, "Conformance"): a new
kind of skip fails the test, so an unsupported feature cannot hide behind one.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import MPIEXEC, ROOT, clean_env

pytest.importorskip("pennylane")
pytest.importorskip("pytest_mock")
pytest.importorskip("flaky")

# (reason pattern, why it is not ours)
ALLOWED_SKIPS = [
    (r"Device is in analytic mode, cannot test sampling", "sampling tests, analytic run"),
    (r"Device is in non-analytical mode", "analytic-only tests, shots run"),
    (r"If shots=None no warning is raised", "warning test for shots runs"),
    (r"Shots must be specified in the device", "sampling test, analytic run"),
    (r"old (device )?interface|old interface specific", "the legacy Device API"),
    (r"could not import '(torch|jax|tensorflow)'", "interface not installed"),
    (r"test only works with backprop", "qgt is not differentiable by autograd"),
    (r"test only works with parameter-shift", "parameterised over diff methods"),
    (r"device does not support diff_method", "backprop: qgt does not support it"),
    (r"QutritBasisState template only works on qutrit devices", "qutrit template"),
    (r"analytic mode|shots=None", "shot-only checks in an analytic run"),
    (r"If shots!=None no error is raised", "error test for analytic runs"),
    (r"Some plugins don't update state information when shots is not None",
     "state test, shots run"),
    (r"SparseHamiltonian only supported in analytic mode", "as default.qubit"),
    (r"test only works with analytic-mode", "analytic-only tests, shots run"),
    (r"test should only be run in analytic mode", "backprop tests, shots run"),
    (r"test_gates.py:\d+: operation not supported on the device",
     "QubitDensityMatrix: a mixed-state operation (the suite's own check)"),
]
ALLOWED_XFAILS = [
    r"most devices do not support CV",  # continuous-variable templates: not qubits
    r"test_(CVNeuralNetLayers|DisplacementEmbedding|SqueezingEmbedding|Interferometer)\[",
    r"Device does not support custom measurement transforms",
]


def _suite_args(shots: str) -> list[str]:
    from pennylane.devices.tests import get_device_tests

    return ["-m", "pytest", get_device_tests(), "--device=qgt.qubit", f"--shots={shots}",
            "--skip-ops", "--no-flaky-report", "-q", "-rsx", "-p", "no:cacheprovider",
            "-p", "no:warnings", "-x", "--device-kwargs", "threads=1"]


def _check(proc: subprocess.CompletedProcess) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = [ln for ln in out.splitlines() if re.search(r"\d+ passed", ln)]
    assert summary, out[-3000:]
    assert not re.search(r"\d+ (failed|errors?)\b", summary[-1]), summary[-1]
    for line in out.splitlines():
        if line.startswith("SKIPPED"):
            assert any(re.search(p, line) for p, _ in ALLOWED_SKIPS), f"undocumented skip: {line}"
        if line.startswith("XFAIL"):
            assert any(re.search(p, line) for p in ALLOWED_XFAILS), f"undocumented xfail: {line}"


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("shots", ["None", "10000"])
def test_device_suite_one_process(shots, tmp_path):
    proc = subprocess.run([sys.executable, *_suite_args(shots)], capture_output=True,
                          text=True, timeout=1400, env=clean_env(), cwd=tmp_path)
    _check(proc)


@pytest.mark.timeout(2400)
@pytest.mark.parametrize("shots", ["None", "10000"])
def test_device_suite_two_ranks(shots, tmp_path):
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, *_suite_args(shots)],
                          capture_output=True, text=True, timeout=2300, env=clean_env(),
                          cwd=tmp_path)
    _check(proc)
    assert str(ROOT)  # the children import qgt from this tree (clean_env's PYTHONPATH)
