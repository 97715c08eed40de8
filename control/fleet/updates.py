"""Update records (seed 002's DeviceUpdate): version changes heartbeats reveal, and their checks.

A change of commit, agent version, OS version or kernel between two heartbeats is one
`ServerUpdate`, pending until its post-update health check (`check_due_updates`, a step of the
scheduler's offline tick) reads the server's health: healthy → success, anything else →
failed with the reasons. A later change back to the `from_version` of that kind's most recent
update marks that update rolled back, whatever its check said; a rollback before the check
(still pending) is never checked: it stays `health_check_passed` null, since the version it
would vouch for is no longer running.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

import peewee as pw

from control.db import write_transaction
from control.fleet import events
from control.fleet.events import EventType
from control.fleet.health import load_reasons
from control.models import (
    Server,
    ServerHealth,
    ServerUpdate,
    UpdateKind,
    UpdateStatus,
    utcnow,
)
from control.queries import get_or_404, page

# Checks one tick settles at most; the rest wait for the next tick (bounded transactions).
CHECK_BATCH = 1000


class _Due(NamedTuple):
    """A pending update whose check is due, with its server's stored health (None: deleted)."""

    id: int
    server_id: str
    kind: str
    from_version: str
    to_version: str
    health: str | None
    health_reasons: str | None


def list_updates(
    server_id: str, *, limit: int | None, offset: int = 0
) -> tuple[list[ServerUpdate], int]:
    """A page of a server's update records, newest first, and their total; NotFound if none."""
    get_or_404(Server, server_id, f"Server '{server_id}'")
    query = ServerUpdate.select().where(ServerUpdate.server_id == server_id)
    return page(query, ServerUpdate.id.desc(), limit, offset)


def _short(kind: str, version: str) -> str:
    """A version as a reason or message shows it: a commit by its first 7 digits."""
    return version[:7] if kind == UpdateKind.COMMIT else version


def record_changes(
    server_id: str,
    changes: Sequence[tuple[UpdateKind, str, str]],
    now: dt.datetime,
    check_after: int,
) -> None:
    """Record the version changes one heartbeat revealed (inside its transaction).

    Each (kind, from, to) is a new pending update due for its check `check_after` seconds
    from `now`, or, when `to` is the `from_version` of that kind's most recent update not yet
    rolled back, that update's rollback.
    """
    for kind, old, new in changes:
        latest = (
            ServerUpdate.select()
            .where((ServerUpdate.server_id == server_id) & (ServerUpdate.kind == kind))
            .order_by(ServerUpdate.id.desc())
            .first()
        )
        if (
            latest is not None
            and latest.update_status != UpdateStatus.ROLLED_BACK
            and latest.from_version == new
        ):
            _roll_back(latest, old, now)
        else:
            _detect(server_id, kind, old, new, now, check_after)


def _detect(
    server_id: str, kind: str, old: str, new: str, now: dt.datetime, check_after: int
) -> None:
    update = ServerUpdate.create(
        server_id=server_id,
        kind=kind,
        from_version=old,
        to_version=new,
        detected_at=now,
        check_due_at=now + dt.timedelta(seconds=check_after),
        update_status=UpdateStatus.PENDING,
    )
    events.record(
        EventType.UPDATE_DETECTED,
        f"server {server_id}: {kind} {_short(kind, old)} → {_short(kind, new)}",
        server_id=server_id,
        details={"update_id": update.id, "kind": kind, "from": old, "to": new},
        created_at=now,
    )


def _roll_back(update: ServerUpdate, running: str, now: dt.datetime) -> None:
    kind, old = update.kind, update.from_version
    ServerUpdate.update(update_status=UpdateStatus.ROLLED_BACK).where(
        ServerUpdate.id == update.id
    ).execute()
    events.record(
        EventType.UPDATE_ROLLED_BACK,
        f"server {update.server_id}: {kind} rolled back from {_short(kind, running)} "
        f"to {_short(kind, old)}",
        server_id=update.server_id,
        details={
            "update_id": update.id,
            "kind": kind,
            "from": running,
            "to": old,
            "was": update.update_status,
        },
        created_at=now,
    )


def check_due_updates(now: dt.datetime | None = None, batch: int = CHECK_BATCH) -> list[int]:
    """Settle the pending updates whose check is due, from their server's health; their ids.

    Healthy → success (`update_succeeded`, info); anything else (degraded, failed, offline,
    unknown, or the server deleted) → failed with the health's reasons as `error_message`
    (`update_failed`, error). The health read is the one every heartbeat and offline tick keep.
    """
    now = now or utcnow()
    with write_transaction():
        query = (
            ServerUpdate.select(
                ServerUpdate.id,
                ServerUpdate.server_id,
                ServerUpdate.kind,
                ServerUpdate.from_version,
                ServerUpdate.to_version,
                Server.health,
                Server.health_reasons,
            )
            .join(Server, pw.JOIN.LEFT_OUTER, on=(ServerUpdate.server_id == Server.id))
            .where(
                (ServerUpdate.update_status == UpdateStatus.PENDING)
                & (ServerUpdate.check_due_at <= now)
            )
            .order_by(ServerUpdate.id)
            .limit(batch)
        )
        # .tuples() yields plain rows; peewee's stubs keep the row type as the model.
        due = [_Due._make(row) for row in cast(Iterable[tuple[Any, ...]], query.tuples())]
        if not due:
            return []
        passed = [u.id for u in due if u.health == ServerHealth.HEALTHY]
        failures: dict[str, list[int]] = {}
        for update in due:
            if update.health != ServerHealth.HEALTHY:
                failures.setdefault(_failure(update.health, update.health_reasons), []).append(
                    update.id
                )
        settled = _settle(passed, True, None, now)
        for message, ids in failures.items():
            settled |= _settle(ids, False, message, now)
        events.record_many([_outcome_event(u, now) for u in due if u.id in settled])
    return sorted(settled)


def _failure(health: str | None, reasons: str | None) -> str:
    """Why a check failed, in the words of the server's health reasons."""
    if health is None:
        return "the server was deleted"
    return "; ".join(load_reasons(reasons)) or f"health {health}"


def _settle(ids: list[int], passed: bool, message: str | None, now: dt.datetime) -> set[int]:
    """Write one outcome on the updates `ids` that are still pending; the ids written."""
    if not ids:
        return set()
    rows = (
        ServerUpdate.update(
            update_status=UpdateStatus.SUCCESS if passed else UpdateStatus.FAILED,
            health_check_passed=passed,
            error_message=message,
            checked_at=now,
        )
        # Still pending: a heartbeat may have rolled it back since it was read.
        .where(ServerUpdate.id.in_(ids) & (ServerUpdate.update_status == UpdateStatus.PENDING))
        .returning(ServerUpdate.id)
        .execute()
    )
    return {row.id for row in rows}


def _outcome_event(update: _Due, now: dt.datetime) -> dict[str, Any]:
    kind = update.kind
    change = f"{kind} {_short(kind, update.from_version)} → {_short(kind, update.to_version)}"
    details = {
        "update_id": update.id,
        "kind": kind,
        "from": update.from_version,
        "to": update.to_version,
    }
    if update.health == ServerHealth.HEALTHY:
        return {
            "type": EventType.UPDATE_SUCCEEDED,
            "server_id": update.server_id,
            "created_at": now,
            "message": f"server {update.server_id}: {change} passed its health check",
            "details": details,
        }
    reason = _failure(update.health, update.health_reasons)
    return {
        "type": EventType.UPDATE_FAILED,
        "server_id": update.server_id,
        "created_at": now,
        "message": f"server {update.server_id}: {change} failed its health check: {reason}",
        "details": {**details, "health": update.health, "error": reason},
    }
