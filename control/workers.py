"""`homelab-control serve --workers N`: the API in N worker processes under granian.

The main process binds the port, migrates the database once, starts N workers and (unless
`--no-scheduler`) runs the scheduler itself, so one command still gives API + scheduler. The
workers are started with multiprocessing's `spawn`, not `fork`: each is a fresh interpreter
that imports `worker_app` and builds its own app, so no database connection, SSH pool, lock or
scheduler thread of the main process is ever copied into one. A crashed worker is started again.

Why granian, not gunicorn: bench/README.md, "Workers" (throughput) and "Slowloris" (granian's
Rust I/O holds thousands of idle or trickling connections without stalling a Python thread).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from dataclasses import dataclass

from flask import Flask

from control import db, logs
from control.config import Settings, load_settings
from control.errors import ConfigError

log = logging.getLogger(__name__)

WORKER_TARGET = "control.workers:worker_app"
# Connections waiting in the kernel for a worker to accept them: short bursts of agents
# reconnecting after a restart, not a place to hold a slowloris client (granian accepts at once).
LISTEN_BACKLOG = 4096
# granian's longest header-read timeout, in seconds.
MAX_HEADER_TIMEOUT = 60
# The granian loggers join control's own handler (text or JSON) instead of printing their own.
GRANIAN_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"threads_advice": {"()": "control.workers.ThreadsAdviceFilter"}},
    "loggers": {
        "_granian": {"handlers": [], "propagate": True, "filters": ["threads_advice"]},
        "granian.access": {"handlers": [], "propagate": True},
    },
}
# SQLite with workers is safe: WAL, a 10 s busy timeout and BEGIN IMMEDIATE for every write
# transaction (control/db.py); measured faster than one process (bench/README.md, "Workers").
SQLITE_WORKERS_NOTE = (
    "the workers take turns on SQLite's single write lock (WAL, busy timeout); for control "
    "on several hosts use PostgreSQL (HOMELAB_DATABASE_URL=postgresql://...)"
)


class ThreadsAdviceFilter(logging.Filter):
    """Drops granian's start-up advice against more threads than 2 x cores + 1: control's
    threads mostly wait on the database, and `--threads` is the operator's to choose."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for that one message, True for every other."""
        return "Python threads, which seems quite high" not in record.getMessage()


@dataclass(frozen=True)
class WorkerPlan:
    """How `serve --workers N` runs: address, processes, per-worker threads and limits."""

    host: str
    port: int
    workers: int
    threads: int
    connection_limit: int  # over all workers
    header_timeout: int  # seconds a client has to send a request's headers
    scheduler: bool  # run the scheduler in the main process

    @property
    def backpressure(self) -> int:
        """Connections one worker holds at once: its share of the connection limit."""
        return max(1, math.ceil(self.connection_limit / self.workers))


def worker_app() -> Flask:
    """Build one worker's app (granian's factory target, called in each new worker process).

    Settings come from the environment the main process prepared (`worker_environment`), so
    every worker runs with the same settings as the main process, CLI flags included.
    """
    from control.app import create_app

    settings = load_settings()
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    log.info("worker %d ready", os.getpid())
    return app


def worker_environment(settings: Settings) -> dict[str, str]:
    """The HOMELAB_* variables that carry what the CLI decided (flags, the public URL) to the
    workers, which read only the environment and the TOML file."""
    return {
        "HOMELAB_LOG_FORMAT": settings.log_format,
        "HOMELAB_LOG_LEVEL": settings.log_level,
        "HOMELAB_PUBLIC_URL": settings.public_url,
    }


def check_database(settings: Settings) -> None:
    """Refuse a database that the worker processes could not share."""
    if settings.resolved_database_url.startswith("sqlite:///:memory:"):
        raise ConfigError(
            "serve --workers needs a database every process can open: an in-memory SQLite "
            "database exists only in the process that made it"
        )


def run(plan: WorkerPlan, settings: Settings) -> int:
    """Serve with `plan.workers` granian workers until SIGTERM/SIGINT; the scheduler beside.

    The caller has bound and migrated the database, so the workers find the schema current
    and a broken database URL was one clear error instead of N crashing workers.
    """
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    from control.notify import routing

    if db.is_sqlite() and plan.workers > 1:
        log.info("serve --workers %d on SQLite: %s", plan.workers, SQLITE_WORKERS_NOTE)
    os.environ.update(worker_environment(settings))
    # Workers never inherit this process's threads, connections or locks (module docstring).
    multiprocessing.set_start_method("spawn", force=True)
    try:
        level = LogLevels(settings.log_level.lower())
    except ValueError:
        level = LogLevels.info
    server = Granian(
        WORKER_TARGET,
        factory=True,
        address=plan.host,
        port=plan.port,
        interface=Interfaces.WSGI,
        workers=plan.workers,
        blocking_threads=plan.threads,
        backlog=LISTEN_BACKLOG,
        backpressure=plan.backpressure,
        http1_settings=HTTP1Settings(
            header_read_timeout=min(plan.header_timeout, MAX_HEADER_TIMEOUT) * 1000
        ),
        websockets=False,
        log_dictconfig=GRANIAN_LOGGING,
        log_level=level,
        respawn_failed_workers=True,
        workers_kill_timeout=30,
    )
    scheduler = None
    if plan.scheduler:
        from control.scheduler import ControlScheduler

        routing.configure(settings)  # the offline sweep's events queue notifications
        scheduler = ControlScheduler(settings)
        scheduler.start()
    log.info(
        "control listening on http://%s:%d with %d workers%s (docs at /api/docs)",
        plan.host,
        plan.port,
        plan.workers,
        "" if scheduler else ", no scheduler",
    )
    try:
        server.serve()  # blocks until SIGTERM/SIGINT; stops the workers before returning
    finally:
        if scheduler:
            scheduler.shutdown()
        db.db.close()
    return 0
