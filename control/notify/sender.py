"""The sender: the leader scheduler's `notify` job, which empties the outbox into the channels.

Each round claims the incidents with a row due, then per channel:
- the rows of one incident (a server's health, one action's approval) fold into one message;
- an incident the channel heard about less than `HOMELAB_NOTIFY_COOLDOWN` ago waits until the
  cooldown ends and then goes out once, with what changed meanwhile (a flapping box sends one
  message per cooldown, not ten);
- a recovery is sent only to a channel that was told of the problem;
- `SUMMARY_AT` or more incidents ready at once (a fleet-wide outage) go out as one summary,
  and the channel's next incidents wait for the summary's cooldown;
- a failed send is retried with exponential backoff, and given up after `MAX_ATTEMPTS`.
Approvals are never held: each goes out at once with the link to the approvals page.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from control.config import Settings
from control.errors import ConfigError
from control.models import Notification, NotificationKind, NotificationStatus, utcnow
from control.notify import messages, outbox
from control.notify.channels import Channel, Courier, Outcome
from control.notify.messages import Message
from control.notify.outbox import SUMMARY_KEY, LastSent
from control.notify.routing import build_routes, channels_of, configure

log = logging.getLogger(__name__)

SEND_INTERVAL = 5  # seconds between rounds
SUMMARY_AT = 4  # incidents ready at once on one channel that make a summary
CLAIM_LEASE = dt.timedelta(minutes=5)  # a sender that died mid-round frees its rows after this
CLAIM_LIMIT = 10_000  # incidents per round
RETRY_FIRST, RETRY_MAX = 30, 3600  # seconds: 30, 60, 120, … at most an hour apart
MAX_ATTEMPTS = 12  # about seven hours of retries
KEEP = dt.timedelta(days=30)  # settled rows are kept this long (each incident's newest longer)
PRUNE_EVERY = 3600.0  # seconds


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    return dt.timedelta(seconds=min(RETRY_FIRST * 2 ** (attempts - 1), RETRY_MAX))


@dataclass(frozen=True)
class Outgoing:
    """One message to send and the incidents (rows by key) it carries."""

    message: Message
    incidents: list[list[Notification]]
    summary: bool = False


@dataclass
class Plan:
    """What one round does with one channel's claimed rows."""

    outgoing: list[Outgoing] = field(default_factory=list)
    deferred: list[tuple[list[int], dt.datetime]] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)


def _ids(rows: Sequence[Notification]) -> list[int]:
    return [row.id for row in rows]


def plan(
    rows: Sequence[Notification],
    history: dict[str, LastSent],
    cooldown: dt.timedelta,
    now: dt.datetime,
    fleet_link: str,
) -> Plan:
    """Decide, for one channel's claimed rows (oldest first), what goes out now and what waits.

    `history` is what the channel was last sent per incident key (and `SUMMARY_KEY`).
    """
    incidents: dict[str, list[Notification]] = {}
    for row in rows:
        incidents.setdefault(row.key, []).append(row)
    result, ready = Plan(), []
    for key, group in incidents.items():
        last = history.get(key)
        kinds = {row.kind for row in group}
        if kinds == {NotificationKind.RECOVERY} and not (
            last and last.kind == NotificationKind.ALERT
        ):
            result.suppressed.extend(_ids(group))  # the channel never heard of the problem
        elif NotificationKind.APPROVAL in kinds:
            result.outgoing.append(Outgoing(messages.incident(group), [group]))
        elif last and last.sent_at + cooldown > now:
            result.deferred.append((_ids(group), last.sent_at + cooldown))
        else:
            ready.append(group)
    last_summary = history.get(SUMMARY_KEY)
    if ready and last_summary and last_summary.sent_at + cooldown > now:
        until = last_summary.sent_at + cooldown
        result.deferred.extend((_ids(group), until) for group in ready)
    elif len(ready) >= SUMMARY_AT:
        result.outgoing.append(Outgoing(messages.summary(ready, fleet_link), ready, summary=True))
    else:
        result.outgoing.extend(Outgoing(messages.incident(group), [group]) for group in ready)
    return result


class Sender:
    """Sends what the outbox holds to the channels of `settings`; one per scheduler."""

    def __init__(self, settings: Settings, holder: str, courier: Courier | None = None) -> None:
        self.channels = {channel.id: channel for channel in channels_of(build_routes(settings))}
        self.holder = holder
        self.courier = courier or Courier()
        self.cooldown = dt.timedelta(seconds=settings.notify_cooldown)
        self.fleet_link = settings.resolved_public_url + "/ui/"
        self._next_prune = 0.0

    def run_once(self, now: dt.datetime | None = None) -> dict[str, int]:
        """One round: claim what is due, send it, record each outcome; counts what happened."""
        now = now or utcnow()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY
            outbox.prune(now - KEEP)
        rows = outbox.claim(self.holder, now, CLAIM_LEASE, CLAIM_LIMIT)
        by_channel: dict[str, list[Notification]] = {}
        for row in rows:
            by_channel.setdefault(row.channel, []).append(row)
        counts: dict[str, int] = {}
        for channel_id, channel_rows in by_channel.items():
            channel = self.channels.get(channel_id)
            if channel is None:
                outbox.settle(_ids(channel_rows), self.holder, NotificationStatus.DROPPED)
                log.warning(
                    "%d notification(s) dropped: their channel is no longer configured",
                    len(channel_rows),
                )
                counts["dropped"] = counts.get("dropped", 0) + len(channel_rows)
                continue
            for outcome, number in self._send_channel(channel, channel_rows, now).items():
                counts[outcome] = counts.get(outcome, 0) + number
        return counts

    def _send_channel(
        self, channel: Channel, rows: list[Notification], now: dt.datetime
    ) -> dict[str, int]:
        """Plan and send one channel's rows; once a send fails, the rest wait for its retry."""
        history = outbox.last_sent(channel.id, {row.key for row in rows} | {SUMMARY_KEY})
        decided = plan(rows, history, self.cooldown, now, self.fleet_link)
        outbox.settle(decided.suppressed, self.holder, NotificationStatus.SUPPRESSED)
        for ids, until in decided.deferred:
            outbox.defer(ids, self.holder, until)
        counts = {"sent": 0, "failed": 0}
        blocked_until = None
        for out in decided.outgoing:
            carried = [row for group in out.incidents for row in group]
            if blocked_until is not None:
                outbox.defer(_ids(carried), self.holder, blocked_until)
                continue
            outcome = self.courier.send(
                channel, out.message.title, out.message.body, out.message.kind
            )
            if outcome.ok:
                self._sent(channel, out, now)
                counts["sent"] += 1
            else:
                blocked_until = self._failed(channel, out, carried, outcome.error or "", now)
                counts["failed"] += 1
        return {name: number for name, number in counts.items() if number}

    def _sent(self, channel: Channel, out: Outgoing, now: dt.datetime) -> None:
        shown = [group[-1].id for group in out.incidents]
        folded = [row.id for group in out.incidents for row in group[:-1]]
        outbox.mark_sent(shown, folded, self.holder, now)
        if out.summary:
            text = f"{out.message.title}\n{out.message.body}"
            outbox.record_summary(channel.id, channel.scheme, text, out.message.severity, now)
        outbox.count(channel.scheme, sent=1)
        log.info(
            "notification sent to %s: %s (%d event(s))",
            channel.shown, out.message.title, len(shown) + len(folded),
        )  # fmt: skip

    def _failed(
        self,
        channel: Channel,
        out: Outgoing,
        carried: list[Notification],
        error: str,
        now: dt.datetime,
    ) -> dt.datetime:
        """Record a failed send; returns when the channel is next tried."""
        attempts = max(row.attempts for row in carried) + 1
        retry_at = now + retry_delay(attempts) if attempts < MAX_ATTEMPTS else None
        outbox.mark_failed(_ids(carried), self.holder, now, error, retry_at)
        outbox.count(channel.scheme, failed=1)
        if retry_at is None:
            log.error(
                "notification to %s failed %d times, given up: %s (%s)",
                channel.shown, attempts, out.message.title, error,
            )  # fmt: skip
            return now + dt.timedelta(seconds=RETRY_FIRST)
        log.warning(
            "notification to %s failed (attempt %d, next at %s UTC): %s (%s)",
            channel.shown, attempts, f"{retry_at:%H:%M:%S}", out.message.title, error,
        )  # fmt: skip
        return retry_at


def send_test(settings: Settings) -> list[tuple[Channel, Outcome]]:
    """Send a test message to every configured channel now (`homelab-control notify test`).

    Not through the outbox: the operator waits for each result. ConfigError when no URL is
    configured or one is unusable.
    """
    channels = channels_of(configure(settings).routes)
    if not channels:
        raise ConfigError("no notification URLs configured (HOMELAB_NOTIFY_URLS, notify_routes)")
    courier = Courier()
    body = (
        f"A test from homelab-control on {socket.gethostname()}: this channel receives "
        f"homelabcmd's notifications.\n{settings.resolved_public_url}/ui/events"
    )
    return [
        (channel, courier.send(channel, "homelabcmd test notification", body, "info"))
        for channel in channels
    ]
