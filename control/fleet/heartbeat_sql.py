"""The SQL of the heartbeat hot path (control.fleet.heartbeats), rendered once per dialect."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import peewee as pw

from control.db import db, is_sqlite
from control.keys import active_key_sql
from control.models import METRIC_FIELDS, MetricsSample, Server

OS_FIELDS = {
    "distribution": "os_distribution",
    "version": "os_version",
    "kernel": "kernel_version",
    "architecture": "architecture",
}

# The latest device-health facts kept on the server row as JSON: heartbeat field → column.
LATEST_JSON = ("containers", "services", "packages")
# What health is judged from when a heartbeat carries no metrics: its server's latest sample.
SAMPLE_FACTS = ("temperature", "disk_percent", "memory_percent")


class Stored(NamedTuple):
    """What a heartbeat reads of its server row (under the row lock), in `select_server` order."""

    status: str
    health: str
    health_reasons: str | None
    current_commit_hash: str | None
    agent_version: str | None
    os_version: str | None
    kernel_version: str | None
    containers: str | None
    services: str | None
    packages: str | None
    version_lock: str | None
    manual_health: str | None
    manual_health_reason: str | None
    manual_health_by: str | None
    latest_sample_id: int | None


@dataclass(frozen=True)
class HeartbeatSql:
    """The statements of the heartbeat hot path, rendered once per database dialect.

    Building each statement with peewee's query builder cost more CPU than running it (about
    half of a heartbeat's time, profiled), so the hot path renders the SQL text once from the
    models' own table and column names and then only binds parameters. Three run per usual
    heartbeat; `select_sample` only for one without metrics, to judge its health.
    `select_server_keyed` also says whether the heartbeat's stored key is still active (its
    last column), so a key answered from memory (`KeyRing.resolve_verified`) is checked in the
    transaction at no extra statement; `select_key` checks it alone, for a server not yet
    registered.

    `update_server` leaves the indexed `status` and `health` columns alone: assigning one, even
    its own value, makes SQLite rewrite its index entries, and the usual heartbeat changes
    neither. `update_server_changed` also sets them, for the heartbeat that does.
    """

    select_server: str
    # The same, with the stored key's check first: (key hash, server id) → row + key_active.
    select_server_keyed: str
    select_key: str
    select_sample: str
    insert_sample: str
    update_server: str
    update_server_changed: str


@functools.lru_cache(maxsize=4)
def heartbeat_sql(param: str, quote: str, lock_row: bool) -> HeartbeatSql:
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
        Server.current_commit_hash,
        # The JSON columns are written only when they changed (the caller binds NULL else).
        *(getattr(Server, column) for column in LATEST_JSON),
    ]
    assignments = [f"{name(Server.hostname)} = {param}"]
    last_seen = name(Server.last_seen)
    # last_seen only moves forward, whatever order concurrent heartbeats commit in.
    assignments.append(
        f"{last_seen} = CASE WHEN {last_seen} IS NULL OR {last_seen} < {param} "
        f"THEN {param} ELSE {last_seen} END"
    )
    # A value the heartbeat did not carry (NULL) keeps what the server row had.
    assignments += [f"{name(c)} = COALESCE({param}, {name(c)})" for c in keep_if_null]
    assignments.append(f"{name(Server.health_reasons)} = {param}")
    # The version GET /servers' cache keys on (control.migrations), bumped here rather than
    # by SQLite's trigger, whose guard then skips its second UPDATE of the row: ~10 µs of the
    # writer per heartbeat. PostgreSQL's trigger sets the same value before the write.
    version = name(Server.row_version)
    assignments.append(f"{version} = {version} + 1")
    # The caller binds the values in this order, then these three for update_server_changed,
    # then the server id.
    changed = [
        f"{name(Server.status)} = {param}",
        f"{name(Server.health)} = {param}",
        f"{name(Server.health_changed_at)} = COALESCE({param}, {name(Server.health_changed_at)})",
    ]
    # Identifiers come from the models and every value is a bound parameter, so the string
    # building below (ruff S608) carries no client input.
    server, sample = name(Server), name(MetricsSample)
    where_id = f"WHERE {name(Server.id)} = {param}"
    lock = " FOR UPDATE" if lock_row else ""
    columns = ", ".join(name(c) for c in sample_columns)
    params = ", ".join([param] * len(sample_columns))
    returning = f"RETURNING {name(MetricsSample.id)}"
    stored = ", ".join(name(getattr(Server, column)) for column in Stored._fields)
    facts = ", ".join(name(getattr(MetricsSample, column)) for column in SAMPLE_FACTS)
    select = f"SELECT {stored} FROM {server} {where_id}{lock}"  # noqa: S608
    active_key = active_key_sql(param, quote)
    select_keyed = f"SELECT {stored}, EXISTS({active_key}) FROM {server} {where_id}{lock}"  # noqa: S608
    select_sample = f"SELECT {facts} FROM {sample} WHERE {name(MetricsSample.id)} = {param}"  # noqa: S608
    insert = f"INSERT INTO {sample} ({columns}) VALUES ({params}) {returning}"  # noqa: S608
    update = f"UPDATE {server} SET {', '.join(assignments)} {where_id}"  # noqa: S608
    update_changed = f"UPDATE {server} SET {', '.join(assignments + changed)} {where_id}"  # noqa: S608
    return HeartbeatSql(
        select_server=select,
        select_server_keyed=select_keyed,
        select_key=active_key,
        select_sample=select_sample,
        insert_sample=insert,
        update_server=update,
        update_server_changed=update_changed,
    )


def sql_for_bound_database() -> HeartbeatSql:
    """The hot-path SQL for the database control is bound to."""
    database = db.obj
    # SQLite needs no row lock: write_transaction() holds the database's only write lock.
    return heartbeat_sql(database.param, database.quote, not is_sqlite())
