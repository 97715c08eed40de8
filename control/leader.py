"""Scheduler leadership through one database row, so two schedulers never double-fire.

Every job tick first renews (or takes over an expired) lease with one conditional UPDATE; only
the holder runs the job. A crashed leader is replaced once its lease expires.
"""

from __future__ import annotations

import datetime as dt

from control.db import write_transaction
from control.models import JobRun, SchedulerLease, utcnow

LEASE_NAME = "scheduler"


def acquire(holder: str, ttl_seconds: int, now: dt.datetime | None = None) -> bool:
    """Take or renew the lease for `holder`; True when `holder` is now the leader."""
    now = now or utcnow()
    with write_transaction():
        taken = (
            SchedulerLease.update(holder=holder, expires_at=now + dt.timedelta(seconds=ttl_seconds))
            .where(
                (SchedulerLease.name == LEASE_NAME)
                & (
                    (SchedulerLease.holder == holder)
                    | SchedulerLease.holder.is_null()
                    | (SchedulerLease.expires_at < now)
                )
            )
            .execute()
        )
    return taken == 1


def release(holder: str) -> None:
    """Give the lease up (on clean shutdown) so a standby takes over at its next tick."""
    with write_transaction():
        SchedulerLease.update(holder=None, expires_at=None).where(
            (SchedulerLease.name == LEASE_NAME) & (SchedulerLease.holder == holder)
        ).execute()


def record_run(job: str, ok: bool, now: dt.datetime | None = None) -> None:
    """Count one run of `job` and remember when it ran (read by control's /metrics)."""
    now = now or utcnow()
    result = "ok" if ok else "error"
    JobRun.insert(
        job=job, last_run_at=now, last_result=result, successes=int(ok), failures=int(not ok)
    ).on_conflict(
        conflict_target=[JobRun.job],
        update={
            JobRun.last_run_at: now,
            JobRun.last_result: result,
            JobRun.successes: JobRun.successes + int(ok),
            JobRun.failures: JobRun.failures + int(not ok),
        },
    ).execute()
