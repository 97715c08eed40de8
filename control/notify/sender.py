"""The sender: the leader scheduler's `notify` job, which empties the outbox into the channels.

Each round claims the incidents with a row due, then per channel:
- the rows of one incident (a server's health, one action's approval) fold into one message;
- an incident the channel heard about less than `HOMELAB_NOTIFY_COOLDOWN` ago waits until the
  cooldown ends and then goes out once, with what changed meanwhile (a flapping box sends one
  message per cooldown, not ten);
- a recovery is sent only to a channel that was told of the problem;
- `SUMMARY_AT` or more incidents ready at once (a fleet-wide outage) go out as one summary,
  and the channel's next incidents wait for the summary's cooldown;
- a failed send is retried with exponential backoff (`delivery`), and given up after 12 tries.
Approvals are never held: each goes out at once with the link to the approvals page.

Channels are independent: each sends on a thread of its own (see `delivery` for what one
failure holds back), and a round waits at most `ROUND_WAIT` for them: a channel still sending
then (one that accepts a connection and never answers) finishes on its own, and later rounds
leave it alone until it has. A channel that failed is not claimed again before its retry.
Rows of a channel no longer configured are dropped at the start of every round, due or not.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from control.config import Settings
from control.errors import ConfigError
from control.models import Notification, NotificationKind, NotificationStatus, utcnow
from control.notify import messages, outbox
from control.notify.channels import Channel, Courier, Outcome
from control.notify.delivery import ChannelRound, Outgoing, deliver
from control.notify.outbox import SUMMARY_KEY, LastSent
from control.notify.redact import redacted_stored
from control.notify.routing import build_routes, channels_of, configure

log = logging.getLogger(__name__)

SEND_INTERVAL = 5  # seconds between rounds
SUMMARY_AT = 4  # incidents ready at once on one channel that make a summary
CLAIM_LEASE = dt.timedelta(minutes=5)  # a sender that died mid-round frees its rows after this
CLAIM_LIMIT = 10_000  # incidents per round
# Seconds a round waits for its channels; a slower one finishes on its own, and is recorded by
# a later round (Apprise gives up a silent HTTP service after its `rto`, 4 s by default).
ROUND_WAIT = 2.0
KEEP = dt.timedelta(days=30)  # settled rows are kept this long (each incident's newest longer)
PRUNE_EVERY = 3600.0  # seconds


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
    """Sends what the outbox holds to the channels of `settings`; one per scheduler.

    Holds, per channel, the round still running on the channel's thread and when a channel
    that failed may be tried again (in memory: a new leader tries such a channel once).
    """

    def __init__(self, settings: Settings, holder: str, courier: Courier | None = None) -> None:
        self.channels = {channel.id: channel for channel in channels_of(build_routes(settings))}
        self.holder = holder
        self.courier = courier or Courier()
        self.cooldown = dt.timedelta(seconds=settings.notify_cooldown)
        self.fleet_link = settings.resolved_public_url + "/ui/"
        self._next_prune = 0.0
        # One thread per channel, so a slow channel never holds another's messages.
        self._threads = ThreadPoolExecutor(
            max_workers=max(1, len(self.channels)), thread_name_prefix="notify"
        )
        self._running: dict[str, Future[ChannelRound]] = {}
        self._resting: dict[str, dt.datetime] = {}

    def run_once(self, now: dt.datetime | None = None) -> dict[str, int]:
        """One round: drop rows of removed channels, claim what is due on the other channels
        that are neither sending nor resting, and send each channel's share on its thread;
        counts what happened (including rounds of earlier calls that finished since)."""
        now = now or utcnow()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY
            outbox.prune(now - KEEP)
        counts: Counter[str] = Counter(self._finished())
        counts["dropped"] += self._drop_removed(now)
        resting = {key for key, until in self._resting.items() if until > now}
        rows = outbox.claim(
            self.holder, now, CLAIM_LEASE, CLAIM_LIMIT, skip=resting | self._running.keys()
        )
        by_channel: dict[str, list[Notification]] = {}
        for row in rows:
            by_channel.setdefault(row.channel, []).append(row)
        started = []
        for channel_id, channel_rows in by_channel.items():
            channel = self.channels.get(channel_id)
            if channel is None:  # queued since the drop by a process configured otherwise
                outbox.settle(_ids(channel_rows), self.holder, NotificationStatus.DROPPED)
                counts["dropped"] += len(channel_rows)
                continue
            outgoing = self._plan_channel(channel, channel_rows, now)
            if outgoing:
                running = self._threads.submit(
                    deliver, channel, outgoing, self.courier, self.holder, now
                )
                self._running[channel_id] = running
                started.append(running)
        # Only this round's: a channel still hanging from an earlier one holds no round up.
        wait(started, timeout=ROUND_WAIT)
        counts.update(self._finished())
        return {name: number for name, number in sorted(counts.items()) if number}

    def _drop_removed(self, now: dt.datetime) -> int:
        """Drop the pending rows of channels no longer configured; how many."""
        dropped = outbox.drop_removed(self.channels.keys(), now)
        for found in dropped:
            log.warning(
                "%d notification(s) for %s dropped: the channel is no longer configured",
                found.rows, redacted_stored(found.scheme, found.channel),
            )  # fmt: skip
        return sum(found.rows for found in dropped)

    def _plan_channel(
        self, channel: Channel, rows: list[Notification], now: dt.datetime
    ) -> list[Outgoing]:
        """Settle and defer what waits of one channel's claimed rows; what goes out now."""
        history = outbox.last_sent(channel.id, {row.key for row in rows} | {SUMMARY_KEY})
        decided = plan(rows, history, self.cooldown, now, self.fleet_link)
        outbox.settle(decided.suppressed, self.holder, NotificationStatus.SUPPRESSED)
        for ids, until in decided.deferred:
            outbox.defer(ids, self.holder, until)
        return decided.outgoing

    def _finished(self) -> Counter[str]:
        """Collect the channel rounds that have finished: their counts, and which channels
        rest until a retry."""
        counts: Counter[str] = Counter()
        for channel_id, running in list(self._running.items()):
            if not running.done():
                continue
            del self._running[channel_id]
            result = running.result()  # deliver() never raises
            counts.update(result.counts)
            if result.rest_until is None:
                self._resting.pop(channel_id, None)
            else:
                self._resting[channel_id] = result.rest_until
        return counts


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
