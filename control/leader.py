"""Scheduler leadership through one database row, so two schedulers never double-fire.

Every job tick first renews (or takes over an expired) lease with one conditional UPDATE; only
the holder runs the job. A crashed leader is replaced once its lease expires.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

from control.db import write_transaction
from control.models import JobRun, SchedulerLease, utcnow

LEASE_NAME = "scheduler"


def make_holder() -> str:
    """This process's identity in the lease: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_on_this_host(holder: str | None) -> bool:
    """True when `holder` names a process on this host that no longer exists.

    Lets a restarted control take over at once instead of waiting for its dead predecessor's
    lease to expire; a holder on another host is only replaced by expiry.
    """
    host, _, rest = (holder or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def acquire(holder: str, ttl_seconds: int, now: dt.datetime | None = None) -> bool:
    """Take or renew the lease for `holder`; True when `holder` is now the leader."""
    now = now or utcnow()
    with write_transaction():
        current = SchedulerLease.get_or_none(SchedulerLease.name == LEASE_NAME)
        takeable = (
            (SchedulerLease.holder == holder)
            | SchedulerLease.holder.is_null()
            | (SchedulerLease.expires_at < now)
        )
        if current and current.holder != holder and _dead_on_this_host(current.holder):
            takeable |= SchedulerLease.holder == current.holder
        taken = (
            SchedulerLease.update(holder=holder, expires_at=now + dt.timedelta(seconds=ttl_seconds))
            .where((SchedulerLease.name == LEASE_NAME) & takeable)
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
