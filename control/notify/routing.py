"""Which events become notifications, for which channels: written to the outbox in the
event's own transaction (`router.enqueue`, called by `control.fleet.events`).

Every process calls `configure(settings)` at start (the API through `create_app`, the
scheduler and the CLI through `control.cli`); until then the router has no routes and
enqueues nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from peewee import chunked

from control.config import SEVERITIES, NotifyRoute, Settings
from control.db import write_transaction
from control.errors import ConfigError
from control.models import Notification, NotificationKind, Server, ServerHealth, utcnow
from control.notify.channels import Channel, make_channel, split_urls
from control.notify.redact import quiet_libraries, scrubber

# The event types classified here, by value: control.fleet.events imports this module (its
# hook), so EventType cannot be imported back at import time. Tests check they are EventType's.
HEALTH_CHANGED = "health_changed"
STATUS_CHANGED = "status_changed"
ACTION_CREATED = "action_created"
# The route type of an action waiting for approval.
APPROVAL = "approval"
PROBLEM_HEALTH = (ServerHealth.DEGRADED, ServerHealth.FAILED, ServerHealth.OFFLINE)
INSERT_CHUNK = 500


@dataclass(frozen=True)
class Candidate:
    """What one event would say as a notification, before routing."""

    kind: NotificationKind
    key: str  # the incident it belongs to (see models.Notification)
    event_type: str  # `approval` for an action waiting for approval
    severity: str
    server_id: str | None
    state: str | None
    message: str
    path: str  # the console page, below the public URL


def classify(event: Mapping[str, Any]) -> Candidate:
    """The notification an event (`type, severity, server_id, message, details`) would be.

    A server's health and status changes share one incident key, so an offline sweep's
    `status_changed` and `health_changed` for one box are one message; a health change from a
    problem back to healthy is a recovery, sent only to channels told of the problem.
    """
    event_type, server_id = event["type"], event.get("server_id")
    details = event.get("details") or {}
    server_path = f"/ui/servers/{quote(server_id, safe='')}" if server_id else "/ui/events"
    if event_type == ACTION_CREATED and details.get("status") == "pending":
        return Candidate(
            NotificationKind.APPROVAL, f"approval:{details.get('action_id')}", APPROVAL,
            event["severity"], server_id, "pending", event["message"], "/ui/approvals",
        )  # fmt: skip
    state = None
    if event_type == HEALTH_CHANGED:
        state = details.get("to")
    elif event_type == STATUS_CHANGED:
        state = details.get("status")
    recovered = (
        event_type == HEALTH_CHANGED
        and details.get("from") in PROBLEM_HEALTH
        and state == ServerHealth.HEALTHY
    )
    if event_type in (HEALTH_CHANGED, STATUS_CHANGED):
        key = f"server:{server_id}"
    else:
        key = f"{event_type}:{server_id or '-'}"
    return Candidate(
        NotificationKind.RECOVERY if recovered else NotificationKind.ALERT,
        key, event_type, event["severity"], server_id, state, event["message"], server_path,
    )  # fmt: skip


@dataclass(frozen=True)
class Route:
    """Channels and what they want: types (empty: all), server tags (empty: any), severity."""

    channels: tuple[Channel, ...]
    min_severity: str
    types: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()

    def accepts(self, candidate: Candidate, server_tags: frozenset[str]) -> bool:
        """Whether this route sends `candidate` (approvals and recoveries at any severity)."""
        if self.types and candidate.event_type not in self.types:
            return False
        if self.tags and not self.tags & server_tags:
            return False
        if candidate.kind in (NotificationKind.APPROVAL, NotificationKind.RECOVERY):
            return True
        return SEVERITIES.index(candidate.severity) >= SEVERITIES.index(self.min_severity)

    def describe(self) -> str:
        """What this route sends, in words (the console's channel list)."""
        wanted = sorted(self.types - {APPROVAL})
        if not self.types:
            words = [f"every event at {self.min_severity} or worse", "approvals", "recoveries"]
        else:
            words = [f"{', '.join(wanted)} at {self.min_severity} or worse"] if wanted else []
            if APPROVAL in self.types:
                words.append("approvals")
            if HEALTH_CHANGED in self.types:
                words.append("recoveries")
        if self.tags:
            words.append(f"only servers tagged {', '.join(sorted(self.tags))}")
        return "; ".join(words)


def build_routes(settings: Settings) -> tuple[Route, ...]:
    """The routes of `HOMELAB_NOTIFY_URLS` (everything at the minimum severity) and of the
    TOML's `[[notify_routes]]`; ConfigError for a URL Apprise cannot use or an unknown type."""
    # Before Apprise first parses a URL: it logs them at DEBUG.
    scrubber.remember(
        [*split_urls(settings.notify_urls), *(u for t in settings.notify_routes for u in t.urls)]
    )
    quiet_libraries()
    return _routes(settings.notify_urls, settings.notify_min_severity, settings.notify_routes)


@functools.lru_cache(maxsize=8)
def _routes(
    notify_urls: str, min_severity: str, tables: tuple[NotifyRoute, ...]
) -> tuple[Route, ...]:
    """`build_routes`, once per configuration (the console shows them on every page view)."""
    from control.fleet.events import EventType  # here: that module imports this one

    known_types = {str(value) for value in EventType} | {APPROVAL}
    made: dict[str, Channel] = {}

    def channels(urls: Iterable[str], where: str) -> tuple[Channel, ...]:
        found = []
        for number, url in enumerate(urls, 1):
            channel = make_channel(url, f"{where} URL #{number}")
            found.append(made.setdefault(channel.id, channel))
        return tuple(found)

    routes = []
    if notify_urls.strip():
        routes.append(Route(channels(split_urls(notify_urls), "HOMELAB_NOTIFY_URLS"), min_severity))
    for number, table in enumerate(tables, 1):
        where = f"notify_routes #{number}"
        unknown = set(table.types) - known_types
        if unknown:
            raise ConfigError(f"{where}: unknown type(s) {', '.join(sorted(unknown))}")
        routes.append(
            Route(
                channels(table.urls, where),
                table.min_severity or min_severity,
                frozenset(table.types),
                frozenset(table.tags),
            )
        )
    return tuple(routes)


def channels_of(routes: Iterable[Route]) -> list[Channel]:
    """Every channel of `routes` once, in the order configured."""
    unique: dict[str, Channel] = {}
    for route in routes:
        for channel in route.channels:
            unique.setdefault(channel.id, channel)
    return list(unique.values())


class Router:
    """This process's routes and the console's public URL, for turning events into rows."""

    def __init__(self) -> None:
        self.routes: tuple[Route, ...] = ()
        self.public_url = ""

    def configure(self, settings: Settings) -> None:
        """Take the routes of `settings` (checked first, so a bad one changes nothing)."""
        self.routes, self.public_url = build_routes(settings), settings.resolved_public_url

    def reset(self) -> None:
        """No routes: enqueue nothing (tests)."""
        self.routes, self.public_url = (), ""

    def enqueue(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Write the outbox rows of `events` (inside the caller's transaction); return how many.

        Each event goes once to every channel of every route that accepts it, due from the
        event's `created_at` (now if it has none). Costs nothing when no URL is configured, and
        one query for server tags only when a route filters on them.
        """
        if not self.routes:
            return 0
        events = list(events)
        candidates = [classify(event) for event in events]
        tags = _server_tags(candidates) if any(route.tags for route in self.routes) else {}
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for event, candidate in zip(events, candidates, strict=True):
            at = event.get("created_at") or now
            server_tags = tags.get(candidate.server_id, frozenset())
            targets: dict[str, Channel] = {}
            for route in self.routes:
                if route.accepts(candidate, server_tags):
                    for channel in route.channels:
                        targets.setdefault(channel.id, channel)
            rows.extend(self._row(candidate, channel, at) for channel in targets.values())
        if rows:
            with write_transaction():
                for chunk in chunked(rows, INSERT_CHUNK):
                    Notification.insert_many(chunk).execute()
        return len(rows)

    def _row(self, candidate: Candidate, channel: Channel, now: dt.datetime) -> dict[str, Any]:
        return {
            "channel": channel.id,
            "scheme": channel.scheme,
            "kind": candidate.kind,
            "key": candidate.key,
            "event_type": candidate.event_type,
            "severity": candidate.severity,
            "server_id": candidate.server_id,
            "state": candidate.state,
            "message": candidate.message,
            "link": self.public_url + candidate.path,
            "created_at": now,
            "next_attempt_at": now,
        }


def _server_tags(candidates: list[Candidate]) -> dict[str | None, frozenset[str]]:
    """The tags of the candidates' servers, in one query."""
    ids = {candidate.server_id for candidate in candidates if candidate.server_id}
    found: dict[str | None, frozenset[str]] = {}
    for chunk in chunked(sorted(ids), INSERT_CHUNK):
        for server in Server.select(Server.id, Server.tags).where(Server.id.in_(chunk)):
            found[server.id] = frozenset(json.loads(server.tags)) if server.tags else frozenset()
    return found


router = Router()


def configure(settings: Settings) -> Router:
    """Route this process's events by `settings` (call once at start); ConfigError if bad."""
    router.configure(settings)
    return router
