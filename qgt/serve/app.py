"""The HTTP API (FastAPI): the source design's request and response shapes, and more.

    POST /tasks                    {"quantum_circuit": "<OpenQASM 2/3>", "shots": 1024, ...}
                                   -> {"task_id": ..., "state": "QUEUED"}
    GET  /tasks/{id}               state, progress, timings; counts and expectation values
    GET  /tasks/{id}/statevector   the final state as one HDF5 file, streamed
    POST /tasks/{id}/cancel        409 when the task has already ended
    GET  /health                   store, broker and workers, each up or down
    /docs                          OpenAPI

Built by ``create_app`` for ``qgt serve`` (qgt.serve.main).  Errors: 401 without the
configured API key, 404 unknown task, 413 body over limits.max_body_bytes, 422 a body,
circuit or setting that can never run (with qgt's message), 503 store or broker down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from qgt.errors import UserError
from qgt.serve.model import (
    ACTIVE,
    DONE,
    QUEUED,
    BrokerDown,
    Refused,
    StoreDown,
    body_digest,
    new_record,
    new_task_id,
    public_view,
    validate,
)

log = logging.getLogger("qgt.serve")
SWEEP_SECONDS = 10.0  # deployment: republish tasks whose message may be gone


class Submission(BaseModel):
    """POST /tasks.  Only ``quantum_circuit`` is required; unknown fields are a 422."""

    model_config = ConfigDict(extra="forbid")
    quantum_circuit: str = Field(description="OpenQASM 2 or 3 source")
    shots: int = Field(1024, ge=0, description="samples of the final measurements")
    observables: list[str] = Field([], description="Pauli strings, rightmost is qubit 0")
    seed: int | None = Field(None, ge=0, description="same seed, same counts")
    ranks: int | None = Field(None, ge=1, description="MPI ranks (a power of two)")
    config: dict[str, str | int | float | bool] = Field(
        {}, description="qgt configuration overrides (docs/config.md)")
    keep_state: bool = Field(False, description="keep the final state for /statevector")


class TaskState(BaseModel):
    task_id: str
    state: str


def create_app(cfg, store, broker) -> FastAPI:
    async def lifespan(app):
        await broker.start()
        sweeper = asyncio.create_task(_sweep()) if cfg.deployment else None
        yield
        if sweeper is not None:
            sweeper.cancel()
        await broker.stop()
        from qgt.serve.parsing import PARSER

        PARSER.close()

    app = FastAPI(title="qgt serve", lifespan=contextlib.asynccontextmanager(lifespan),
                  description="Submit circuits, run them as qgt MPI (or Slurm) jobs, fetch "
                  "results by id. See docs/service.md.")

    async def _sweep():
        """A task whose message may be gone (server killed between record and publish,
        or a worker's late acknowledgement) is published again; Nats-Msg-Id and the
        store's lease make a duplicate harmless."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                now = time.time()
                for tid in await run_in_threadpool(store.ids, [QUEUED, *ACTIVE]):
                    rec = await run_in_threadpool(store.get, tid)
                    stale = (rec and (rec["state"] == QUEUED and rec["submitted_at"] <
                             now - SWEEP_SECONDS) or (rec and rec["state"] in ACTIVE and
                             rec["lease_expiry"] < now - cfg.worker_lease_seconds))
                    if stale:
                        await broker.publish(tid, rec["attempt"])
            except (StoreDown, BrokerDown) as e:
                log.warning("sweep: %s", e)

    def check_key(x_api_key: str | None = Header(None)):
        if cfg.api_key and not (x_api_key and secrets.compare_digest(x_api_key,
                                                                      cfg.api_key)):
            raise HTTPException(401, "missing or wrong API key (header X-API-Key)")

    @app.exception_handler(StoreDown)
    async def _store_down(request, exc):
        return JSONResponse({"detail": f"task store unavailable: {exc}"}, status_code=503)

    @app.exception_handler(BrokerDown)
    async def _broker_down(request, exc):
        return JSONResponse({"detail": f"broker unavailable: {exc}"}, status_code=503)

    async def _record(task_id: str) -> dict:
        rec = await run_in_threadpool(store.get, task_id)
        if rec is None:
            raise HTTPException(404, f"no task {task_id}")
        return rec

    @app.post("/tasks", response_model=TaskState, dependencies=[Depends(check_key)],
              openapi_extra={"requestBody": {"content": {"application/json": {
                  "schema": Submission.model_json_schema()}}, "required": True}})
    async def submit(request: Request, idempotency_key: str | None = Header(None)):
        body = await request.body()
        if len(body) > cfg.limits_max_body_bytes:
            raise HTTPException(413, f"request body of {len(body)} bytes is over this "
                                f"server's limit of {cfg.limits_max_body_bytes}")
        try:
            sub = Submission.model_validate_json(body)
        except ValidationError as e:
            raise HTTPException(422, e.errors(include_url=False, include_context=False)) \
                from None
        req = sub.model_dump()
        req["ranks"] = req["ranks"] or cfg.worker_default_ranks
        try:
            n_qubits = await run_in_threadpool(validate, req, cfg)
        except UserError as e:
            raise HTTPException(422, str(e)) from None
        ok, why = broker.health()
        if not ok:
            raise BrokerDown(why)
        digest = body_digest(req)
        if req["seed"] is None:  # fixed now, so that every attempt samples alike
            req["seed"] = secrets.randbelow(1 << 31)
        rec = new_record(new_task_id(), req, n_qubits)
        try:
            rec, created = await run_in_threadpool(store.create, rec, idempotency_key, digest)
        except Refused as e:
            raise HTTPException(422, str(e)) from None
        if created:
            try:
                await broker.publish(rec["task_id"])
            except BrokerDown:
                await run_in_threadpool(store.discard, rec["task_id"], idempotency_key)
                raise
        return {"task_id": rec["task_id"], "state": rec["state"]}

    @app.get("/tasks/{task_id}", dependencies=[Depends(check_key)])
    async def status(task_id: str):
        return public_view(await _record(task_id))

    @app.get("/tasks/{task_id}/statevector", dependencies=[Depends(check_key)],
             response_class=FileResponse)
    async def statevector(task_id: str):
        rec = await _record(task_id)
        path = (rec.get("result") or {}).get("statevector")
        if rec["state"] != DONE or not path or not os.path.exists(path):
            raise HTTPException(404, f"task {task_id} has no state vector (state "
                                f"{rec['state']}; submit with keep_state=true)")
        return FileResponse(path, media_type="application/x-hdf5",
                            filename=f"{task_id}-state.h5")

    @app.post("/tasks/{task_id}/cancel", response_model=TaskState,
              dependencies=[Depends(check_key)])
    async def cancel(task_id: str):
        await _record(task_id)
        try:
            rec = await run_in_threadpool(store.cancel, task_id)
        except Refused as e:
            raise HTTPException(409, str(e)) from None
        return {"task_id": task_id, "state": rec["state"]}

    @app.get("/health")
    async def health():
        try:
            await run_in_threadpool(store.ping)
            workers = await run_in_threadpool(store.workers)
            st = {"up": True, "detail": type(store).__name__}
        except StoreDown as e:
            workers, st = {}, {"up": False, "detail": str(e)}
        b_up, b_detail = broker.health()
        out = {"store": st, "broker": {"up": b_up, "detail": b_detail},
               "workers": {"up": bool(workers), "count": len(workers), "names":
                           sorted(workers)}}
        out["status"] = "ok" if st["up"] and b_up and workers else "degraded"
        return JSONResponse(out, status_code=200 if out["status"] == "ok" else 503)

    return app
