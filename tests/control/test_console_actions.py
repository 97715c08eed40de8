"""Acting from the console: approve, reject, pause, resume, run, reset enrollment.

Each change goes through the API's own domain calls under the signed-in key's name, so the
tests check what the API shows afterwards, not only the page.
"""

from __future__ import annotations

import pytest

from control.models import AuditEntry, Event
from tests.conftest import OPERATOR_KEY
from tests.console import ConsolePages, flashes


@pytest.fixture
def operator(client):
    """An operator signed in to the console."""
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    return pages


@pytest.fixture
def paused(client, auth):
    """Server `box` in maintenance mode (its SSH port refuses: nothing runs in these tests)."""
    body = {"id": "box", "hostname": "box", "ip_address": "127.0.0.1", "ssh_port": 1}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    assert client.put("/api/v1/servers/box/pause", headers=auth.operator).status_code == 200
    return "box"


def queue(client, auth, service: str = "nginx") -> int:
    """Queue restart_service through the API; returns the action id."""
    body = {"server_id": "box", "action_type": "restart_service", "service_name": service}
    return client.post("/api/v1/actions", json=body, headers=auth.operator).json["id"]


def test_approve_from_the_console_under_the_keys_name(client, auth, operator, paused):
    action_id = queue(client, auth)
    page = operator.page("/ui/approvals")
    assert f"#{action_id} restart_service" in page
    assert ">Approve</button>" in page
    response = operator.post(f"/ui/actions/{action_id}/approve")
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/approvals"
    action = client.get(f"/api/v1/actions/{action_id}", headers=auth.operator).json
    assert action["status"] in {"approved", "executing", "failed"}
    assert action["approved_by"] == "bootstrap-operator"
    page = operator.page("/ui/approvals")
    assert ("notice", f"Action {action_id} (restart_service on box) approved; it runs now.") in (
        flashes(page)
    )


def test_reject_needs_a_reason_and_keeps_it(client, auth, operator, paused):
    action_id = queue(client, auth)
    operator.page("/ui/approvals")
    refused = operator.post(f"/ui/actions/{action_id}/reject", {"reason": "  "})
    assert refused.status_code == 303
    page = operator.page("/ui/approvals")
    assert ("error", "A rejection needs a reason (up to 1000 characters).") in flashes(page)
    assert client.get(f"/api/v1/actions/{action_id}", headers=auth.operator).json["status"] == (
        "pending"
    )
    operator.post(f"/ui/actions/{action_id}/reject", {"reason": "not during office hours"})
    action = client.get(f"/api/v1/actions/{action_id}", headers=auth.operator).json
    assert (action["status"], action["rejected_by"], action["rejection_reason"]) == (
        "rejected",
        "bootstrap-operator",
        "not during office hours",
    )
    page = operator.page("/ui/approvals")
    assert "rejected by bootstrap-operator" in page
    assert "Reason: not during office hours" in page


def test_a_reason_holding_nul_is_refused_on_the_page_not_a_500(client, auth, operator, paused):
    """PostgreSQL cannot store NUL: the form refuses it like the API does."""
    action_id = queue(client, auth)
    operator.page("/ui/approvals")
    refused = operator.post(f"/ui/actions/{action_id}/reject", {"reason": "no\x00way"})
    assert refused.status_code == 303
    assert client.get(f"/api/v1/actions/{action_id}", headers=auth.operator).json["status"] == (
        "pending"
    )


def test_a_decision_on_an_action_no_longer_pending_is_explained(client, auth, operator, paused):
    action_id = queue(client, auth)
    operator.page("/ui/approvals")
    operator.post(f"/ui/actions/{action_id}/reject", {"reason": "no"})
    operator.post(f"/ui/actions/{action_id}/approve")
    page = operator.page("/ui/approvals")
    assert ("error", f"Action {action_id} is rejected, only pending can be approved") in (
        flashes(page)
    )


def test_pause_and_resume_are_recorded_under_the_keys_name(app, client, auth, operator, paused):
    page = operator.page("/ui/servers/box")
    assert ">Resume</button>" in page and ">Pause</button>" not in page
    operator.post("/ui/servers/box/resume")
    assert client.get("/api/v1/servers/box", headers=auth.operator).json["is_paused"] is False
    page = operator.page("/ui/servers/box")
    assert ">Pause</button>" in page
    operator.post("/ui/servers/box/pause")
    assert client.get("/api/v1/servers/box", headers=auth.operator).json["is_paused"] is True
    with app.app_context():
        messages = [e.message for e in Event.select().where(Event.type == "server_paused")]
    assert "server box paused (maintenance mode) by bootstrap-operator" in messages


def test_run_builds_a_form_from_the_typed_parameters(operator, paused):
    page = operator.page("/ui/servers/box")
    assert 'action="/ui/servers/box/run/restart_service"' in page
    assert 'id="restart_service-param_service_name"' in page
    assert ">service_name" in page
    assert "^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$" in page  # the pattern, as a hint
    assert ">Run</button>" in page


def test_run_queues_the_action_through_the_approval_gate(client, auth, operator, paused):
    operator.page("/ui/servers/box")
    response = operator.post(
        "/ui/servers/box/run/restart_service", {"restart_service-param_service_name": "nginx"}
    )
    assert response.headers["Location"] == "/ui/servers/box"
    actions = client.get("/api/v1/actions", headers=auth.operator).json["actions"]
    assert [(a["status"], a["parameters"], a["created_by"]) for a in actions] == [
        ("pending", {"service_name": "nginx"}, "bootstrap-operator")
    ]
    page = operator.page("/ui/servers/box")
    assert any("waits for approval" in text for _, text in flashes(page))


def test_a_run_the_whitelist_refuses_shows_why_and_is_audited(app, client, auth, operator, paused):
    operator.page("/ui/servers/box")
    operator.post(
        "/ui/servers/box/run/restart_service",
        {"restart_service-param_service_name": "nginx; rm -rf /"},
    )
    page = operator.page("/ui/servers/box")
    [(kind, text)] = flashes(page)
    assert kind == "error"
    assert text.startswith("invalid parameters for restart_service. parameters.service_name:")
    operator.post("/ui/servers/box/run/format_disk", {})
    page = operator.page("/ui/servers/box")
    assert ("error", "action type 'format_disk' is not in the whitelist") in flashes(page)
    assert client.get("/api/v1/actions", headers=auth.operator).json["total"] == 0
    with app.app_context():
        audited = [(e.result, e.actor) for e in AuditEntry.select().order_by(AuditEntry.id)]
    assert audited == [("invalid", "bootstrap-operator"), ("refused", "bootstrap-operator")]


def test_enrollment_reset_asks_for_confirmation_and_is_audited(app, operator, paused):
    operator.page("/ui/servers/box")
    operator.post("/ui/servers/box/enrollment/reset", {})
    page = operator.page("/ui/servers/box")
    assert ("error", "Tick the box to confirm: the agent must enroll again.") in flashes(page)
    operator.post("/ui/servers/box/enrollment/reset", {"confirm": "y"})
    page = operator.page("/ui/servers/box")
    assert ("notice", "Enrollment of box reset: 0 key(s) revoked.") in flashes(page)
    with app.app_context():
        entry = AuditEntry.get(AuditEntry.source == "enrollment")
    assert (entry.actor, entry.server_id) == ("bootstrap-operator", "box")
