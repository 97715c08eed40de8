"""`homelab-control serve --workers N`: the API in N worker processes under granian.

The main process binds the port, migrates the database once, starts N workers and (unless
`--no-scheduler`) runs the scheduler itself, so one command still gives API + scheduler. The
workers are started with multiprocessing's `spawn`, not `fork`: each is a fresh interpreter
that imports `worker_app` and builds its own app, so no database connection, SSH pool, lock or
scheduler thread of the main process is ever copied into one. A crashed worker is started again.

Why granian, not gunicorn: bench/README.md, "Workers" (throughput) and "Slowloris" (granian's
Rust I/O holds thousands of idle or trickling connections without stalling a Python thread).

Control's own counters (`/metrics`) are summed over the workers through prometheus_client's
multiprocess mode: `shared_metrics_dir` gives the workers a fresh private directory for their
values, and `DeadWorkerSweeper` does the library's bookkeeping for workers that exited.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from prometheus_client.multiprocess import mark_process_dead

from control import db, logs
from control.config import Settings, load_settings
from control.errors import ConfigError
from control.metrics import MULTIPROC_ENV, multiprocess_dir

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
# The workers' metric files: a new directory per run, so a previous run's counts (left by a
# crash) are never summed into this one's.
METRICS_DIR_PREFIX = "homelab-control-metrics-"
# How often the main process looks for workers that exited (only live gauges depend on it).
SWEEP_INTERVAL = 10.0
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
    if os.environ.get(MULTIPROC_ENV) and not multiprocess_dir():
        # Cannot happen with `spawn` (the variable is there before the interpreter starts);
        # if it ever does, this worker's /metrics shows its own counts only.
        log.error("worker %d: metrics are not shared: prometheus_client was imported before "
                  "%s was set", os.getpid(), MULTIPROC_ENV)  # fmt: skip
    app = create_app(settings)
    log.info("worker %d ready", os.getpid())
    return app


@contextlib.contextmanager
def shared_metrics_dir(environ: MutableMapping[str, str] = os.environ) -> Iterator[Path]:
    """A fresh directory (mode 700) for the workers' metric values, in `MULTIPROC_ENV` while
    the block runs; removed, and the variable restored, after.

    Set before the workers spawn, the variable is in their environment from their first
    instruction, so prometheus_client starts in multiprocess mode in each of them. One that an
    operator set is replaced: its files may hold another run's counts.
    """
    path = Path(tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX))  # mkdtemp: mode 700, ours alone
    previous = environ.get(MULTIPROC_ENV)
    environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            environ.pop(MULTIPROC_ENV, None)
        else:
            environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether a process with this PID exists (a PID held by another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DeadWorkerSweeper:
    """Calls `prometheus_client.multiprocess.mark_process_dead` for each worker that exited.

    granian replaces a dead worker without telling anyone, so the main process looks at the
    PIDs in the metric files' names every `interval` seconds. Marking a PID dead removes only
    its live gauges' files: a dead worker's counters and histograms stay, and keep counting in
    the sum, so no counter goes backwards when a worker dies.
    """

    def __init__(self, path: Path, interval: float = SWEEP_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._marked: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-sweeper", daemon=True)

    def pids(self) -> set[int]:
        """The PIDs that wrote metric files (`<type>[_<mode>]_<pid>.db`)."""
        found = set()
        for file in self.path.glob("*.db"):
            pid = file.stem.rpartition("_")[2]
            if pid.isdigit():
                found.add(int(pid))
        return found

    def sweep(self) -> list[int]:
        """Mark the PIDs that exited since the last sweep dead; return them."""
        newly = []
        for pid in sorted(self.pids()):
            if _alive(pid):
                self._marked.discard(pid)  # a PID reused by a new worker may die again
            elif pid not in self._marked:
                mark_process_dead(pid, str(self.path))
                self._marked.add(pid)
                newly.append(pid)
        if newly:
            log.info("metrics: marked exited workers %s dead", newly)
        return newly

    def start(self) -> None:
        """Sweep every `interval` seconds in a daemon thread until `stop`."""
        self._thread.start()

    def stop(self) -> None:
        """End the thread (at its next wake-up at the latest)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except OSError as exc:  # the directory going away at shutdown, say
                log.warning("metrics: sweeping %s failed: %s", self.path, exc)


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
        # Before the workers spawn, so that they inherit the directory (shared_metrics_dir).
        with shared_metrics_dir() as metrics_path:
            sweeper = DeadWorkerSweeper(metrics_path)
            sweeper.start()
            try:
                server.serve()  # blocks until SIGTERM/SIGINT; stops the workers before returning
            finally:
                sweeper.stop()
    finally:
        if scheduler:
            scheduler.shutdown()
        db.db.close()
    return 0
