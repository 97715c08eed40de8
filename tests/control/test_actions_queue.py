"""The action queue at API level: create, approve, duplicates, 404/403/422, listing.

Nothing here is dispatched, so no sshd is needed: the server's address is never dialled.
Running approved actions, the approval gate of a paused server and rejection are in
test_dispatcher.py; the synchronous endpoint is in test_execute.py.
"""

from __future__ import annotations

import pytest

from control.models import Action
from tests.control.remediation_helpers import queue


@pytest.fixture
def settings_overrides(remediation_settings):
    """The test whitelist; no SSH settings (nothing runs)."""
    return remediation_settings


@pytest.fixture
def ssh_address():
    """Nothing is dispatched in this module, so this address is never connected to."""
    return "127.0.0.1", 22


def test_service_name_shorthand_and_builtin_restart_service(client, auth, server):
    response = client.post(
        "/api/v1/actions",
        headers=auth.operator,
        json={"server_id": "box", "action_type": "restart_service", "service_name": "nginx"},
    )
    assert response.status_code == 201
    assert response.json["parameters"] == {"service_name": "nginx"}
    assert response.json["command"] == "systemctl restart -- nginx"


def test_duplicate_open_action_is_409_until_it_finishes(client, auth, server):
    client.put("/api/v1/servers/box/pause", headers=auth.operator)
    first = queue(client, auth, "touch_marker", name="dup")
    second = queue(client, auth, "touch_marker", name="dup")
    assert second.status_code == 409
    assert second.json["code"] == "CONFLICT"
    assert f"action {first.json['id']}" in second.json["message"]
    assert queue(client, auth, "touch_marker", name="other").status_code == 201
    client.post(
        f"/api/v1/actions/{first.json['id']}/reject", headers=auth.operator, json={"reason": "x"}
    )
    assert queue(client, auth, "touch_marker", name="dup").status_code == 201


def test_approving_an_approved_action_is_409(client, auth, server):
    action = queue(client, auth, "touch_marker", name="a").json
    response = client.post(f"/api/v1/actions/{action['id']}/approve", headers=auth.operator)
    assert response.status_code == 409
    assert "approved" in response.json["message"]


def test_unknown_action_and_server_are_404(client, auth, server):
    assert client.get("/api/v1/actions/999", headers=auth.viewer).status_code == 404
    assert client.post("/api/v1/actions/999/approve", headers=auth.operator).status_code == 404
    assert queue(client, auth, "touch_marker", server_id="ghost", name="a").status_code == 404
    assert client.get("/api/v1/servers/ghost/actions", headers=auth.viewer).status_code == 404
    assert client.put("/api/v1/servers/ghost/pause", headers=auth.operator).status_code == 404


def test_unknown_action_type_is_403_command_not_allowed(client, auth, server):
    response = queue(client, auth, "format_disk")
    assert response.status_code == 403
    assert response.json["code"] == "COMMAND_NOT_ALLOWED"
    malformed = queue(client, auth, "Format Disk!")
    assert malformed.status_code == 422
    assert Action.select().count() == 0


def test_list_filters_and_paginates(client, auth, server):
    client.put("/api/v1/servers/box/pause", headers=auth.operator)
    for name in ("a", "b", "c"):
        queue(client, auth, "touch_marker", name=name)
    queue(client, auth, "echo_text", text="hi")
    listing = client.get("/api/v1/actions?limit=2&offset=1", headers=auth.viewer).json
    assert (listing["total"], listing["limit"], listing["offset"]) == (4, 2, 1)
    assert [a["parameters"].get("name") for a in listing["actions"]] == ["c", "b"]
    typed = client.get("/api/v1/actions?action_type=echo_text", headers=auth.viewer).json
    assert typed["total"] == 1
    pending = client.get("/api/v1/servers/box/actions?status=pending", headers=auth.viewer).json
    assert pending["total"] == 4
    none = client.get("/api/v1/actions?status=completed", headers=auth.viewer).json
    assert none["total"] == 0


def test_deleting_a_server_keeps_its_actions_and_fails_those_not_started(client, auth, server):
    client.put("/api/v1/servers/box/pause", headers=auth.operator)
    body = {"server_id": "box", "action_type": "restart_service", "service_name": "nginx"}
    waiting = client.post("/api/v1/actions", json=body, headers=auth.operator).json
    assert waiting["status"] == "pending"
    assert client.delete("/api/v1/servers/box", headers=auth.operator).status_code == 204

    kept = client.get(f"/api/v1/actions/{waiting['id']}", headers=auth.viewer).json
    assert (kept["status"], kept["server_id"]) == ("failed", "box")
    assert "server deleted" in kept["failure_reason"]
    failed = client.get("/api/v1/events?type=action_failed", headers=auth.viewer).json
    assert [e["details"]["action_id"] for e in failed["events"]] == [waiting["id"]]
    # The same action on a server registered again under the id is not blocked (no 409).
    again = {"id": "box", "hostname": "box"}
    assert client.post("/api/v1/servers", json=again, headers=auth.operator).status_code == 201
    assert client.post("/api/v1/actions", json=body, headers=auth.operator).status_code == 201
    listed = client.get("/api/v1/actions?server_id=box", headers=auth.viewer).json
    assert listed["total"] == 2
