"""The fleet at a glance: every server with its health and newest metrics, worst first.

What the console's fleet page shows, read in a fixed number of statements however large the
fleet (one for the rows, one per count), and the facts of one server (its device-health lists
kept as JSON) turned into plain Python values.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import peewee as pw

from control.db import is_sqlite
from control.models import MetricsSample, Server, ServerHealth, ServerStatus

# Worst first: what needs a look tops the list.
HEALTH_ORDER = (
    ServerHealth.FAILED,
    ServerHealth.OFFLINE,
    ServerHealth.DEGRADED,
    ServerHealth.UNKNOWN,
    ServerHealth.HEALTHY,
)


@dataclass(frozen=True)
class FleetRow:
    """One server as the fleet page lists it."""

    id: str
    hostname: str
    display_name: str | None
    status: str
    health: str
    health_reasons: list[str]
    role: str | None
    tags: list[str]
    is_paused: bool
    last_seen: dt.datetime | None
    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None
    temperature: float | None
    containers_running: int | None
    containers_failed: int | None


@dataclass(frozen=True)
class FleetOverview:
    """A page of the (filtered) fleet, how many match, and the whole fleet's counts."""

    rows: list[FleetRow]
    matching: int
    by_health: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """How many servers the fleet holds, filters aside."""
        return sum(self.by_health.values())


_ROW_COLUMNS = (
    Server.id,
    Server.hostname,
    Server.display_name,
    Server.status,
    Server.health,
    Server.health_reasons,
    Server.role,
    Server.tags,
    Server.is_paused,
    Server.last_seen,
    MetricsSample.cpu_percent,
    MetricsSample.memory_percent,
    MetricsSample.disk_percent,
    MetricsSample.temperature,
    MetricsSample.containers_running,
    MetricsSample.containers_failed,
)


def json_list(text: str | None) -> list[Any]:
    """A JSON list column as a list; NULL (never reported) or anything else is empty."""
    if not text:
        return []
    value = json.loads(text)
    return value if isinstance(value, list) else []


def json_object(text: str | None) -> dict[str, Any]:
    """A JSON object column as a dict; NULL or anything else is empty."""
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _narrowed(
    query: pw.ModelSelect[Server],
    health: str | None,
    status: str | None,
    tag: str | None,
    role: str | None,
) -> pw.ModelSelect[Server]:
    for column, value in ((Server.health, health), (Server.status, status), (Server.role, role)):
        if value is not None:
            query = query.where(column == value)
    if tag is not None:
        # Tags are a JSON list of names that hold no quote, so `"name"` is found exactly
        # (LIKE would read `_` as a wildcard); the same rule as control.fleet.servers.
        quoted = f'"{tag}"'
        found = (
            pw.fn.instr(Server.tags, quoted) if is_sqlite() else pw.fn.strpos(Server.tags, quoted)
        )
        query = query.where(found > 0)
    return query


def _worst_first() -> list[Any]:
    rank = pw.Case(
        Server.health, [(h.value, i) for i, h in enumerate(HEALTH_ORDER)], len(HEALTH_ORDER)
    )
    return [rank, Server.is_paused.desc(), Server.id]


def fleet_overview(
    *,
    health: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    role: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> FleetOverview:
    """The servers matching every given filter, worst health first, with the fleet's counts.

    Each row carries its newest metrics through `Server.latest_sample_id`: one join, not one
    lookup per server. Counts by health and status are over the whole fleet (they are the
    filters' menu), `matching` over the filtered list.
    """
    query = _narrowed(
        Server.select(*_ROW_COLUMNS).join(
            MetricsSample, pw.JOIN.LEFT_OUTER, on=(Server.latest_sample_id == MetricsSample.id)
        ),
        health,
        status,
        tag,
        role,
    ).order_by(*_worst_first())
    if limit is not None:
        query = query.limit(limit).offset(offset)
    rows = [_row(values) for values in _tuples(query)]
    by_health = _count(Server.health, ServerHealth)
    filtered = any(value is not None for value in (health, status, tag, role))
    if limit is None and not offset:
        matching = len(rows)
    elif not filtered:
        matching = sum(by_health.values())
    else:
        matching = _narrowed(Server.select(), health, status, tag, role).count()
    return FleetOverview(rows, matching, by_health, _count(Server.status, ServerStatus))


def _row(values: tuple[Any, ...]) -> FleetRow:
    (server_id, hostname, display_name, status, health, reasons, role, tags, paused, seen,
     cpu, memory, disk, temperature, running, failed) = values  # fmt: skip
    return FleetRow(
        id=server_id,
        hostname=hostname,
        display_name=display_name,
        status=status,
        health=health,
        health_reasons=[str(reason) for reason in json_list(reasons)],
        role=role,
        tags=[str(tag) for tag in json_list(tags)],
        is_paused=bool(paused),
        last_seen=seen,
        cpu_percent=cpu,
        memory_percent=memory,
        disk_percent=disk,
        temperature=temperature,
        containers_running=running,
        containers_failed=failed,
    )


def _count(
    column: pw.Field[Any], values: type[ServerHealth] | type[ServerStatus]
) -> dict[str, int]:
    """How many servers hold each value of `column`, zeros included, in one GROUP BY."""
    counts = dict.fromkeys((str(value) for value in values), 0)
    for value, count in _tuples(Server.select(column, pw.fn.COUNT(pw.SQL("*"))).group_by(column)):
        counts[value] = counts.get(value, 0) + count
    return counts


def roles() -> list[str]:
    """The roles servers have, for the fleet page's filter menu."""
    query = Server.select(Server.role).where(Server.role.is_null(False)).distinct()
    return sorted(role for (role,) in _tuples(query))


def _tuples(query: pw.ModelSelect[Any]) -> Iterable[tuple[Any, ...]]:
    """The rows of `query` as plain tuples (peewee's stubs type them as models)."""
    return cast(Iterable[tuple[Any, ...]], query.tuples())


@dataclass(frozen=True)
class ServerFacts:
    """A server's device-health facts as values: what its heartbeats last reported."""

    health_reasons: list[str]
    tags: list[str]
    containers: list[dict[str, Any]]
    services: list[dict[str, Any]]
    packages: dict[str, Any]
    metadata: dict[str, Any]


def server_facts(server: Server) -> ServerFacts:
    """The JSON columns of `server` decoded (a list of objects keeps only its objects)."""

    def objects(text: str | None) -> list[dict[str, Any]]:
        return [item for item in json_list(text) if isinstance(item, dict)]

    return ServerFacts(
        health_reasons=[str(reason) for reason in json_list(server.health_reasons)],
        tags=[str(tag) for tag in json_list(server.tags)],
        containers=objects(server.containers),
        services=objects(server.services),
        packages=json_object(server.packages),
        metadata=json_object(server.metadata),
    )
