"""Task records: states, the allowed transitions and the validation of a submission.

Called by the app (validate a POST /tasks body at once, so that a bad circuit is a 422
and never a retried job), the stores (which transitions are legal) and the workers.

    QUEUED --claim--> PENDING (Slurm queue) --> RUNNING --> DONE | ERROR
       ^  |                 \\___________________/   |
       |  +--cancel--> CANCELLED  <--cancel (CANCELLING while the ranks stop)
       +--- requeue (lease lost, ranks crashed, attempts left) -----+
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time

from qgt.errors import UserError

QUEUED, PENDING, RUNNING, CANCELLING = "QUEUED", "PENDING", "RUNNING", "CANCELLING"
DONE, ERROR, CANCELLED = "DONE", "ERROR", "CANCELLED"
FINAL = frozenset({DONE, ERROR, CANCELLED})
ACTIVE = frozenset({PENDING, RUNNING, CANCELLING})  # a worker holds the lease

# qgt settings a submitted task may not override: paths on the workers' file systems
# and the checkpoint/resume protocol belong to the service.
SERVICE_OWNED = frozenset({"checkpoint_dir", "scratch_dir", "resume", "checkpoint_keep",
                           "checkpoint_every_steps", "checkpoint_interval",
                           "checkpoint_at_end"})

# The record's fields that are JSON (everything else is a plain string or number).
JSON_FIELDS = ("request", "result", "progress")


class Refused(Exception):
    """A transition the record's current state or lease does not allow (a stale owner's
    write, a cancel of a finished task).  ``state`` is the record's state."""

    def __init__(self, message: str, state: str | None = None):
        super().__init__(message)
        self.state = state


class StoreDown(Exception):
    """The task store cannot be reached (the app answers 503)."""


class BrokerDown(Exception):
    """The broker cannot be reached (the app answers 503)."""


def new_task_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(6)


def body_digest(request: dict) -> str:
    """What an Idempotency-Key is bound to: the same key with another body is a 422."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def new_record(task_id: str, request: dict, n_qubits: int) -> dict:
    return {"task_id": task_id, "state": QUEUED, "request": request, "n_qubits": n_qubits,
            "attempt": 0, "owner": "", "lease_expiry": 0.0, "submitted_at": time.time(),
            "started_at": 0.0, "finished_at": 0.0, "error": "", "result": None,
            "progress": None, "slurm_job_id": "", "pgid": 0, "host": ""}


def validate(request: dict, cfg) -> int:
    """Raise UserError (the app's 422) for what can never run; return the qubit count.

    Parses the OpenQASM with qgt's own frontend (in a parser process), so the parser's
    message is what the user sees, and checks the limits of ``cfg`` (qgt.serve.config)."""
    from qgt.config import load_config
    from qgt.serve.parsing import PARSER

    lim = [("shots", request["shots"], cfg.limits_max_shots),
           ("ranks", request["ranks"], cfg.limits_max_ranks)]
    for what, value, top in lim:
        if value > top:
            raise UserError(f"{what}={value} is over this server's limit of {top}")
    ranks = request["ranks"]
    if ranks & (ranks - 1):
        raise UserError(f"ranks must be a power of two, got {ranks}")
    owned = sorted(SERVICE_OWNED & set(request["config"]))
    if owned:
        raise UserError(f"config: {', '.join(owned)} cannot be set by a task (the service "
                        f"chooses where a task's files go)")
    try:
        load_config(env={}, overrides=request["config"], overrides_from="the task's config")
    except UserError as e:
        raise UserError(f"config: {e}") from None
    # parsed (in the parser process, qgt.serve.parsing), not lowered: lowering is most of a
    # small task's planning, and the worker does it; an instruction that parses but cannot
    # be simulated ends the task ERROR at once
    n, unbound = PARSER.check(request["quantum_circuit"], "circuit.qasm")
    if unbound:
        raise UserError(f"circuit.qasm has unbound parameters ({', '.join(unbound)}): a "
                        "task's circuit must be fully bound")
    if n > cfg.limits_max_qubits:
        raise UserError(f"the circuit has {n} qubits, over this server's limit "
                        f"of {cfg.limits_max_qubits}")
    for label in request["observables"]:
        if len(label) != n or set(label) - set("IXYZ"):
            raise UserError(f"observable {label!r} must be {n} characters of "
                            f"I, X, Y, Z (rightmost is qubit 0)")
    return n


def public_view(rec: dict) -> dict:
    """GET /tasks/{id}: small, never the state vector (that is a file)."""
    res = rec.get("result") or {}
    out = {"task_id": rec["task_id"], "state": rec["state"], "attempt": rec["attempt"],
           "n_qubits": rec["n_qubits"], "progress": rec.get("progress"),
           "timings": {"submitted_at": rec["submitted_at"], "started_at": rec["started_at"],
                       "finished_at": rec["finished_at"], **(res.get("timings") or {})}}
    if rec.get("slurm_job_id"):
        out["slurm_job_id"] = rec["slurm_job_id"]
    if rec["error"]:
        out["error"] = rec["error"]
    if rec["state"] == DONE:
        out["counts"] = res.get("counts", {})
        out["expectation_values"] = res.get("expectation_values", {})
        out["statevector"] = bool(res.get("statevector"))
        out["resumed_from_checkpoint"] = bool(res.get("resumed_from"))
    return out
