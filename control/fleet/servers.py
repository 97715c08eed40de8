"""Servers: registering, listing, reading, updating and deleting them (seed 000).

Inputs are already validated by the API's schemas; nothing here touches Flask.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import peewee as pw

from control.db import db, is_sqlite, write_transaction
from control.errors import Conflict, NotFound
from control.fleet import events, health
from control.fleet.events import EventType
from control.fleet.health import Thresholds
from control.models import (
    METRIC_FIELDS,
    Action,
    ActionStatus,
    ApiKey,
    MetricsSample,
    Server,
    ServerStatus,
    utcnow,
)
from control.queries import count_by, filtered, get_or_404

SERVER_DELETED = "server deleted before the action ran"


def _servers_with_latest() -> pw.ModelSelect[Server]:
    """Servers LEFT JOINed to their newest sample: one query however many servers there are."""
    return Server.select(Server, MetricsSample).join(
        MetricsSample,
        pw.JOIN.LEFT_OUTER,
        on=(Server.latest_sample_id == MetricsSample.id),
        attr="latest_sample",
    )


def list_servers() -> list[Server]:
    """Every server, in id order, each with `.latest_sample` or None."""
    return list(_servers_with_latest().order_by(Server.id))


def stored_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Server fields as the table keeps them: `tags` as a sorted JSON list, NULL for none,
    `metadata` as compact JSON (the client's key order kept), and an operator-given
    `hostname` also as the SSH address (heartbeats never change that one).

    The tag filter of `list_server_rows` relies on this form (each name quoted).
    """
    stored = dict(fields)
    if "hostname" in stored:  # the operator's name for the box is where SSH goes
        stored["ssh_address"] = stored["hostname"]
    if "tags" in stored:
        tags = stored["tags"]
        stored["tags"] = json.dumps(sorted(tags)) if tags else None
    if stored.get("metadata") is not None:
        stored["metadata"] = json.dumps(
            stored["metadata"], ensure_ascii=False, separators=(",", ":")
        )
    return stored


def _filtered(
    query: pw.ModelSelect[Server],
    status: str | None = None,
    tag: str | None = None,
    health: str | None = None,
    role: str | None = None,
    segment: str | None = None,
) -> pw.ModelSelect[Server]:
    """`query` narrowed to servers matching every filter given (None: not filtered on)."""
    query = filtered(
        query,
        [
            (Server.status, status),
            (Server.health, health),
            (Server.role, role),
            (Server.segment, segment),
        ],
    )
    if tag is not None:
        # Tags are stored as a JSON list of names that cannot contain a quote, so `"name"` is
        # found exactly; a substring search, because LIKE would read `_` as a wildcard.
        find = (
            pw.fn.instr(Server.tags, f'"{tag}"')
            if is_sqlite()
            else pw.fn.strpos(Server.tags, f'"{tag}"')
        )
        query = query.where(find > 0)
    return query


# Everything but the containers and services lists (up to 500 and 256 items a server: the
# list of 10,000 servers would run to hundreds of megabytes); GET /servers/{id} has them.
# `row_version` last: not shown, it tells the list's cache whether the row changed.
SERVER_LIST_COLUMNS = (
    "id", "hostname", "display_name", "ip_address", "status", "tdp_watts", "ssh_port",
    "ssh_user", "ssh_address", "os_distribution", "os_version", "kernel_version", "architecture",
    "agent_version", "metrics_port", "tags", "is_paused", "paused_at", "last_seen",
    "created_at", "updated_at", "role", "branch", "segment", "update_enabled", "version_lock",
    "metadata", "current_commit_hash", "packages", "health", "health_reasons",
    "health_changed_at", "manual_health", "manual_health_reason", "manual_health_by",
    "row_version",
)  # fmt: skip
SAMPLE_LIST_COLUMNS = ("id", "timestamp", "received_at", *METRIC_FIELDS)
# What says a listed row is unchanged: a server's `row_version` (bumped by a trigger on every
# update), its `created_at` (a server deleted and registered again starts over at version 0)
# and its `latest_sample_id`. Samples are never changed once written, and the only deletion of
# a server's newest sample (retention) clears that pointer in the same transaction, which bumps
# the version; so the keys are read from the server table alone, without the join (28 → 9 ms
# for 10,000 servers on PostgreSQL). `list_server_keys` returns (id, *ROW_KEY_COLUMNS).
ROW_KEY_COLUMNS = ("row_version", "created_at", "latest_sample_id")
BY_ID_CHUNK = 500  # ids per `WHERE id IN (...)`: far below either database's parameter limit

ListFilters = dict[str, str | None]


def _list_column(model: type[pw.Model], name: str) -> pw.Node:
    """A listed column as the list reads it: times as text (see list_server_rows)."""
    field = getattr(model, name)
    return field.cast("text") if isinstance(field, pw.DateTimeField) else field


def _with_latest_sample(columns: list[pw.Node]) -> pw.ModelSelect[Server]:
    """`columns` of servers LEFT JOINed to their newest sample."""
    return Server.select(*columns).join(
        MetricsSample, pw.JOIN.LEFT_OUTER, on=(Server.latest_sample_id == MetricsSample.id)
    )


def _listed_page(
    columns: list[pw.Node],
    filters: ListFilters,
    limit: int | None,
    offset: int,
    *,
    samples: bool = True,
) -> tuple[list[tuple[Any, ...]], int]:
    """One page of `columns` (then the total) for the list's filters, in id order; `samples`:
    the servers are joined to their newest sample.

    One statement: the total rides on every row as an uncorrelated subquery, which both
    databases evaluate once. Only a page past the end (no row to carry it) counts again.
    """
    counted = _filtered(Server.select(pw.fn.COUNT(pw.SQL("*"))), **filters)
    select = _with_latest_sample if samples else lambda cols: Server.select(*cols)
    query = _filtered(select([*columns, counted]), **filters)
    query = query.order_by(Server.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = db.execute_sql(*query.sql()).fetchall()
    if rows:
        return rows, rows[0][-1]
    return rows, _filtered(Server.select(), **filters).count() if offset else 0


def _row_columns() -> list[pw.Node]:
    """The columns of a listed row: SERVER_LIST_COLUMNS then SAMPLE_LIST_COLUMNS."""
    columns = [_list_column(Server, name) for name in SERVER_LIST_COLUMNS]
    return columns + [_list_column(MetricsSample, name) for name in SAMPLE_LIST_COLUMNS]


def list_server_rows(
    *,
    status: str | None = None,
    tag: str | None = None,
    health: str | None = None,
    role: str | None = None,
    segment: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[tuple[Any, ...]], int]:
    """A page of servers (all of them without `limit`) as raw rows, and how many match.

    Each row holds the columns of SERVER_LIST_COLUMNS then SAMPLE_LIST_COLUMNS, unconverted
    (booleans may be 0/1), times as text in both databases (`YYYY-MM-DD HH:MM:SS[.ffffff]`),
    then the total. For the list endpoint: with 10,000 servers, peewee's and psycopg2's
    per-value conversions (datetimes above all) cost more than the query itself.
    """
    filters = {"status": status, "tag": tag, "health": health, "role": role, "segment": segment}
    return _listed_page(_row_columns(), filters, limit, offset)


def list_server_keys(
    *,
    status: str | None = None,
    tag: str | None = None,
    health: str | None = None,
    role: str | None = None,
    segment: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[tuple[Any, ...]], int]:
    """The page `list_server_rows` would return, as keys only: (id, *ROW_KEY_COLUMNS) per
    server, as list_server_rows' rows hold them, and how many match.

    Reading four values a server instead of 55 is what makes a listing whose rows are
    mostly cached cheap; a row is read in full only when its key changed.
    """
    filters = {"status": status, "tag": tag, "health": health, "role": role, "segment": segment}
    columns = [Server.id] + [_list_column(Server, name) for name in ROW_KEY_COLUMNS]
    rows, total = _listed_page(columns, filters, limit, offset, samples=False)
    return [row[:-1] for row in rows], total


def server_rows_by_id(ids: list[str]) -> list[tuple[Any, ...]]:
    """The listed rows of the servers `ids` (those that exist, in no particular order),
    shaped as list_server_rows' rows with NULL for the total."""
    rows: list[tuple[Any, ...]] = []
    columns = [*_row_columns(), pw.SQL("NULL")]
    for start in range(0, len(ids), BY_ID_CHUNK):
        query = _with_latest_sample(columns).where(Server.id.in_(ids[start : start + BY_ID_CHUNK]))
        rows += db.execute_sql(*query.sql()).fetchall()
    return rows


@contextlib.contextmanager
def list_snapshot() -> Iterator[None]:
    """A read-only transaction in which every statement sees the same snapshot, so a list's
    keys and the rows then read for them agree (PostgreSQL's default isolation gives each
    statement its own; a deferred SQLite transaction in WAL mode keeps its first one)."""
    if is_sqlite():
        with db.atomic():
            yield
    else:
        with db.atomic(isolation_level="REPEATABLE READ"):
            yield


def get_server(server_id: str) -> Server:
    """One server with its newest sample, or NotFound."""
    server: Server | None = _servers_with_latest().where(Server.id == server_id).first()
    if server is None:
        raise NotFound(f"Server '{server_id}' not found")
    return server  # not get_or_404: this one joins the newest sample


def register_server(fields: dict[str, Any]) -> Server:
    """Create a server in status `unknown`; Conflict when the id is taken.

    Its health is judged at once (`unknown`: no heartbeat yet), so its reasons say so.
    """
    now = utcnow()
    with write_transaction():
        if Server.select().where(Server.id == fields["id"]).exists():
            raise Conflict(f"Server '{fields['id']}' already exists")
        Server.insert(
            **stored_fields(fields), status=ServerStatus.UNKNOWN, created_at=now, updated_at=now
        ).execute()
        events.record(
            EventType.SERVER_REGISTERED,
            f"server {fields['id']} registered",
            server_id=fields["id"],
            details={"source": "api"},
        )
        # No facts yet, so no threshold matters: the verdict is `unknown` whatever they are.
        health.reevaluate(fields["id"], Thresholds())
    return get_server(fields["id"])


# The settable fields health is judged from (control.fleet.health): a change re-judges it.
HEALTH_INPUTS = frozenset({"version_lock"})


def update_server(server_id: str, fields: dict[str, Any], *, limits: Thresholds) -> Server:
    """Change the given fields of a server; an empty update returns it unchanged.

    A change to a field health depends on (the version lock) judges health again at once
    with `limits`, rather than at the next heartbeat.
    """
    if fields:
        with write_transaction():
            updated = (
                Server.update(**stored_fields(fields), updated_at=utcnow())
                .where(Server.id == server_id)
                .execute()
            )
            if not updated:
                raise NotFound(f"Server '{server_id}' not found")
            events.record(
                EventType.SERVER_UPDATED,
                f"server {server_id} updated",
                server_id=server_id,
                details={"fields": sorted(fields)},
            )
            if HEALTH_INPUTS & fields.keys():
                health.reevaluate(server_id, limits)
    return get_server(server_id)


def set_manual_health(
    server_id: str, state: str | None, reason: str | None, actor: str, *, limits: Thresholds
) -> Server:
    """Set or (with `state` None) clear the operator's manual health; the server after it.

    See `health.set_manual_health`: the state holds until cleared, offline still wins.
    """
    health.set_manual_health(server_id, state, reason, actor, limits)
    return get_server(server_id)


def delete_server(server_id: str) -> None:
    """Delete a server and its metrics history, and revoke the keys bound to it.

    Its events, actions and audit entries stay; its actions that had not started fail.
    """
    with write_transaction():
        server = get_or_404(Server, server_id, f"Server '{server_id}'")
        # Explicit delete as well as ON DELETE CASCADE: correctness must not hang on a pragma.
        MetricsSample.delete().where(MetricsSample.server == server_id).execute()
        # Actions keep their history; those still waiting can never run now, and left open
        # they would block the same action on a server re-registered under this id.
        now = utcnow()
        failed = (
            Action.update(
                status=ActionStatus.FAILED, completed_at=now, failure_reason=SERVER_DELETED
            )
            .where(
                (Action.server_id == server_id)
                & Action.status.in_((ActionStatus.PENDING, ActionStatus.APPROVED))
            )
            .returning(Action.id)
            .execute()
        )
        events.record_many(
            [
                {
                    "type": EventType.ACTION_FAILED,
                    "server_id": server_id,
                    "created_at": now,
                    "message": f"action {row.id} failed ({SERVER_DELETED})",
                    "details": {"action_id": row.id},
                }
                for row in failed
            ]
        )
        # Forget the box's identity too: a new box registered under this id must enroll anew,
        # not be spoken for by the deleted one's key.
        ApiKey.update(revoked_at=now).where(
            (ApiKey.server_id == server_id) & ApiKey.revoked_at.is_null()
        ).execute()
        server.delete_instance()
        events.record(EventType.SERVER_DELETED, f"server {server_id} deleted", server_id=server_id)


def count_by_status() -> dict[str, int]:
    """How many servers are in each status (every status present, zero included)."""
    return count_by(Server.status, ServerStatus)
