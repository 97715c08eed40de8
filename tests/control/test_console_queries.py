"""No N+1: each console page runs the same number of SQL statements however much it lists.

Statements are counted from peewee's own query log (every statement, builder-made or raw,
goes through `Database.execute_sql`, which logs it at DEBUG).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterator

import pytest

from control.models import Action, AuditEntry, Event, MetricsSample, Server, ServerUpdate, utcnow
from tests.conftest import OPERATOR_KEY
from tests.console import ConsolePages


class Statements(logging.Handler):
    """Collects the SQL statements peewee logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sql: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        sql = record.msg[0] if isinstance(record.msg, tuple) else str(record.msg)
        self.sql.append(sql)


@contextlib.contextmanager
def counting() -> Iterator[Statements]:
    """Count the statements run inside the block."""
    logger = logging.getLogger("peewee")
    handler, level = Statements(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def grow(app, prefix: str, servers: int, per_server: int) -> None:
    """`servers` servers, each with `per_server` samples, events, actions, audit entries and
    updates, every device-health list filled."""
    now = utcnow()
    with app.app_context():
        for n in range(servers):
            server_id = f"{prefix}-{n:04d}"
            Server.create(
                id=server_id,
                hostname=server_id,
                status="online",
                health="degraded",
                health_reasons=json.dumps(["disk / 91 % ≥ 90"]),
                tags=json.dumps(["lab"]),
                containers=json.dumps([{"name": f"c{i}", "state": "running"} for i in range(5)]),
                services=json.dumps([{"name": "nginx.service", "active_state": "active"}]),
                packages=json.dumps({"upgradable": 1}),
                tdp_watts=30,
                last_seen=now,
            )
            for i in range(per_server):
                at = now - dt.timedelta(minutes=i)
                sample = MetricsSample.create(
                    server=server_id, timestamp=at, received_at=at, cpu_percent=i % 100
                )
                Event.create(server_id=server_id, type="status_changed", message=f"e{i}")
                Action.create(
                    server_id=server_id,
                    action_type="restart_service",
                    parameters=json.dumps({"service_name": f"u{i}"}),
                    command=f"systemctl restart -- u{i}",
                    status="pending" if i % 2 else "completed",
                    created_by="t",
                )
                AuditEntry.create(actor="t", source="action", allowed=True, result="completed")
                ServerUpdate.create(
                    server_id=server_id,
                    kind="agent",
                    from_version=str(i),
                    to_version=str(i + 1),
                    detected_at=at,
                    check_due_at=at,
                )
            Server.update(latest_sample_id=sample.id).where(Server.id == server_id).execute()


def statements(pages: ConsolePages, path: str) -> int:
    with counting() as log:
        pages.page(path)
    return len(log.sql)


PATHS = [
    "/ui/",
    "/ui/servers/{prefix}-0000",
    "/ui/approvals",
    "/ui/events",
    "/ui/audit",
    "/ui/costs",
]


@pytest.fixture
def operator(client):
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    return pages


def test_each_page_runs_as_many_statements_for_a_big_fleet_as_for_a_small_one(app, operator):
    grow(app, "small", servers=2, per_server=3)
    small = {path: statements(operator, path.format(prefix="small")) for path in PATHS}
    grow(app, "big", servers=25, per_server=30)
    big = {path: statements(operator, path.format(prefix="big")) for path in PATHS}
    assert big == small, (small, big)
    # And few: the key check, the page's own reads, the approvals badge.
    assert all(count <= 15 for count in big.values()), big
