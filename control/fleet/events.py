"""The event log: registration, status and health changes, updates, actions, one row each.

Every event has a severity (`info | warning | error`): the type's usual one from
`DEFAULT_SEVERITY`, or the caller's when it depends on the change (health, status).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
from typing import Any

from control.bounds import PAGE_LIMIT_DEFAULT
from control.db import write_transaction
from control.errors import NotFound
from control.models import Event, EventSeverity, Server, utcnow
from control.notify.routing import router as notify_router
from control.queries import filtered, page

log = logging.getLogger("control.fleet.events")


class EventType(enum.StrEnum):
    """The `type` values events are recorded with."""

    SERVER_REGISTERED = "server_registered"
    SERVER_UPDATED = "server_updated"
    SERVER_DELETED = "server_deleted"
    SERVER_ENROLLED = "server_enrolled"
    ENROLLMENT_RESET = "enrollment_reset"
    STATUS_CHANGED = "status_changed"
    SERVER_PAUSED = "server_paused"
    SERVER_UNPAUSED = "server_unpaused"
    ACTION_CREATED = "action_created"
    ACTION_APPROVED = "action_approved"
    ACTION_REJECTED = "action_rejected"
    ACTION_STARTED = "action_started"
    ACTION_COMPLETED = "action_completed"
    ACTION_FAILED = "action_failed"
    COMMAND_COMPLETED = "command_completed"
    COMMAND_FAILED = "command_failed"
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
    HEALTH_CHANGED = "health_changed"
    UPDATE_DETECTED = "update_detected"
    UPDATE_SUCCEEDED = "update_succeeded"
    UPDATE_FAILED = "update_failed"
    UPDATE_ROLLED_BACK = "update_rolled_back"


# The severity of each type when the caller does not say; absent types are `info`.
DEFAULT_SEVERITY: dict[str, EventSeverity] = {
    EventType.ACTION_FAILED: EventSeverity.ERROR,
    EventType.COMMAND_FAILED: EventSeverity.ERROR,
    EventType.ALERT_FIRING: EventSeverity.WARNING,
    EventType.UPDATE_FAILED: EventSeverity.ERROR,
    EventType.UPDATE_ROLLED_BACK: EventSeverity.WARNING,
}


def severity_of(event_type: str, severity: str | None = None) -> str:
    """The severity an event is recorded with: the one given, else its type's default."""
    return severity or DEFAULT_SEVERITY.get(event_type, EventSeverity.INFO)


def record(
    event_type: str,
    message: str,
    server_id: str | None = None,
    details: dict[str, Any] | None = None,
    severity: str | None = None,
    created_at: dt.datetime | None = None,
) -> Event:
    """Append one event (inside the caller's transaction, if any) and log it as one line.

    Its notifications, if any channel wants it, are queued in the same transaction.
    """
    severity = severity_of(event_type, severity)
    log.info(message, extra={"event": event_type, "server_id": server_id, "severity": severity})
    # A savepoint inside the caller's transaction; on its own, a write that queues on SQLite's
    # in-process writer lock like every other write (see control.db).
    with write_transaction():
        event = Event.create(
            type=event_type,
            severity=severity,
            created_at=created_at or utcnow(),
            message=message,
            server_id=server_id,
            details=json.dumps(details, sort_keys=True) if details else None,
        )
        notify_router.enqueue(
            [
                {
                    "type": event_type,
                    "severity": severity,
                    "server_id": server_id,
                    "message": message,
                    "details": details,
                    "created_at": event.created_at,
                }
            ]
        )
        return event


def record_many(rows: list[dict[str, Any]]) -> None:
    """Append several events in one INSERT (used by the offline sweep), and queue their
    notifications in the same transaction."""
    if not rows:
        return
    for row in rows:
        row["severity"] = severity_of(row["type"], row.get("severity"))
        log.info(
            row["message"],
            extra={
                "event": row["type"],
                "server_id": row.get("server_id"),
                "severity": row["severity"],
            },
        )
    with write_transaction():
        notify_router.enqueue(rows)  # while `details` are still dicts
        for row in rows:
            if row.get("details") is not None:
                row["details"] = json.dumps(row["details"], sort_keys=True)
        Event.insert_many(rows).execute()


def at_least(severity: str) -> list[str]:
    """The severities as bad as `severity` or worse (EventSeverity lists them mildest first)."""
    names = [value.value for value in EventSeverity]
    return names[names.index(severity) :]


def list_events(
    *,
    server_id: str | None = None,
    event_type: str | None = None,
    severity: str | None = None,
    min_severity: str | None = None,
    since: dt.datetime | None = None,
    limit: int | None = PAGE_LIMIT_DEFAULT,
    offset: int = 0,
) -> tuple[list[Event], int]:
    """A page of events, newest first, with the total count matching the filters.

    `severity` is an exact match, `min_severity` keeps that severity and worse (what someone
    scanning for trouble wants); `since` (naive UTC) keeps the events created at or after it.
    """
    query = filtered(
        Event.select(),
        [(Event.server_id, server_id), (Event.type, event_type), (Event.severity, severity)],
    )
    if min_severity is not None:
        query = query.where(Event.severity.in_(at_least(min_severity)))
    if since is not None:
        query = query.where(Event.created_at >= since)
    return page(query, Event.id.desc(), limit, offset)


def list_server_events(server_id: str, **filters: Any) -> tuple[list[Event], int]:
    """Like `list_events` for one server; NotFound only for a server that never was.

    Events outlive their server: a deleted server's history (which ends with its
    `server_deleted` event) stays readable under its id.
    """
    known = (
        Server.select().where(Server.id == server_id).exists()
        or Event.select().where(Event.server_id == server_id).exists()
    )
    if not known:
        raise NotFound(f"Server '{server_id}' not found")
    return list_events(server_id=server_id, **filters)
