"""Resolve a user's circuit spec -- a built-in like ``qft:30``, an OpenQASM file or a qiskit
circuit -- to a ``QuantumCircuit`` (``load_qiskit``) or a lowered ``qgt.ops.Circuit``
(``load_circuit``).

Called by the command line, the Python API and the benchmark (which runs Aer on the same
``QuantumCircuit``).  Every bad spec is a ``CircuitError`` that names the problem and says
what is allowed.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qiskit import QuantumCircuit, qasm2, qasm3

from qgt.errors import CircuitError
from qgt.frontend import library
from qgt.frontend.lower import lower
from qgt.ops import Circuit


@dataclass(frozen=True)
class _Arg:
    name: str
    kind: type  # int or float
    minimum: float | None = None
    default: object = None  # None: required

    def parse(self, spec: str, text: str):
        rule = self.rule()
        try:
            value = self.kind(text)
        except ValueError:
            raise CircuitError(f"{spec}: {self.name} must be {rule}, got '{text}'") from None
        if self.kind is float and not math.isfinite(value):
            raise CircuitError(f"{spec}: {self.name} must be {rule}, got '{text}'")
        if self.minimum is not None and value < self.minimum:
            raise CircuitError(f"{spec}: {self.name} must be {rule}, got '{text}'")
        return value

    def rule(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        return what if self.minimum is None else f"{what} >= {self.minimum}"


@dataclass(frozen=True)
class _Builtin:
    build: Callable[..., QuantumCircuit]
    args: tuple[_Arg, ...]
    about: str

    def usage(self, name: str) -> str:
        parts = [name] + [a.name if a.default is None else f"[{a.name}]" for a in self.args]
        return ":".join(parts).replace(":[", "[:")


BUILTINS: dict[str, _Builtin] = {
    "qft": _Builtin(library.qft, (_Arg("N", int, 1),), "quantum Fourier transform, unmeasured"),
    "ghz": _Builtin(library.ghz, (_Arg("N", int, 1),), "GHZ state, all qubits measured"),
    "random": _Builtin(
        library.random_gates,
        (_Arg("N", int, 1), _Arg("DEPTH", int, 1), _Arg("SEED", int, 0, library.RANDOM_SEED)),
        "qiskit random_circuit, all qubits measured",
    ),
    "qpe": _Builtin(
        library.qpe,
        (_Arg("N", int, 2), _Arg("PHASE", float, None, library.QPE_PHASE)),
        "phase estimation of exp(2 pi i PHASE) on N-1 counting qubits, counting register measured",
    ),
    "trotter": _Builtin(
        library.trotter,
        (_Arg("N", int, 1), _Arg("STEPS", int, 1), _Arg("DT", float, None, library.TROTTER_DT)),
        "first-order Trotter steps of the transverse-field Ising chain, unmeasured",
    ),
    "qaoa": _Builtin(
        library.qaoa,
        (_Arg("N", int, 1), _Arg("LAYERS", int, 1), _Arg("SEED", int, 0, library.QAOA_SEED)),
        "QAOA on a ring with random angles, unmeasured",
    ),
}

_QASM_HEADER = re.compile(r"OPENQASM\s+(\d+)(?:\.\d+)?\s*;")


def builtin_help() -> str:
    """One line per built-in, for ``--help`` texts and error messages."""
    return "\n".join(f"  {b.usage(name)}: {b.about}" for name, b in BUILTINS.items())


def load_circuit(spec) -> Circuit:
    """Resolve ``spec`` and lower it; a ``qgt.ops.Circuit`` is passed through unchanged."""
    if isinstance(spec, Circuit):
        return spec
    return lower(load_qiskit(spec))


def load_qiskit(spec) -> QuantumCircuit:
    """Resolve ``spec`` (a QuantumCircuit, a built-in spec string or an OpenQASM path)."""
    if isinstance(spec, QuantumCircuit):
        return spec
    if isinstance(spec, os.PathLike):
        return load_qasm(spec)
    if not isinstance(spec, str):
        raise CircuitError(
            f"a circuit must be a qiskit QuantumCircuit, a built-in name or an OpenQASM file "
            f"path, got {type(spec).__name__}"
        )
    text = spec.strip()
    if not text:
        raise CircuitError(f"empty circuit spec: {_valid_specs()}")
    name = text.split(":", 1)[0].lower()
    if name in BUILTINS and not Path(text).is_file():
        return _build(text, name)
    if Path(text).is_file() or _looks_like_path(text):
        return load_qasm(text)
    close = difflib.get_close_matches(name, BUILTINS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise CircuitError(f"unknown circuit '{spec}'{hint}: {_valid_specs()}")


def with_measurements(qc: QuantumCircuit) -> QuantumCircuit:
    """``qc`` with every qubit measured at the end, unless it already measures something
    (then it is returned unchanged: its own measurements are what the user wants)."""
    if any(inst.operation.name == "measure" for inst in qc.data):
        return qc
    return qc.measure_all(inplace=False)


def load_qasm(path) -> QuantumCircuit:
    """Read an OpenQASM 2 or 3 file, told apart by its ``OPENQASM 2``/``OPENQASM 3`` header
    (a file without one is read as OpenQASM 3, where the header is optional)."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CircuitError(f"circuit file not found: '{path}'") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CircuitError(f"cannot read circuit file '{path}': {exc}") from None
    qc = parse_qasm(source, str(path), path)
    if qc.name.startswith("circuit-"):
        qc.name = path.stem  # qiskit's automatic name says nothing to the user
    return qc


def parse_qasm(source: str, where: str = "<string>", path=None) -> QuantumCircuit:
    """OpenQASM 2 or 3 text as a QuantumCircuit; parse errors name ``where``.  With
    ``path``, OpenQASM 2 includes resolve next to that file (and messages name it)."""
    version = _qasm_version(source)
    if version == 2:
        legacy = {"include_path": qasm2.LEGACY_INCLUDE_PATH,
                  "custom_instructions": qasm2.LEGACY_CUSTOM_INSTRUCTIONS,
                  "custom_classical": qasm2.LEGACY_CUSTOM_CLASSICAL}
        try:
            return qasm2.load(path, **legacy) if path is not None else \
                qasm2.loads(source, **legacy)
        except qasm2.QASM2ParseError as exc:
            raise CircuitError(f"{where}: OpenQASM 2 parse error: {exc}") from None
    if version == 3:
        try:
            return qasm3.loads(source)
        except Exception as exc:  # the importer and the ANTLR parser raise assorted types
            raise CircuitError(f"{where}: OpenQASM 3 parse error: {_qasm3_message(exc)}") \
                from exc
    raise CircuitError(f"{where}: OpenQASM version {version} is not supported (only 2 and 3)")


def _qasm_version(source: str) -> int:
    # the header must be the first statement; comments may come before it
    body = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.DOTALL).lstrip()
    match = _QASM_HEADER.match(body)
    return int(match.group(1)) if match else 3


def _build(spec: str, name: str) -> QuantumCircuit:
    builtin = BUILTINS[name]
    fields = spec.split(":")[1:]
    required = sum(a.default is None for a in builtin.args)
    if not required <= len(fields) <= len(builtin.args):
        raise CircuitError(f"{spec}: expected {builtin.usage(name)} ({builtin.about})")
    values = [a.parse(spec, f.strip()) for a, f in zip(builtin.args, fields, strict=False)]
    return builtin.build(*values)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith((".qasm", ".qasm2", ".qasm3"))


def _valid_specs() -> str:
    usages = ", ".join(b.usage(name) for name, b in BUILTINS.items())
    return f"built-ins are {usages}; or give the path of an OpenQASM 2 or 3 file"


def _qasm3_message(exc: BaseException) -> str:
    """The importer's message; for a syntax error it is empty, and the position is only
    on the offending token of the ANTLR exception somewhere down the cause chain."""
    text = " ".join(str(exc).split())
    if text and text != "None":
        return text
    seen: set[int] = set()
    pending: list = [exc]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        token = getattr(item, "offendingToken", None)
        if token is not None:
            return f"line {token.line}, column {token.column + 1}: unexpected '{token.text}'"
        if isinstance(item, BaseException):
            pending.extend([item.__cause__, item.__context__, *item.args])
    return f"syntax error ({type(exc).__name__})"
