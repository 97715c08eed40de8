"""Retention: old samples and events are deleted, samples past a day thinned to one an hour."""

from __future__ import annotations

import datetime as dt

import peewee as pw

from control.db import is_sqlite, write_transaction
from control.models import (
    Event,
    MetricsSample,
    RateLimitHit,
    Server,
    ServerUpdate,
    UpdateStatus,
    utcnow,
)

# Samples younger than this are all kept; older ones are thinned to one per server per hour.
FULL_RESOLUTION = dt.timedelta(hours=24)
# How far back each (hourly) thinning pass looks. Narrow on purpose: each pass then touches about
# one hour of samples, so it holds SQLite's write lock briefly even for a large fleet. Samples
# from hours the scheduler was down longer than this stay unthinned until retention drops them.
THINNING_WINDOW = dt.timedelta(hours=26)


def thin_history(now: dt.datetime | None = None) -> int:
    """Keep the first sample of each server-hour for samples older than a day; drop the rest.

    A month of 60 s heartbeats is then 1,440 + 29 x 24 rows per server instead of 43,200.
    Each server's newest sample (its `latest_metrics`) is always kept. Long-term, fine-grained
    history is Prometheus's job; control keeps enough to chart a month by the hour.
    """
    now = now or utcnow()
    upper, lower = now - FULL_RESOLUTION, now - THINNING_WINDOW
    received = MetricsSample.received_at
    # Stored times sort as text on SQLite; the first 13 characters are the hour.
    hour = pw.fn.substr(received, 1, 13) if is_sqlite() else pw.fn.date_trunc("hour", received)
    in_window = (received >= lower) & (received < upper)
    first_of_hour = (
        MetricsSample.select(pw.fn.MIN(MetricsSample.id))
        .where(in_window)
        .group_by(MetricsSample.server, hour)
    )
    latest = Server.select(Server.latest_sample_id).where(Server.latest_sample_id.is_null(False))
    with write_transaction():
        deleted: int = (
            MetricsSample.delete()
            .where(
                in_window & MetricsSample.id.not_in(first_of_hour) & MetricsSample.id.not_in(latest)
            )
            .execute()
        )
        return deleted


def prune_history(retention_days: int, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete samples, events and settled update records older than the retention period;
    thin samples past a day.

    Also drops rate-limit entries older than a day: each check prunes its own key's, but a key
    that stops calling (revoked, unused) would otherwise keep its last window forever.
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=retention_days)
    with write_transaction():
        samples = MetricsSample.delete().where(MetricsSample.received_at < cutoff).execute()
        # A server silent for the whole period just lost its newest sample: clear the pointer
        # with it, so the row shows no metrics and its version moves (GET /servers' cache
        # trusts `latest_sample_id`, control.fleet.servers.ROW_KEY_COLUMNS).
        gone = ~pw.fn.EXISTS(
            MetricsSample.select(pw.SQL("1")).where(MetricsSample.id == Server.latest_sample_id)
        )
        Server.update(latest_sample_id=None).where(
            Server.latest_sample_id.is_null(False) & gone
        ).execute()
        old_events = Event.delete().where(Event.created_at < cutoff).execute()
        # Settled update records are history like events (a flapping box makes many).
        old_updates = (
            ServerUpdate.delete()
            .where(
                (ServerUpdate.detected_at < cutoff)
                & (ServerUpdate.update_status != UpdateStatus.PENDING)
            )
            .execute()
        )
        stale_hits = (
            RateLimitHit.delete().where(RateLimitHit.hit_at < now - dt.timedelta(days=1)).execute()
        )
    return {
        "samples": samples,
        "events": old_events,
        "updates": old_updates,
        "rate_limit_hits": stale_hits,
        "thinned": thin_history(now),
    }
