"""Whatever a box or a client sent is shown as text on every console page, never as markup.

The attack is stored straight into every column a page shows (as a future heartbeat field, a
lax schema or a hand-edited database could), so the test does not lean on the API's input
validation: the pages must be safe on their own.
"""

from __future__ import annotations

import json

import pytest

from control.models import Action, AuditEntry, Event, Server, ServerUpdate, utcnow
from tests.conftest import OPERATOR_KEY
from tests.console import ConsolePages

ATTACK = "<script>alert('x')</script><img src=x onerror=alert(1)>\"'&"
ESCAPED = "&lt;script&gt;alert("
PAGES = ["/ui/", "/ui/servers/box", "/ui/approvals", "/ui/events", "/ui/audit", "/ui/costs"]


def fit(model, values: dict) -> dict:
    """`values` cut to their columns' lengths (still holding `<script>alert`): PostgreSQL
    refuses what does not fit."""
    fields = model._meta.fields
    return {k: v[: getattr(fields[k], "max_length", None) or len(v)] for k, v in values.items()}


@pytest.fixture
def hostile_fleet(app, client, auth):
    """A server `box` whose every shown field, and whose actions, events, audit entries and
    updates, hold markup."""
    body = {"id": "box", "hostname": "box", "display_name": ATTACK, "tdp_watts": 50}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    item = {"name": ATTACK, "image": ATTACK, "state": ATTACK, "health": ATTACK, "exit_code": 1}
    now = utcnow()
    with app.app_context():
        markup = {
            name: ATTACK
            for name in (
                "hostname", "os_distribution", "os_version", "kernel_version", "agent_version",
                "role", "segment", "branch", "manual_health_reason", "manual_health_by",
                "current_commit_hash", "version_lock", "last_seen_address",
            )
        }  # fmt: skip
        Server.update(
            **fit(Server, markup),
            tags=json.dumps([ATTACK]),
            containers=json.dumps([item]),
            services=json.dumps([{"name": ATTACK, "active_state": ATTACK, "sub_state": ATTACK}]),
            packages=json.dumps({"upgradable": ATTACK, "security": ATTACK}),
            metadata=json.dumps({ATTACK: ATTACK}),
            health="degraded",
            health_reasons=json.dumps([ATTACK]),
            manual_health="degraded",
        ).where(Server.id == "box").execute()
        common = {"server_id": "box", "action_type": "restart_service", "created_by": ATTACK}
        Action.create(**common, command=ATTACK, status="pending")
        Action.create(
            **common,
            parameters='{"service_name": "x"}',
            command=ATTACK,
            status="failed",
            approved_by=ATTACK,
            approved_at=now,
            exit_code=1,
            stdout=ATTACK,
            stderr=ATTACK,
            failure_reason=ATTACK,
        )
        Action.create(
            **common,
            parameters='{"service_name": "y"}',
            command=ATTACK,
            status="rejected",
            rejected_by=ATTACK,
            rejected_at=now,
            rejection_reason=ATTACK,
        )
        Event.create(server_id="box", type="server_updated", message=ATTACK, details=ATTACK)
        AuditEntry.create(
            actor=ATTACK,
            scope="operator",
            source="execute",
            server_id="box",
            action_type="restart_service",
            argv=json.dumps([ATTACK]),
            allowed=False,
            result="refused",
            detail=ATTACK,
        )
        ServerUpdate.create(
            server_id="box",
            kind="commit",
            from_version=ATTACK,
            to_version=ATTACK,
            detected_at=now,
            check_due_at=now,
            update_status="failed",
            error_message=ATTACK,
        )
    return "box"


@pytest.mark.parametrize("path", PAGES)
def test_markup_a_box_or_client_sent_is_shown_as_text(client, hostile_fleet, path):
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    page = pages.page(path)
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert ESCAPED in page


def test_every_field_of_the_server_page_is_escaped_where_it_shows(client, hostile_fleet):
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    page = pages.page("/ui/servers/box")
    # The display name, reasons, container, service, packages, metadata, events, actions
    # (command, output, who) and updates: many places, each escaped.
    assert page.count(ESCAPED) >= 15
    assert "<script" not in page.lower().replace("<script src=", "")
