"""The service's configuration: ``config.toml`` sections and ``QGT_SERVE_*`` variables.

Called by ``qgt serve`` and ``qgt worker`` (qgt.serve.main).  Keys of the source design
(``server.host``, ``server.port``, ``nats.url``, ``redis.url``,
``worker.max_concurrent_tasks``) plus qgt's own.  Precedence, lowest first::

    defaults  <  config.toml  <  QGT_SERVE_<SECTION>_<KEY>  <  command-line flags

As in qgt's run schema (qgt.config), anything not understood is an error naming the
nearest valid key: a typo on a cluster must not silently do nothing.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping

from qgt.config import SERVICE_ENV_PREFIX
from qgt.errors import ConfigError

# (section, key) -> (type, default, doc).  The attribute is "section_key" minus "server_".
KEYS: dict[tuple[str, str], tuple[type, object, str]] = {
    ("server", "host"): (str, "127.0.0.1", "address the HTTP server listens on"),
    ("server", "port"): (int, 8000, "TCP port of the HTTP server"),
    ("server", "api_key"): (str, "", "when set, every request needs header X-API-Key"),
    ("server", "data_dir"): (str, "qgt-serve-data", "task files (circuits, results, state "
                             "vectors, checkpoints) and the SQLite store; on local disk"),
    ("nats", "url"): (str, "", "NATS server with JetStream; empty = embedded mode"),
    ("redis", "url"): (str, "", "Redis task store; empty = SQLite in data_dir"),
    ("worker", "max_concurrent_tasks"): (int, 2, "tasks one worker (or qgt serve) runs at once"),
    ("worker", "attempt_limit"): (int, 3, "runs of a task before it is ERROR"),
    ("worker", "lease_seconds"): (float, 30.0, "a worker that does not renew its lease for "
                                  "this long loses the task to another"),
    ("worker", "default_ranks"): (int, 2, "MPI ranks of a task that does not ask"),
    ("worker", "checkpoint_every_steps"): (int, 1, "checkpoint period in plan steps of a "
                                           "process-group task (0 = none)"),
    ("worker", "session_max_qubits"): (int, 16, "tasks up to this many qubits (without "
                                       "config overrides or keep_state) run on the worker's "
                                       "persistent launched ranks, without checkpoints; "
                                       "0 = every task is its own mpiexec job"),
    ("limits", "max_qubits"): (int, 30, "largest circuit accepted (422 beyond)"),
    ("limits", "max_ranks"): (int, 8, "most ranks a task may ask for"),
    ("limits", "max_shots"): (int, 1_000_000, "most shots a task may ask for"),
    ("limits", "max_body_bytes"): (int, 1_048_576, "largest request body (413 beyond)"),
    ("slurm", "partition"): (str, "", "sbatch --partition for qgt worker --slurm"),
    ("slurm", "sbatch_args"): (str, "", "extra sbatch options, space separated"),
    ("slurm", "script"): (str, "", "batch script (default: slurm/requeue-long.sbatch)"),
    ("slurm", "poll_seconds"): (float, 2.0, "seconds between squeue/sacct polls"),
}


def _attr(section: str, key: str) -> str:
    return key if section == "server" else f"{section}_{key}"


def env_name(section: str, key: str) -> str:
    return f"{SERVICE_ENV_PREFIX}{section}_{key}".upper()


# One frozen attribute per key, defaults from KEYS: the table is the only list of keys.
ServeConfig = dataclasses.make_dataclass(
    "ServeConfig", [(_attr(s, k), t, dataclasses.field(default=d)) for (s, k), (t, d, _) in
                    KEYS.items()],
    frozen=True, namespace={"deployment": property(lambda self: bool(self.nats_url)),
                            "__doc__": "The resolved service configuration (load_serve_config)."})


_ENV = {env_name(s, k): (s, k) for s, k in KEYS}
_DOTTED = [f"{s}.{k}" for s, k in KEYS]


def _nearest_hint(word: str, candidates: list[str]) -> str:
    near = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5)
    return f"did you mean {near[0]!r}?" if near else "the keys are listed in docs/service.md"


def _convert(section: str, key: str, raw: object, where: str) -> object:
    kind, _, _ = KEYS[(section, key)]
    try:
        if kind is int and (isinstance(raw, bool) or isinstance(raw, float)):
            raise ValueError
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{section}.{key} {where} must be {kind.__name__}, got {raw!r}") \
            from None
    if kind in (int, float) and value < 0:
        raise ConfigError(f"{section}.{key} {where} must be >= 0, got {raw!r}")
    return value


def _from_file(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read service configuration {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"service configuration {path} is not valid TOML: {e}") from None
    out = {}
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{section!r} in {path} must be a [section]; "
                              f"{_nearest_hint(section, _DOTTED)}")
        for key, raw in table.items():
            if (section, key) not in KEYS:
                raise ConfigError(f"unknown key {section}.{key} in {path}; "
                                  f"{_nearest_hint(f'{section}.{key}', _DOTTED)}")
            out[_attr(section, key)] = _convert(section, key, raw, f"in {path}")
    return out


def load_serve_config(path: str | None = None, env: Mapping[str, str] | None = None,
                      overrides: Mapping[str, object] | None = None) -> ServeConfig:
    """Defaults < ``path`` (TOML; else $QGT_SERVE_CONFIG) < QGT_SERVE_* < ``overrides``
    (attribute names, None values ignored)."""
    env = os.environ if env is None else env
    path = path or env.get(SERVICE_ENV_PREFIX + "CONFIG") or None
    values = _from_file(path) if path else {}
    for var in sorted(env):
        if not var.startswith(SERVICE_ENV_PREFIX) or var == SERVICE_ENV_PREFIX + "CONFIG":
            continue
        if var not in _ENV:
            near = difflib.get_close_matches(var, list(_ENV), n=1, cutoff=0.5)
            hint = f"did you mean {near[0]}?" if near else "see docs/service.md"
            raise ConfigError(f"unknown service variable {var} in the environment; {hint}")
        section, key = _ENV[var]
        values[_attr(section, key)] = _convert(section, key, env[var], f"from {var}")
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    return ServeConfig(**values)


def describe_keys() -> str:
    """The key table for docs and --help."""
    rows = [f"  {s}.{k} ({env_name(s, k)}, default {d!r}): {doc}"
            for (s, k), (_, d, doc) in KEYS.items()]
    return "\n".join(rows)
