"""One channel's share of a sender round: its messages sent in order, on a thread of its own,
each outcome written as soon as it is known.

What a failure holds back:
- the service refused the message itself (HTTP 400, 413, 414, 415 or 422, or the plugin
  raised on it): that message is given up at once (`failed`, logged at ERROR) and the channel
  goes on with the next one;
- anything else (refused connection, timeout, 5xx, 429, a refused token) is the channel's
  trouble: the message is retried with exponential backoff, and the channel's other messages
  wait for that retry without spending attempts of their own, so the channel is tried once
  per step of its backoff and, once it is back, hears its messages in their order.
Other channels never wait for this one: each sends from its own thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import peewee

from control.db import db
from control.models import Notification
from control.notify import outbox
from control.notify.channels import Channel, Courier
from control.notify.messages import Message

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MAX = 30, 3600  # seconds: 30, 60, 120, … at most an hour apart
MAX_ATTEMPTS = 12  # about seven hours of retries


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    return dt.timedelta(seconds=min(RETRY_FIRST * 2 ** (attempts - 1), RETRY_MAX))


@dataclass(frozen=True)
class Outgoing:
    """One message to send and the incidents (rows by key) it carries."""

    message: Message
    incidents: list[list[Notification]]
    summary: bool = False

    @property
    def rows(self) -> list[Notification]:
        """Every row the message carries."""
        return [row for group in self.incidents for row in group]


@dataclass(frozen=True)
class ChannelRound:
    """What came of one channel's round: counts by outcome, and when the channel may be
    tried again if it failed (None: it did not)."""

    counts: dict[str, int]
    rest_until: dt.datetime | None = None


def _ids(rows: Sequence[Notification]) -> list[int]:
    return [row.id for row in rows]


def deliver(
    channel: Channel,
    outgoing: Sequence[Outgoing],
    courier: Courier,
    holder: str,
    now: dt.datetime,
) -> ChannelRound:
    """Send `outgoing` to `channel` in order and record each outcome; never raises.

    Runs on the channel's own thread, with that thread's database connection. If the database
    fails, the rows not yet recorded stay claimed, and the next sender takes them once the
    claim runs out.
    """
    try:
        db.connect(reuse_if_open=True)
        return _deliver(channel, outgoing, courier, holder, now)
    except peewee.DatabaseError as exc:
        log.warning("notifications to %s wait: database unavailable: %s", channel.shown, exc)
        db.close()
    except Exception:  # this thread must outlive anything one round does
        log.exception("notifications to %s: unexpected failure", channel.shown)
    return ChannelRound({})


def _deliver(
    channel: Channel,
    outgoing: Sequence[Outgoing],
    courier: Courier,
    holder: str,
    now: dt.datetime,
) -> ChannelRound:
    counts: Counter[str] = Counter()
    for number, out in enumerate(outgoing):
        message = out.message
        outcome = courier.send(channel, message.title, message.body, message.kind)
        if outcome.ok:
            _sent(channel, out, holder, now)
            counts["sent"] += 1
        elif outcome.refused:
            _refused(channel, out, holder, now, outcome.error or "")
            counts["rejected"] += 1
        else:
            rest_until = _failed(channel, out, holder, now, outcome.error or "")
            counts["failed"] += 1
            waiting = [row for later in outgoing[number + 1 :] for row in later.rows]
            outbox.defer(_ids(waiting), holder, rest_until)
            return ChannelRound(dict(counts), rest_until)
    return ChannelRound(dict(counts))


def _sent(channel: Channel, out: Outgoing, holder: str, now: dt.datetime) -> None:
    shown = [group[-1].id for group in out.incidents]
    folded = [row.id for group in out.incidents for row in group[:-1]]
    outbox.mark_sent(shown, folded, holder, now)
    if out.summary:
        text = f"{out.message.title}\n{out.message.body}"
        outbox.record_summary(channel.id, channel.scheme, text, out.message.severity, now)
    outbox.count(channel.scheme, sent=1)
    log.info(
        "notification sent to %s: %s (%d event(s))",
        channel.shown, out.message.title, len(shown) + len(folded),
    )  # fmt: skip


def _refused(channel: Channel, out: Outgoing, holder: str, now: dt.datetime, error: str) -> None:
    """Give up a message the service refused: sending it again would be refused again."""
    outbox.mark_failed(_ids(out.rows), holder, now, error, None)
    outbox.count(channel.scheme, failed=1)
    log.error(
        "notification to %s refused by the service, not retried: %s (%s)",
        channel.shown, out.message.title, error,
    )  # fmt: skip


def _failed(
    channel: Channel, out: Outgoing, holder: str, now: dt.datetime, error: str
) -> dt.datetime:
    """Record a failed send; returns when the channel is next tried."""
    carried = out.rows
    attempts = max(row.attempts for row in carried) + 1
    retry_at = now + retry_delay(attempts) if attempts < MAX_ATTEMPTS else None
    outbox.mark_failed(_ids(carried), holder, now, error, retry_at)
    outbox.count(channel.scheme, failed=1)
    if retry_at is None:
        log.error(
            "notification to %s failed %d times, given up: %s (%s)",
            channel.shown, attempts, out.message.title, error,
        )  # fmt: skip
        # The channel's next message starts a backoff of its own.
        return now + retry_delay(1)
    log.warning(
        "notification to %s failed (attempt %d, next at %s UTC): %s (%s)",
        channel.shown, attempts, f"{retry_at:%H:%M:%S}", out.message.title, error,
    )  # fmt: skip
    return retry_at
