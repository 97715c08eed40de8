"""APScheduler jobs: offline detection and retention, run only by the lease holder."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Callable

import peewee
from apscheduler.schedulers.background import BackgroundScheduler

from control import fleet, leader
from control.config import Settings
from control.db import db

log = logging.getLogger(__name__)

RETENTION_INTERVAL = 3600


class ControlScheduler:
    """The background jobs of one control process, guarded by the database lease."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )

    def jobs(self) -> dict[str, tuple[Callable[[], object], int]]:
        """Job name → (function, interval in seconds)."""
        s = self.settings
        return {
            "offline_check": (
                lambda: fleet.mark_offline(s.offline_after),
                s.offline_check_interval,
            ),
            "retention": (
                lambda: fleet.prune_history(s.metrics_retention_days),
                RETENTION_INTERVAL,
            ),
        }

    def run_job(self, name: str, func: Callable[[], object]) -> bool:
        """Run one job if this process holds the lease; returns whether it ran."""
        try:
            db.connect(reuse_if_open=True)
            if not leader.acquire(self.holder, self.settings.lease_seconds):
                return False
        except peewee.DatabaseError as exc:
            log.warning("scheduler: database unavailable, skipping %s: %s", name, exc)
            db.close()
            return False
        ok = True
        try:
            result = func()
            if result:  # only log jobs that changed something
                log.info("job %s: %s", name, result)
        except Exception:  # a failing job must not kill the scheduler thread
            ok = False
            log.exception("job %s failed", name)
        try:
            leader.record_run(name, ok)
        except peewee.DatabaseError as exc:
            log.warning("scheduler: could not record run of %s: %s", name, exc)
            db.close()
        return True

    def start(self) -> None:
        """Schedule every job (first run right away) and start the background thread."""
        for name, (func, interval) in self.jobs().items():
            self._scheduler.add_job(
                self.run_job,
                "interval",
                args=(name, func),
                seconds=interval,
                id=name,
                next_run_time=dt.datetime.now(dt.UTC),
            )
        self._scheduler.start()
        log.info("scheduler started as %s", self.holder)

    def shutdown(self) -> None:
        """Stop the jobs and hand the lease back."""
        self._scheduler.shutdown(wait=True)
        try:
            db.connect(reuse_if_open=True)
            leader.release(self.holder)
        except peewee.DatabaseError:
            pass  # the lease simply expires
        log.info("scheduler stopped")


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    """Drop zero counts so an idle retention run logs nothing."""
    return {key: value for key, value in counts.items() if value}
