"""Heartbeat ingest: the agent's check-in, the hottest path in control.

Registers a server seen for the first time, marks it online, keeps its OS facts and the latest
device-health facts (containers, services, packages, commit), appends its metrics sample and
judges its health, in three prepared statements (see `HeartbeatSql`). A change of health, or
of a version (commit, agent, OS, kernel), is recorded in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import peewee as pw

from control.db import db, write_transaction
from control.errors import Unauthorized
from control.fleet import events, health, updates
from control.fleet.events import EventType
from control.fleet.health import Facts, Thresholds
from control.fleet.heartbeat_sql import (
    LATEST_JSON,
    OS_FIELDS,
    SAMPLE_FACTS,
    HeartbeatSql,
    Stored,
    sql_for_bound_database,
)
from control.models import METRIC_FIELDS, MetricsSample, Server, ServerStatus, UpdateKind, utcnow

_encode = msgspec.json.Encoder().encode

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


@dataclass(frozen=True)
class IngestRules:
    """The settings ingest judges by: health thresholds, and when an update's check is due."""

    limits: Thresholds = field(default_factory=Thresholds)
    update_check_after: int = 300  # seconds

    @classmethod
    def from_settings(cls, settings: Any) -> IngestRules:
        """The rules configured in control's Settings (`HOMELAB_HEALTH_*`, `..._CHECK_AFTER`)."""
        return cls(Thresholds.from_settings(settings), settings.update_check_after)


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


def ingest_heartbeat(
    beat: dict[str, Any],
    remote_address: str | None = None,
    now: dt.datetime | None = None,
    rules: IngestRules | None = None,
    key_hash: str | None = None,
) -> bool:
    """Store one heartbeat: register if new, mark online, keep its facts, judge its health.

    Returns True when the heartbeat registered the server. `last_seen` is control's receive
    time and only ever moves forward, whatever the agent's clock says. A field the heartbeat
    omits keeps the stored value. Three statements in the usual case (read the server row,
    append the sample, update the row); a change of health or of a version adds its records.

    `key_hash`: the stored key the heartbeat came with, found still active by the first
    statement before anything is written (Unauthorized if not), since the caller may have
    found it in memory (`KeyRing.resolve_verified`).
    """
    with write_transaction():
        return write_heartbeat(beat, remote_address, now, rules, key_hash)


def write_heartbeat(
    beat: dict[str, Any],
    remote_address: str | None = None,
    now: dt.datetime | None = None,
    rules: IngestRules | None = None,
    key_hash: str | None = None,
) -> bool:
    """`ingest_heartbeat`'s writes, for a caller already in a write transaction.

    The group commit runs many of these in one transaction (a savepoint each would cost two
    statements more per heartbeat; a failed batch is retried one heartbeat at a time).
    """
    now = now or utcnow()
    rules = rules or IngestRules()
    server_id = beat["server_id"]
    sql = sql_for_bound_database()
    # peewee's bundled stubs leave Field.db_value unannotated (here and below).
    stamp = Server.last_seen.db_value(now)  # type: ignore[no-untyped-call]
    os_info = beat.get("os_info") or {}
    metrics = beat.get("metrics")
    # The row lock (PostgreSQL) or the write lock (SQLite) makes this read the truth until
    # commit, so exactly one heartbeat sees the server offline and records its return, and
    # one sees each change of health or version.
    if key_hash is None:
        row = db.execute_sql(sql.select_server, (server_id,)).fetchone()
    else:
        row = _check_key(sql, key_hash, server_id)
    registered = False
    if row is None:
        registered = _register_from_heartbeat(server_id, beat["hostname"], now, remote_address)
        # Ours, or that of the request that beat us to it.
        row = db.execute_sql(sql.select_server, (server_id,)).fetchone()
    stored = Stored._make(row)
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
    verdict = health.judge(_facts(beat, stored, sql), rules.limits)
    changed = verdict.health != stored.health
    values = [
        beat["hostname"],
        stamp,
        stamp,
        *(os_info.get(key) for key in OS_FIELDS),
        beat.get("agent_version"),
        beat.get("metrics_port"),
        remote_address or None,
        sample_id,
        beat.get("commit_hash"),
        *(_changed_json(beat.get(key), getattr(stored, key)) for key in LATEST_JSON),
        health.dump_reasons(verdict.reasons),
    ]
    if changed or stored.status != ServerStatus.ONLINE:
        values += [ServerStatus.ONLINE, verdict.health, stamp if changed else None]
        db.execute_sql(sql.update_server_changed, (*values, server_id))
    else:
        db.execute_sql(sql.update_server, (*values, server_id))
    if stored.status != ServerStatus.ONLINE:
        events.record(
            EventType.STATUS_CHANGED,
            f"server {server_id} is online",
            server_id=server_id,
            details={"status": ServerStatus.ONLINE},
        )
    if changed:
        health.record_change(server_id, stored.health, verdict, now)
    changes = _version_changes(beat, os_info, stored)
    if changes:
        updates.record_changes(server_id, changes, now, rules.update_check_after)
    return registered


def _check_key(sql: HeartbeatSql, key_hash: str, server_id: str) -> tuple[Any, ...] | None:
    """The server's row (None: not registered) once the stored key is found still active."""
    found: tuple[Any, ...] | None = db.execute_sql(
        sql.select_server_keyed, (key_hash, server_id)
    ).fetchone()
    if found is None:
        active = db.execute_sql(sql.select_key, (key_hash,)).fetchone() is not None
    else:
        active, found = bool(found[-1]), found[:-1]
    if not active:
        raise Unauthorized("Missing or invalid API key")
    return found


def _changed_json(reported: Any, stored: str | None) -> str | None:
    """The JSON text to store for a reported fact; None (keep the column) when omitted or equal.

    Compared as text, so an unchanged container list costs one encode and no write.
    """
    if reported is None:
        return None
    text = _encode(reported).decode()
    return None if text == stored else text


def _facts(beat: Mapping[str, Any], stored: Stored, sql: HeartbeatSql) -> Facts:
    """What this heartbeat's health is judged from: its own facts, the stored ones it omits."""
    metrics = beat.get("metrics")
    if metrics is None and stored.latest_sample_id is not None:
        row = db.execute_sql(sql.select_sample, (stored.latest_sample_id,)).fetchone()
        metrics = dict(zip(SAMPLE_FACTS, row, strict=True)) if row else None
    metrics = metrics or {}
    containers, services = beat.get("containers"), beat.get("services")
    # Stored JSON is parsed only when the heartbeat leaves a list out (agents without Docker
    # or watched units send neither, and then there is nothing stored either).
    if containers is None and stored.containers:
        containers = msgspec.json.decode(stored.containers)
    if services is None and stored.services:
        services = msgspec.json.decode(stored.services)
    return Facts(
        status=ServerStatus.ONLINE,
        temperature=metrics.get("temperature"),
        disk_percent=metrics.get("disk_percent"),
        memory_percent=metrics.get("memory_percent"),
        containers=containers,
        services=services,
        commit_hash=beat.get("commit_hash") or stored.current_commit_hash,
        version_lock=stored.version_lock,
        manual_health=stored.manual_health,
        manual_reason=stored.manual_health_reason,
        manual_by=stored.manual_health_by,
    )


def _version_changes(
    beat: Mapping[str, Any], os_info: Mapping[str, Any], stored: Stored
) -> list[tuple[UpdateKind, str, str]]:
    """(kind, from, to) of every version this heartbeat changed; a first report is no change."""
    reported = (
        (UpdateKind.COMMIT, stored.current_commit_hash, beat.get("commit_hash")),
        (UpdateKind.AGENT, stored.agent_version, beat.get("agent_version")),
        (UpdateKind.OS, stored.os_version, os_info.get("version")),
        (UpdateKind.KERNEL, stored.kernel_version, os_info.get("kernel")),
    )
    return [
        (kind, old, new)
        for kind, old, new in reported
        if old is not None and new is not None and old != new
    ]
