"""qgt serve: an HTTP front door that runs submitted circuits as qgt jobs (docs/service.md).

    config.py     ServeConfig: config.toml + QGT_SERVE_* variables, strict keys
    model.py      the task record, its states and the submission's validation
    store/        the task store: SQLite (embedded) or Redis (deployment); leases fence owners
    broker.py     how a task id reaches a worker: the store itself, or a JetStream work queue
    executor.py   one task as a real multi-rank `qgt run` in its own process group
    reaper.py     the wrapper that kills a task's ranks when its worker dies
    worker.py     claim, run with heartbeats, record, acknowledge
    slurm.py      the same task as an sbatch job (qgt worker --slurm)
    app.py        the FastAPI application (POST /tasks, GET /tasks/{id}, ...)
    main.py       `qgt serve` and `qgt worker`

A front end in the sense of DESIGN.md: it turns HTTP requests into qgt runs and back, and
plans nothing itself.
"""
