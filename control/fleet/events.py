"""The event log: registration, status changes and (later) action lifecycle, one row each."""

from __future__ import annotations

import enum
import json
import logging
from typing import Any

from control.bounds import PAGE_LIMIT_DEFAULT
from control.db import write_transaction
from control.models import Event
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


def record(
    event_type: str,
    message: str,
    server_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> Event:
    """Append one event (inside the caller's transaction, if any) and log it as one line."""
    log.info(message, extra={"event": event_type, "server_id": server_id})
    # A savepoint inside the caller's transaction; on its own, a write that queues on SQLite's
    # in-process writer lock like every other write (see control.db).
    with write_transaction():
        return Event.create(
            type=event_type,
            message=message,
            server_id=server_id,
            details=json.dumps(details, sort_keys=True) if details else None,
        )


def record_many(rows: list[dict[str, Any]]) -> None:
    """Append several events in one INSERT (used by the offline sweep)."""
    if not rows:
        return
    for row in rows:
        log.info(row["message"], extra={"event": row["type"], "server_id": row.get("server_id")})
        if row.get("details") is not None:
            row["details"] = json.dumps(row["details"], sort_keys=True)
    with write_transaction():
        Event.insert_many(rows).execute()


def list_events(
    *,
    server_id: str | None = None,
    event_type: str | None = None,
    limit: int | None = PAGE_LIMIT_DEFAULT,
    offset: int = 0,
) -> tuple[list[Event], int]:
    """A page of events, newest first, with the total count matching the filters."""
    query = filtered(Event.select(), [(Event.server_id, server_id), (Event.type, event_type)])
    return page(query, Event.id.desc(), limit, offset)
