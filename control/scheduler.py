"""APScheduler jobs: offline detection (with post-update health checks) and retention, run only
by the lease holder."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

import peewee
from apscheduler.schedulers.background import BackgroundScheduler

from control import leader
from control.config import Settings
from control.db import db
from control.fleet import offline, retention, updates
from control.models import utcnow
from control.notify.sender import SEND_INTERVAL, Sender
from control.remediation import actions
from control.remediation.dispatcher import Dispatcher
from control.remediation.runner import Remediation

log = logging.getLogger(__name__)

RETENTION_INTERVAL = 3600


class ControlScheduler:
    """The background jobs of one control process, guarded by the database lease."""

    def __init__(self, settings: Settings, remediation: Remediation | None = None):
        self.settings = settings
        self.holder = leader.make_holder()
        self.remediation = remediation or Remediation(settings)
        self.dispatcher = Dispatcher(
            self.remediation, self.holder, settings.dispatch_workers, is_leader=self.is_leader
        )
        self.notifications = Sender(settings, self.holder)  # sends the outbox, when leader
        self._leader_until = 0.0  # monotonic deadline of the lease we last took
        # When this scheduler's current, unbroken term as leader began (wall clock, naive UTC),
        # and the monotonic instant its last lease really expires (no safety margin).
        self._leader_since: dt.datetime | None = None
        self._lease_expires = 0.0
        self._scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )

    def jobs(self) -> dict[str, tuple[Callable[[], object], int]]:
        """Job name → (function, interval in seconds)."""
        s = self.settings
        jobs: dict[str, tuple[Callable[[], object], int]] = {
            "offline_check": (self.offline_check, s.offline_check_interval),
            "retention": (
                lambda: _nonzero(retention.prune_history(s.metrics_retention_days)),
                RETENTION_INTERVAL,
            ),
        }
        if self.notifications.channels:  # without a channel, nothing is ever queued
            jobs["notify"] = (self.notifications.run_once, SEND_INTERVAL)
        return jobs

    @property
    def leader_since(self) -> dt.datetime | None:
        """When this scheduler's current term as leader began (None while it is not leader)."""
        return self._leader_since

    def offline_check(self, now: dt.datetime | None = None) -> list[str]:
        """The offline_check job: mark silent servers offline, with a grace after taking over.

        Offline detection only runs in the leader, so it resumes when this scheduler becomes
        leader (a start, a takeover, or after a lapse): silence is counted from that moment at
        the earliest (`mark_offline(since=...)`), so servers unheard during the outage are not
        all marked offline by the first tick.
        """
        gone = offline.mark_offline(self.settings.offline_after, now=now, since=self._leader_since)
        self.check_updates(now)
        return gone

    def check_updates(self, now: dt.datetime | None = None) -> list[int]:
        """The offline tick's second step: settle the post-update health checks that are due.

        After the sweep, so a box that went silent since its update fails as offline. Not
        within the grace after taking over: until offline detection has run a full
        `offline_after`, a server's stored health may be from before control's outage.
        """
        now = now or utcnow()
        since = self._leader_since
        if since is not None and now - since < dt.timedelta(seconds=self.settings.offline_after):
            return []
        settled = updates.check_due_updates(now)
        if settled:
            log.info("post-update health checks settled: %s", settled)
        return settled

    def run_job(self, name: str, func: Callable[[], object]) -> bool:
        """Run one job if this process holds the lease; returns whether it ran."""
        try:
            db.connect(reuse_if_open=True)
            if not self._take_lease():
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

    def is_leader(self) -> bool:
        """Whether this process held the lease at its last renewal and it has not run out."""
        return time.monotonic() < self._leader_until

    def _take_lease(self) -> bool:
        """Renew or take the lease; on becoming leader, fail what a dead leader left running."""
        was_leader = self.is_leader()
        started = time.monotonic()
        if not leader.acquire(self.holder, self.settings.lease_seconds):
            self._leader_until = 0.0
            self._leader_since = None
            return False
        if self._leader_since is None or started >= self._lease_expires:
            # A new term: first lease, lease lost before, or ours ran out between two ticks
            # (another scheduler may have led, or nobody ran offline detection meanwhile).
            self._leader_since = utcnow()
        self._lease_expires = started + self.settings.lease_seconds
        # Keep a margin so we stop dispatching before another scheduler may take over.
        self._leader_until = started + self.settings.lease_seconds * 0.8
        if not was_leader:
            orphans = actions.interrupt_orphans(self.holder)
            if orphans:
                log.warning(
                    "actions %s were executing when control stopped: marked failed", orphans
                )
            self.dispatcher.wake()
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
        self.dispatcher.start()
        log.info("scheduler started as %s", self.holder)

    def shutdown(self) -> None:
        """Stop the jobs and hand the lease back."""
        self._scheduler.shutdown(wait=True)
        self.dispatcher.stop()
        self.remediation.close()
        try:
            db.connect(reuse_if_open=True)
            leader.release(self.holder)
        except peewee.DatabaseError:
            pass  # the lease simply expires
        log.info("scheduler stopped")


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    """Drop zero counts so an idle retention run logs nothing."""
    return {key: value for key, value in counts.items() if value}
