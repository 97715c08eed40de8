"""The outbox's rows (models.Notification): claiming, what each channel was last told, the
outcome of a send, tallies for `/metrics`, the console's view, and pruning.

Claims make sure exactly one sender handles a row even if two ever run (the scheduler only
sends from its leader): one conditional UPDATE takes rows nobody holds, or whose holder's claim
ran out (it died mid-send), and every later write checks the claim is still its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple, cast

import peewee as pw

from control.db import write_transaction
from control.models import (
    Notification,
    NotificationKind,
    NotificationStatus,
    NotificationTally,
)

CHUNK = 500
SUMMARY_KEY = "summary"  # the key of the rows that record the summaries sent
_PENDING = Notification.status == NotificationStatus.PENDING


class LastSent(NamedTuple):
    """When a channel was last told about an incident, and what (alert, recovery, …)."""

    sent_at: dt.datetime
    kind: str


def _unclaimed(now: dt.datetime) -> pw.Expression:
    return Notification.claimed_by.is_null() | (Notification.claimed_until < now)


def claim(
    holder: str,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
    skip: Collection[str] = (),
) -> list[Notification]:
    """Claim every pending row of each incident that has a row due, oldest first, leaving the
    channels of `skip` alone (still sending, or waiting for a retry).

    A whole incident at once, due or not: a newer change joins an older one that waits for its
    retry or cooldown, so the channel never hears them out of order.
    """
    wanted = _PENDING & Notification.channel.not_in(list(skip))
    with write_transaction():
        # .tuples() yields plain rows; peewee's stubs keep the row type as the model.
        due = cast(
            Iterable[tuple[str, str]],
            Notification.select(Notification.channel, Notification.key)
            .where(wanted & (Notification.next_attempt_at <= now) & _unclaimed(now))
            .distinct()
            .limit(limit)
            .tuples(),
        )
        keys: dict[str, list[str]] = {}
        for channel, key in due:
            keys.setdefault(channel, []).append(key)
        for channel, channel_keys in keys.items():
            for chunk in pw.chunked(channel_keys, CHUNK):
                Notification.update(claimed_by=holder, claimed_until=now + lease).where(
                    _PENDING
                    & _unclaimed(now)
                    & (Notification.channel == channel)
                    & Notification.key.in_(chunk)
                ).execute()
    return list(
        Notification.select()
        .where(wanted & (Notification.claimed_by == holder))
        .order_by(Notification.id)
    )


class Dropped(NamedTuple):
    """How many rows of one channel were dropped."""

    channel: str
    scheme: str
    rows: int


def drop_removed(configured: Collection[str], now: dt.datetime) -> list[Dropped]:
    """Settle as `dropped` every pending row of a channel not in `configured`, due or not
    (waiting for a retry or a cooldown too), unless another sender's claim on it still runs."""
    orphan = _PENDING & Notification.channel.not_in(list(configured)) & _unclaimed(now)
    with write_transaction():
        found = cast(
            Iterable[tuple[str, str, int]],
            Notification.select(
                Notification.channel, Notification.scheme, pw.fn.COUNT(Notification.id)
            )
            .where(orphan)
            .group_by(Notification.channel, Notification.scheme)
            .tuples(),
        )
        dropped = [Dropped(*row) for row in found]
        if dropped:
            Notification.update(
                status=NotificationStatus.DROPPED, claimed_by=None, claimed_until=None
            ).where(orphan).execute()
    return dropped


def last_sent(channel: str, keys: Iterable[str]) -> dict[str, LastSent]:
    """For each of `keys`, the newest message `channel` was sent about it."""
    found: dict[str, LastSent] = {}
    for chunk in pw.chunked(sorted(set(keys)), CHUNK):
        newest = (
            Notification.select(pw.fn.MAX(Notification.id))
            .where(
                (Notification.channel == channel)
                & (Notification.status == NotificationStatus.SENT)
                & Notification.key.in_(chunk)
            )
            .group_by(Notification.key)
        )
        rows = Notification.select(Notification.key, Notification.sent_at, Notification.kind).where(
            Notification.id.in_(newest)
        )
        # A sent row always has its sent_at.
        found.update({row.key: LastSent(cast(dt.datetime, row.sent_at), row.kind) for row in rows})
    return found


def _release(ids: Sequence[int], holder: str, **changes: Any) -> None:
    """Apply `changes` to the rows `holder` still claims, and let go of them."""
    for chunk in pw.chunked(ids, CHUNK):
        Notification.update(claimed_by=None, claimed_until=None, **changes).where(
            Notification.id.in_(chunk) & (Notification.claimed_by == holder)
        ).execute()


def mark_sent(shown: Sequence[int], folded: Sequence[int], holder: str, now: dt.datetime) -> None:
    """Rows whose message went out: `shown` each as its incident's message, `folded` inside
    a later one about the same incident."""
    with write_transaction():
        _release(shown, holder, status=NotificationStatus.SENT, sent_at=now, last_attempt_at=now)
        _release(folded, holder, status=NotificationStatus.FOLDED, sent_at=now, last_attempt_at=now)


def record_summary(
    channel: str, scheme: str, message: str, severity: str, now: dt.datetime
) -> None:
    """Keep a summary that went out, so the next one waits for the cooldown."""
    with write_transaction():
        Notification.create(
            channel=channel, scheme=scheme, kind=NotificationKind.SUMMARY, key=SUMMARY_KEY,
            event_type=SUMMARY_KEY, severity=severity, message=message,
            status=NotificationStatus.SENT, created_at=now, next_attempt_at=now,
            last_attempt_at=now, sent_at=now,
        )  # fmt: skip


def mark_failed(
    ids: Sequence[int],
    holder: str,
    now: dt.datetime,
    error: str,
    retry_at: dt.datetime | None,
) -> None:
    """Rows whose send failed: one more attempt, the reason, and the retry (None: give up)."""
    changes: dict[str, Any] = {
        "attempts": Notification.attempts + 1,
        "last_attempt_at": now,
        "last_error": error,
    }
    if retry_at is None:
        changes["status"] = NotificationStatus.FAILED
    else:
        changes["next_attempt_at"] = retry_at
    with write_transaction():
        _release(ids, holder, **changes)


def defer(ids: Sequence[int], holder: str, until: dt.datetime) -> None:
    """Rows that wait (an incident's cooldown, or a channel that failed this round)."""
    with write_transaction():
        _release(ids, holder, next_attempt_at=until)


def settle(ids: Sequence[int], holder: str, status: NotificationStatus) -> None:
    """Rows that will never be sent: suppressed recoveries, rows of a removed channel."""
    with write_transaction():
        _release(ids, holder, status=status)


def count(scheme: str, sent: int = 0, failed: int = 0) -> None:
    """Add to the scheme's tallies (every process's `/metrics` reads them)."""
    with write_transaction():
        NotificationTally.insert(scheme=scheme, sent=sent, failed=failed).on_conflict(
            conflict_target=[NotificationTally.scheme],
            update={
                NotificationTally.sent: NotificationTally.sent + sent,
                NotificationTally.failed: NotificationTally.failed + failed,
            },
        ).execute()


def tallies() -> list[NotificationTally]:
    """Sent and failed counts per scheme."""
    return list(NotificationTally.select().order_by(NotificationTally.scheme))


def queued_by_scheme() -> dict[str, int]:
    """How many rows wait to be sent, per scheme."""
    query = cast(
        Iterable[tuple[str, int]],
        Notification.select(Notification.scheme, pw.fn.COUNT(Notification.id))
        .where(_PENDING)
        .group_by(Notification.scheme)
        .tuples(),
    )
    return dict(query)


def queued_by_channel() -> dict[str, int]:
    """How many rows wait to be sent, per channel."""
    query = cast(
        Iterable[tuple[str, int]],
        Notification.select(Notification.channel, pw.fn.COUNT(Notification.id))
        .where(_PENDING)
        .group_by(Notification.channel)
        .tuples(),
    )
    return dict(query)


def recent_failures(limit: int = 10) -> list[Notification]:
    """The latest failed attempts, newest first (whether retried since or not)."""
    return list(
        Notification.select()
        .where(Notification.last_error.is_null(False))
        .order_by(Notification.last_attempt_at.desc(), Notification.id.desc())
        .limit(limit)
    )


def prune(before: dt.datetime) -> int:
    """Delete settled rows created before `before`, keeping each incident's newest message
    (without it, a box offline for longer would never get its recovery)."""
    newest = (
        Notification.select(pw.fn.MAX(Notification.id))
        .where(Notification.status == NotificationStatus.SENT)
        .group_by(Notification.channel, Notification.key)
    )
    with write_transaction():
        return int(
            Notification.delete()
            .where(~_PENDING & (Notification.created_at < before) & Notification.id.not_in(newest))
            .execute()
        )
