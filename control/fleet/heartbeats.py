"""Heartbeat ingest: the agent's check-in, the hottest path in control.

Registers a server seen for the first time, marks it online, keeps its OS facts and appends
its metrics sample, in three prepared statements (see `_HeartbeatSql`).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import peewee as pw

from control.db import db, is_sqlite, write_transaction
from control.fleet import events
from control.fleet.events import EventType
from control.models import METRIC_FIELDS, MetricsSample, Server, ServerStatus, utcnow

OS_FIELDS = {
    "distribution": "os_distribution",
    "version": "os_version",
    "kernel": "kernel_version",
    "architecture": "architecture",
}

# A sample keeps the agent's own clock (`timestamp`) unless that clock is further than this
# from control's: a box whose RTC reset to 1970 or 2000, or that claims the year 9999, says
# nothing about when the sample was taken, so the receive time stands in for it.
MAX_CLOCK_SKEW = dt.timedelta(days=3653)  # ten years


def sample_time(agent_clock: dt.datetime | None, received: dt.datetime) -> dt.datetime:
    """When a sample was taken: the agent's clock (naive UTC) unless it is absurd.

    `None` is a time the agent sent that is no instant (the heartbeat schema's reading of e.g.
    `9999-12-31T23:59:59-05:00`, which leaves the calendar in UTC). That, and a clock more
    than MAX_CLOCK_SKEW away from `received`, give `received`: a wild clock is not an error.
    """
    if agent_clock is None or abs(agent_clock - received) > MAX_CLOCK_SKEW:
        return received
    return agent_clock


def _register_from_heartbeat(
    server_id: str, hostname: str, now: dt.datetime, remote_address: str | None = None
) -> bool:
    """Insert a server first seen through its heartbeat; False if another request won the race."""
    try:
        with db.atomic():  # a savepoint, so a lost race leaves the outer transaction usable
            Server.insert(
                id=server_id,
                hostname=hostname,
                # Where it really connected from, not the name it claims (see the model).
                ssh_address=remote_address or hostname,
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

    def name(node: pw.Field[Any] | type[pw.Model]) -> str:
        text = node._meta.table_name if isinstance(node, type) else node.column_name
        return f"{quote[0]}{text}{quote[1]}"

    sample_columns: list[pw.Field[Any]] = [
        MetricsSample.server,
        MetricsSample.timestamp,
        MetricsSample.received_at,
    ]
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
    # peewee's bundled stubs leave Field.db_value unannotated (here and below).
    stamp = Server.last_seen.db_value(now)  # type: ignore[no-untyped-call]
    os_info = beat.get("os_info") or {}
    metrics = beat.get("metrics")
    with write_transaction():
        # The row lock (PostgreSQL) or the write lock (SQLite) makes this read the truth until
        # commit, so exactly one heartbeat sees the server offline and records its return.
        row = db.execute_sql(sql.select_status, (server_id,)).fetchone()
        registered = False
        previous = row[0] if row else None
        if row is None:
            registered = _register_from_heartbeat(server_id, beat["hostname"], now, remote_address)
            previous = ServerStatus.ONLINE  # we, or the request that beat us, registered it
        sample_id = None
        if metrics is not None:
            taken = sample_time(beat["timestamp"], now)
            values = [
                server_id,
                MetricsSample.timestamp.db_value(taken),  # type: ignore[no-untyped-call]
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
