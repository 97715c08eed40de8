"""The fleet's domain rules: registering servers, taking heartbeats, offline detection, retention.

The API, the scheduler and the CLI all call these functions; none of them touches Flask.
Inputs are already validated by the API's schemas.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import peewee as pw

from control import events
from control.db import db, is_sqlite, write_transaction
from control.errors import Conflict, NotFound
from control.events import EventType
from control.models import METRIC_FIELDS, Event, MetricsSample, Server, ServerStatus, utcnow

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


SERVER_LIST_COLUMNS = (
    "id", "hostname", "display_name", "ip_address", "status", "tdp_watts", "ssh_port",
    "ssh_user", "os_distribution", "os_version", "kernel_version", "architecture",
    "agent_version", "metrics_port", "tags", "is_paused", "paused_at", "last_seen",
    "created_at", "updated_at",
)  # fmt: skip
SAMPLE_LIST_COLUMNS = ("id", "timestamp", "received_at", *METRIC_FIELDS)


def list_server_rows(status: str | None = None) -> list[tuple]:
    """Like `list_servers`, as raw database rows: the columns of SERVER_LIST_COLUMNS then
    SAMPLE_LIST_COLUMNS, unconverted (booleans may be 0/1), times as text in both databases
    (`YYYY-MM-DD HH:MM:SS[.ffffff]`).

    For the list endpoint: with 10,000 servers, peewee's and psycopg2's per-value conversions
    (datetimes above all) cost more than the query itself.
    """

    def column(model, name):
        field = getattr(model, name)
        return field.cast("text") if isinstance(field, pw.DateTimeField) else field

    columns = [column(Server, name) for name in SERVER_LIST_COLUMNS]
    columns += [column(MetricsSample, name) for name in SAMPLE_LIST_COLUMNS]
    query = (
        Server.select(*columns)
        .join(MetricsSample, pw.JOIN.LEFT_OUTER, on=(Server.latest_sample_id == MetricsSample.id))
        .order_by(Server.id)
    )
    if status:
        query = query.where(Server.status == status)
    return db.execute_sql(*query.sql()).fetchall()


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


@dataclass(frozen=True)
class _HeartbeatSql:
    """The three statements of the heartbeat hot path, rendered once per database dialect.

    Building each statement with peewee's query builder cost more CPU than running it (about
    half of a heartbeat's time, profiled), so the hot path renders the SQL text once from the
    models' own table and column names and then only binds parameters.
    """

    select_status: str
    insert_sample: str
    update_server: str


@functools.lru_cache(maxsize=4)
def _heartbeat_sql(param: str, quote: str, lock_row: bool) -> _HeartbeatSql:
    """The hot-path SQL for a database using `param` placeholders and `quote` identifiers."""

    def name(node: Any) -> str:
        text = node._meta.table_name if isinstance(node, type) else node.column_name
        return f"{quote[0]}{text}{quote[1]}"

    sample_columns = [MetricsSample.server, MetricsSample.timestamp, MetricsSample.received_at]
    sample_columns += [getattr(MetricsSample, field) for field in METRIC_FIELDS]
    keep_if_null = [getattr(Server, column) for column in OS_FIELDS.values()]
    keep_if_null += [
        Server.agent_version,
        Server.metrics_port,
        Server.last_seen_address,
        Server.latest_sample_id,
    ]
    assignments = [f"{name(Server.hostname)} = {param}", f"{name(Server.status)} = {param}"]
    last_seen = name(Server.last_seen)
    # last_seen only moves forward, whatever order concurrent heartbeats commit in.
    assignments.append(
        f"{last_seen} = CASE WHEN {last_seen} IS NULL OR {last_seen} < {param} "
        f"THEN {param} ELSE {last_seen} END"
    )
    # A value the heartbeat did not carry (NULL) keeps what the server row had.
    assignments += [f"{name(c)} = COALESCE({param}, {name(c)})" for c in keep_if_null]
    # Identifiers come from the models and every value is a bound parameter, so the string
    # building below (ruff S608) carries no client input.
    server, sample = name(Server), name(MetricsSample)
    where_id = f"WHERE {name(Server.id)} = {param}"
    lock = " FOR UPDATE" if lock_row else ""
    columns = ", ".join(name(c) for c in sample_columns)
    params = ", ".join([param] * len(sample_columns))
    returning = f"RETURNING {name(MetricsSample.id)}"
    select = f"SELECT {name(Server.status)} FROM {server} {where_id}{lock}"  # noqa: S608
    insert = f"INSERT INTO {sample} ({columns}) VALUES ({params}) {returning}"  # noqa: S608
    update = f"UPDATE {server} SET {', '.join(assignments)} {where_id}"  # noqa: S608
    return _HeartbeatSql(select_status=select, insert_sample=insert, update_server=update)


def _sql_for_bound_database() -> _HeartbeatSql:
    database = db.obj
    # SQLite needs no row lock: write_transaction() holds the database's only write lock.
    return _heartbeat_sql(database.param, database.quote, not is_sqlite())


def ingest_heartbeat(
    beat: dict[str, Any], remote_address: str | None = None, now: dt.datetime | None = None
) -> bool:
    """Store one heartbeat: register if new, mark online, keep OS info and metrics.

    Returns True when the heartbeat registered the server. `last_seen` is control's receive
    time and only ever moves forward, whatever the agent's clock says. Three statements in
    the usual case (read status, append the sample, update the server row).
    """
    now = now or utcnow()
    server_id = beat["server_id"]
    sql = _sql_for_bound_database()
    stamp = Server.last_seen.db_value(now)
    os_info = beat.get("os_info") or {}
    metrics = beat.get("metrics")
    with write_transaction():
        # The row lock (PostgreSQL) or the write lock (SQLite) makes this read the truth until
        # commit, so exactly one heartbeat sees the server offline and records its return.
        row = db.execute_sql(sql.select_status, (server_id,)).fetchone()
        registered = False
        previous = row[0] if row else None
        if row is None:
            registered = _register_from_heartbeat(server_id, beat["hostname"], now)
            previous = ServerStatus.ONLINE  # we, or the request that beat us, registered it
        sample_id = None
        if metrics is not None:
            values = [
                server_id,
                MetricsSample.timestamp.db_value(beat["timestamp"]),
                stamp,
                *(metrics.get(field) for field in METRIC_FIELDS),
            ]
            sample_id = db.execute_sql(sql.insert_sample, values).fetchone()[0]
        db.execute_sql(
            sql.update_server,
            (
                beat["hostname"],
                ServerStatus.ONLINE,
                stamp,
                stamp,
                *(os_info.get(key) for key in OS_FIELDS),
                beat.get("agent_version"),
                beat.get("metrics_port"),
                remote_address or None,
                sample_id,
                server_id,
            ),
        )
        if previous != ServerStatus.ONLINE:
            events.record(
                EventType.STATUS_CHANGED,
                f"server {server_id} is online",
                server_id=server_id,
                details={"status": ServerStatus.ONLINE},
            )
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


# Samples younger than this are all kept; older ones are thinned to one per server per hour.
FULL_RESOLUTION = dt.timedelta(hours=24)
# How far back each (hourly) thinning pass looks. Narrow on purpose: each pass then touches about
# one hour of samples, so it holds SQLite's write lock briefly even for a large fleet. Samples
# from hours the scheduler was down longer than this stay unthinned until retention drops them.
THINNING_WINDOW = dt.timedelta(hours=26)


def thin_history(now: dt.datetime | None = None) -> int:
    """Keep the first sample of each server-hour for samples older than a day; drop the rest.

    A month of 60 s heartbeats is then 1,440 + 29 x 24 rows per server instead of 43,200.
    Each server's newest sample (its `latest_metrics`) is always kept. Long-term, fine-grained
    history is Prometheus's job; control keeps enough to chart a month by the hour.
    """
    now = now or utcnow()
    upper, lower = now - FULL_RESOLUTION, now - THINNING_WINDOW
    received = MetricsSample.received_at
    # Stored times sort as text on SQLite; the first 13 characters are the hour.
    hour = pw.fn.substr(received, 1, 13) if is_sqlite() else pw.fn.date_trunc("hour", received)
    in_window = (received >= lower) & (received < upper)
    first_of_hour = (
        MetricsSample.select(pw.fn.MIN(MetricsSample.id))
        .where(in_window)
        .group_by(MetricsSample.server, hour)
    )
    latest = Server.select(Server.latest_sample_id).where(Server.latest_sample_id.is_null(False))
    with write_transaction():
        return (
            MetricsSample.delete()
            .where(
                in_window & MetricsSample.id.not_in(first_of_hour) & MetricsSample.id.not_in(latest)
            )
            .execute()
        )


def prune_history(retention_days: int, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete samples and events older than the retention period; thin samples past a day."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=retention_days)
    with write_transaction():
        samples = MetricsSample.delete().where(MetricsSample.received_at < cutoff).execute()
        old_events = Event.delete().where(Event.created_at < cutoff).execute()
    return {"samples": samples, "events": old_events, "thinned": thin_history(now)}


def count_by_status() -> dict[str, int]:
    """How many servers are in each status (every status present, zero included)."""
    counts = dict.fromkeys(ServerStatus.ALL, 0)
    for status, count in (
        Server.select(Server.status, pw.fn.COUNT(Server.id)).group_by(Server.status).tuples()
    ):
        counts[status] = count
    return counts
