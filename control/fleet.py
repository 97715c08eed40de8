"""The fleet's domain rules: registering servers, taking heartbeats, offline detection, retention.

The API, the scheduler and the CLI all call these functions; none of them touches Flask.
Inputs are already validated by the API's schemas.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee as pw

from control import events
from control.db import db, write_transaction
from control.errors import Conflict, NotFound
from control.events import EventType
from control.models import Event, MetricsSample, Server, ServerStatus, utcnow

OS_FIELDS = {
    "distribution": "os_distribution",
    "version": "os_version",
    "kernel": "kernel_version",
    "architecture": "architecture",
}


def _servers_with_latest():
    """Servers LEFT JOINed to their newest sample: one query however many servers there are."""
    return Server.select(Server, MetricsSample).join(
        MetricsSample,
        pw.JOIN.LEFT_OUTER,
        on=(Server.latest_sample_id == MetricsSample.id),
        attr="latest_sample",
    )


def list_servers(status: str | None = None) -> list[Server]:
    """Every server (optionally only those with `status`), each with `.latest_sample` or None."""
    query = _servers_with_latest().order_by(Server.id)
    if status:
        query = query.where(Server.status == status)
    return list(query)


def get_server(server_id: str) -> Server:
    """One server with its newest sample, or NotFound."""
    server = _servers_with_latest().where(Server.id == server_id).first()
    if server is None:
        raise NotFound(f"Server '{server_id}' not found")
    return server


def register_server(fields: dict[str, Any]) -> Server:
    """Create a server in status `unknown`; Conflict when the id is taken."""
    now = utcnow()
    with write_transaction():
        if Server.select().where(Server.id == fields["id"]).exists():
            raise Conflict(f"Server '{fields['id']}' already exists")
        Server.insert(
            **fields, status=ServerStatus.UNKNOWN, created_at=now, updated_at=now
        ).execute()
        events.record(
            EventType.SERVER_REGISTERED,
            f"server {fields['id']} registered",
            server_id=fields["id"],
            details={"source": "api"},
        )
    return get_server(fields["id"])


def update_server(server_id: str, fields: dict[str, Any]) -> Server:
    """Change the given fields of a server; an empty update returns it unchanged."""
    if fields:
        with write_transaction():
            updated = (
                Server.update(**fields, updated_at=utcnow()).where(Server.id == server_id).execute()
            )
            if not updated:
                raise NotFound(f"Server '{server_id}' not found")
            events.record(
                EventType.SERVER_UPDATED,
                f"server {server_id} updated",
                server_id=server_id,
                details={"fields": sorted(fields)},
            )
    return get_server(server_id)


def delete_server(server_id: str) -> None:
    """Delete a server and its metrics history; its events stay, plus one saying it went."""
    with write_transaction():
        server = Server.get_or_none(Server.id == server_id)
        if server is None:
            raise NotFound(f"Server '{server_id}' not found")
        # Explicit delete as well as ON DELETE CASCADE: correctness must not hang on a pragma.
        MetricsSample.delete().where(MetricsSample.server == server_id).execute()
        server.delete_instance()
        events.record(EventType.SERVER_DELETED, f"server {server_id} deleted", server_id=server_id)


def _register_from_heartbeat(server_id: str, hostname: str, now: dt.datetime) -> bool:
    """Insert a server first seen through its heartbeat; False if another request won the race."""
    try:
        with db.atomic():  # a savepoint, so a lost race leaves the outer transaction usable
            Server.insert(
                id=server_id,
                hostname=hostname,
                status=ServerStatus.ONLINE,
                last_seen=now,
                created_at=now,
                updated_at=now,
            ).execute()
    except pw.IntegrityError:
        return False
    events.record(
        EventType.SERVER_REGISTERED,
        f"server {server_id} registered by heartbeat",
        server_id=server_id,
        details={"source": "heartbeat"},
    )
    return True


def ingest_heartbeat(
    beat: dict[str, Any], remote_address: str | None = None, now: dt.datetime | None = None
) -> bool:
    """Store one heartbeat: register if new, mark online, keep OS info and metrics.

    Returns True when the heartbeat registered the server. `last_seen` is control's receive
    time and only ever moves forward, whatever the agent's clock says.
    """
    now = now or utcnow()
    server_id = beat["server_id"]
    with write_transaction():
        registered = not Server.select().where(
            Server.id == server_id
        ).exists() and _register_from_heartbeat(server_id, beat["hostname"], now)
        changes: dict[Any, Any] = {
            Server.hostname: beat["hostname"],
            Server.status: ServerStatus.ONLINE,
            Server.last_seen: pw.Case(
                None,
                [(Server.last_seen.is_null() | (Server.last_seen < now), now)],
                Server.last_seen,
            ),
        }
        for key, column in OS_FIELDS.items():
            if (beat.get("os_info") or {}).get(key) is not None:
                changes[getattr(Server, column)] = beat["os_info"][key]
        for key in ("agent_version", "metrics_port"):
            if beat.get(key) is not None:
                changes[getattr(Server, key)] = beat[key]
        if remote_address:
            changes[Server.last_seen_address] = remote_address
        if beat.get("metrics") is not None:
            changes[Server.latest_sample_id] = MetricsSample.insert(
                server=server_id, timestamp=beat["timestamp"], received_at=now, **beat["metrics"]
            ).execute()
        if not registered:
            # The conditional update is the status transition: its row count says whether this
            # heartbeat is the one that brought the server back, even under concurrency.
            came_back = (
                Server.update(status=ServerStatus.ONLINE)
                .where((Server.id == server_id) & (Server.status != ServerStatus.ONLINE))
                .execute()
            )
            if came_back:
                events.record(
                    EventType.STATUS_CHANGED,
                    f"server {server_id} is online",
                    server_id=server_id,
                    details={"status": ServerStatus.ONLINE},
                )
        Server.update(changes).where(Server.id == server_id).execute()
    return registered


def mark_offline(offline_after: int, now: dt.datetime | None = None) -> list[str]:
    """Mark online servers silent for more than `offline_after` seconds offline, in one UPDATE.

    Records a status_changed event for each; returns their ids.
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=offline_after)
    with write_transaction():
        rows = (
            Server.update(status=ServerStatus.OFFLINE)
            .where((Server.status == ServerStatus.ONLINE) & (Server.last_seen < cutoff))
            .returning(Server.id)
            .execute()
        )
        ids = sorted(row.id for row in rows)
        events.record_many(
            [
                {
                    "type": EventType.STATUS_CHANGED,
                    "server_id": server_id,
                    "created_at": now,
                    "message": f"server {server_id} is offline (no heartbeat for {offline_after}s)",
                    "details": {"status": ServerStatus.OFFLINE},
                }
                for server_id in ids
            ]
        )
    return ids


def prune_history(retention_days: int, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete metrics samples and events older than the retention period."""
    cutoff = (now or utcnow()) - dt.timedelta(days=retention_days)
    with write_transaction():
        samples = MetricsSample.delete().where(MetricsSample.received_at < cutoff).execute()
        old_events = Event.delete().where(Event.created_at < cutoff).execute()
    return {"samples": samples, "events": old_events}


def count_by_status() -> dict[str, int]:
    """How many servers are in each status (every status present, zero included)."""
    counts = dict.fromkeys(ServerStatus.ALL, 0)
    for status, count in (
        Server.select(Server.status, pw.fn.COUNT(Server.id)).group_by(Server.status).tuples()
    ):
        counts[status] = count
    return counts
