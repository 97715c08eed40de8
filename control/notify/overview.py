"""What the console shows of notifications: the channels (redacted) and the last failures."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from control.config import Settings
from control.notify import outbox
from control.notify.routing import build_routes

FAILURES_SHOWN = 5


@dataclass(frozen=True)
class ChannelView:
    """One configured channel: its redacted URL, what it is sent, how much waits for it."""

    shown: str
    scheme: str
    sends: tuple[str, ...]
    queued: int


@dataclass(frozen=True)
class FailureView:
    """One failed attempt: when, to which channel, about what, and why."""

    at: dt.datetime | None
    channel: str
    message: str
    attempts: int
    status: str
    error: str


@dataclass(frozen=True)
class Overview:
    """The channels and the latest failures."""

    channels: list[ChannelView]
    failures: list[FailureView]


def overview(settings: Settings) -> Overview:
    """The configured channels with their routes and queue, and the latest failed attempts.

    Errors were masked when stored; a channel removed from the settings since shows as its
    scheme only.
    """
    routes = build_routes(settings)
    sends: dict[str, list[str]] = {}
    known = {}
    for route in routes:
        for channel in route.channels:
            known[channel.id] = channel
            sends.setdefault(channel.id, []).append(route.describe())
    queued = outbox.queued_by_channel()
    channels = [
        ChannelView(channel.shown, channel.scheme, tuple(sends[id_]), queued.get(id_, 0))
        for id_, channel in known.items()
    ]
    failures = [
        FailureView(
            at=row.last_attempt_at,
            channel=known[row.channel].shown
            if row.channel in known
            else f"{row.scheme}:// (no longer configured)",
            message=row.message,
            attempts=row.attempts,
            status=row.status,
            error=row.last_error or "",
        )
        for row in outbox.recent_failures(FAILURES_SHOWN)
    ]
    return Overview(channels, failures)
