"""Device health through the API (seed 002): the operator's manual state, health judged again
when the version lock changes, the update history, and the remediation gates (actions that
always wait for approval; software changes refused on a server with updates disabled).

Nothing here reaches SSH: every command is refused or left waiting before anything would run.
"""

from __future__ import annotations

import datetime as dt

import pytest

from control.keys import create_key
from control.models import AuditEntry, Server, ServerUpdate
from control.remediation.whitelist import APT_UPGRADE, to_shell
from tests.helpers import send_heartbeat

SERVER = "/api/v1/servers/box"
RULES = """
[remediation.upgrade_when_pending]
alertname = "AptUpgradesPending"
action_type = "upgrade_packages"
"""


@pytest.fixture
def settings_overrides(tmp_path):
    commands = tmp_path / "commands.toml"
    commands.write_text(RULES)
    return {"commands_file": str(commands)}


def patch_health(client, headers, body, url=SERVER):
    return client.patch(f"{url}/health", json=body, headers=headers)


def events_of(client, auth, kind):
    url = f"{SERVER}/events?type={kind}"
    return client.get(url, headers=auth.viewer).json["events"]


# --- manual health -------------------------------------------------------------------------


def test_the_operator_sets_a_manual_health_that_says_who_and_why(client, auth, box):
    key, _ = create_key("operator", "alice")
    response = patch_health(client, {"X-API-Key": key}, {"health": "degraded", "reason": "fan"})
    assert response.status_code == 200, response.json
    server = response.json
    assert (server["health"], server["health_reasons"]) == (
        "degraded",
        ["set manually by alice: fan"],
    )
    assert (server["manual_health"], server["manual_health_reason"]) == ("degraded", "fan")
    assert server["manual_health_by"] == "alice" and server["health_changed_at"].endswith("Z")
    (changed,) = events_of(client, auth, "health_changed")
    assert (changed["severity"], changed["details"]["from"], changed["details"]["to"]) == (
        "warning",
        "unknown",
        "degraded",
    )
    (updated,) = events_of(client, auth, "server_updated")
    assert updated["details"] == {"fields": ["manual_health"], "by": "alice",
                                  "manual_health": "degraded", "reason": "fan"}  # fmt: skip


def test_clearing_the_manual_state_returns_to_the_judged_health_and_says_who(client, auth, box):
    patch_health(client, auth.operator, {"health": "failed"})
    assert client.get(SERVER, headers=auth.viewer).json["health_reasons"] == [
        "set manually by bootstrap-operator"
    ]
    cleared = patch_health(client, auth.operator, {"health": None}).json
    assert (cleared["health"], cleared["health_reasons"]) == ("unknown", ["no heartbeat yet"])
    assert cleared["manual_health"] is None and cleared["manual_health_by"] is None
    changes = [
        (e["details"]["to"], e["severity"]) for e in events_of(client, auth, "health_changed")
    ]
    assert changes == [("unknown", "info"), ("failed", "error")]
    by = [e["details"]["by"] for e in events_of(client, auth, "server_updated")]
    assert by == ["bootstrap-operator", "bootstrap-operator"]


def test_a_manual_state_holds_over_the_rules_until_cleared(client, auth, box):
    send_heartbeat(client, auth, {"server_id": "box", "hostname": "box",
                                  "timestamp": "2026-01-01T00:00:00Z"})  # fmt: skip
    patch_health(client, auth.operator, {"health": "healthy", "reason": "known flaky sensor"})
    changed = client.put(SERVER, json={"version_lock": "9f8e7d6"}, headers=auth.operator).json
    assert changed["health"] == "healthy"
    cleared = patch_health(client, auth.operator, {"health": None}).json
    assert (cleared["health"], cleared["health_reasons"]) == (
        "degraded",
        ["commit unknown ≠ locked 9f8e7d6"],
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "health"), ({"reason": "x"}, "health"), ({"health": "offline"}, "health"),
        ({"health": "unknown"}, "health"), ({"health": "sick"}, "health"),
        ({"health": 1}, "health"), ({"health": ["failed"]}, "health"),
        ({"health": "FAILED"}, "health"), ({"health": "failed", "reason": "r" * 501}, "reason"),
        ({"health": "failed", "reason": "a\x00b"}, "reason"),
        ({"health": "failed", "reason": 5}, "reason"),
        ({"health": "failed", "by": "mallory"}, "by"),
    ],
)  # fmt: skip
def test_a_bad_health_body_is_422_and_changes_nothing(client, auth, box, body, field):
    response = patch_health(client, auth.operator, body)
    assert (response.status_code, response.json["code"]) == (422, "VALIDATION_ERROR")
    assert field in response.json["errors"]
    assert client.get(SERVER, headers=auth.viewer).json["manual_health"] is None


def test_manual_health_needs_an_operator_and_a_server(client, auth, box):
    assert patch_health(client, auth.viewer, {"health": "failed"}).status_code == 403
    gone = patch_health(client, auth.operator, {"health": "failed"}, url="/api/v1/servers/gone")
    assert (gone.status_code, gone.json["code"]) == (404, "NOT_FOUND")
    long_reason = patch_health(client, auth.operator, {"health": "failed", "reason": "r" * 500})
    assert long_reason.json["manual_health_reason"] == "r" * 500


# --- health judged again when the version lock changes -------------------------------------


def test_a_version_lock_the_box_does_not_run_degrades_it_at_once(client, auth, box):
    send_heartbeat(client, auth, {"server_id": "box", "hostname": "box",
                                  "timestamp": "2026-01-01T00:00:00Z"})  # fmt: skip
    Server.update(current_commit_hash="1a2b3c4d5e").where(Server.id == "box").execute()
    locked = client.put(SERVER, json={"version_lock": "9f8e7d6"}, headers=auth.operator).json
    assert (locked["health"], locked["health_reasons"]) == (
        "degraded",
        ["commit 1a2b3c4 ≠ locked 9f8e7d6"],
    )
    matching = client.put(SERVER, json={"version_lock": "1a2b3c4"}, headers=auth.operator).json
    assert (matching["health"], matching["health_reasons"]) == ("healthy", [])
    changes = [
        (e["details"]["to"], e["severity"]) for e in events_of(client, auth, "health_changed")
    ]
    assert changes[:2] == [("healthy", "info"), ("degraded", "warning")]


# --- update history ------------------------------------------------------------------------


def test_the_update_history_is_a_page_of_records_newest_first(client, auth, box):
    empty = client.get(f"{SERVER}/updates", headers=auth.viewer).json
    assert empty == {"updates": [], "total": 0, "limit": 50, "offset": 0}
    when = dt.datetime(2026, 5, 1, 8, 0, 0)
    ServerUpdate.create(
        server_id="box",
        kind="commit",
        from_version="1a2b3c4",
        to_version="9f8e7d6",
        detected_at=when,
        check_due_at=when,
        update_status="failed",
        health_check_passed=False,
        error_message="container web exited (1)",
        checked_at=when,
    )
    ServerUpdate.create(
        server_id="box",
        kind="kernel",
        from_version="6.1.0-1",
        to_version="6.1.0-2",
        detected_at=when,
        check_due_at=when,
    )
    ServerUpdate.create(server_id="other", kind="os", from_version="12", to_version="13",
                        detected_at=when, check_due_at=when)  # fmt: skip
    body = client.get(f"{SERVER}/updates?limit=1&offset=1", headers=auth.viewer).json
    assert (body["total"], body["limit"], body["offset"]) == (2, 1, 1)
    (record,) = body["updates"]
    assert record == {
        "id": record["id"], "kind": "commit", "from_version": "1a2b3c4", "to_version": "9f8e7d6",
        "detected_at": "2026-05-01T08:00:00.000Z", "update_status": "failed",
        "health_check_passed": False, "error_message": "container web exited (1)",
        "check_due_at": "2026-05-01T08:00:00.000Z", "checked_at": "2026-05-01T08:00:00.000Z",
    }  # fmt: skip
    newest = client.get(f"{SERVER}/updates", headers=auth.viewer).json["updates"][0]
    assert (newest["kind"], newest["update_status"], newest["health_check_passed"]) == (
        "kernel",
        "pending",
        None,
    )


def test_the_update_history_of_an_unknown_server_is_404(client, auth):
    response = client.get("/api/v1/servers/gone/updates", headers=auth.viewer)
    assert (response.status_code, response.json["code"]) == (404, "NOT_FOUND")


# --- remediation gates ---------------------------------------------------------------------


def queue(client, auth, action_type, **parameters):
    body = {"server_id": "box", "action_type": action_type, "parameters": parameters}
    return client.post("/api/v1/actions", json=body, headers=auth.operator)


def test_reboot_and_upgrades_wait_for_approval_on_a_server_that_is_not_paused(client, auth, box):
    for action_type in ("reboot", "upgrade_packages"):
        action = queue(client, auth, action_type).json
        assert (action["status"], action["approved_by"]) == ("pending", None), action_type
    restart = queue(client, auth, "restart_container", name="web").json
    assert (restart["status"], restart["command"]) == ("approved", "docker restart -- web")
    created = events_of(client, auth, "action_created")
    assert "waiting for approval (reboot always needs approval)" in created[-1]["message"]


def test_software_changes_are_refused_while_updates_are_disabled(client, auth, box):
    client.put(SERVER, json={"update_enabled": False}, headers=auth.operator)
    refused = queue(client, auth, "upgrade_packages")
    assert (refused.status_code, refused.json["code"]) == (403, "COMMAND_NOT_ALLOWED")
    assert "update_enabled" in refused.json["message"]
    entry = AuditEntry.get(AuditEntry.allowed == False)  # noqa: E712
    assert (entry.result, entry.action_type, entry.server_id) == (
        "refused",
        "upgrade_packages",
        "box",
    )
    assert "update_enabled" in entry.detail
    # Not a software change: still queued (and, being a reboot, waiting for approval).
    assert queue(client, auth, "reboot").json["status"] == "pending"
    client.put(SERVER, json={"update_enabled": True}, headers=auth.operator)
    assert queue(client, auth, "upgrade_packages").status_code == 201


@pytest.mark.parametrize(
    "body", [{"action_type": "upgrade_packages"}, {"command": to_shell(["sh", "-c", APT_UPGRADE])}]
)
def test_execute_refuses_software_changes_while_updates_are_disabled(client, auth, box, body):
    client.put(SERVER, json={"update_enabled": False}, headers=auth.operator)
    response = client.post(f"{SERVER}/commands/execute", json=body, headers=auth.operator)
    assert (response.status_code, response.json["code"]) == (400, "COMMAND_NOT_ALLOWED")
    assert "update_enabled" in response.json["message"]
    entry = AuditEntry.get(AuditEntry.allowed == False)  # noqa: E712
    assert (entry.source, entry.result, entry.server_id) == ("execute", "refused", "box")


def test_a_pending_software_change_cannot_be_approved_once_updates_are_disabled(client, auth, box):
    action = queue(client, auth, "upgrade_packages").json
    client.put(SERVER, json={"update_enabled": False}, headers=auth.operator)
    response = client.post(f"/api/v1/actions/{action['id']}/approve", headers=auth.operator)
    assert (response.status_code, response.json["code"]) == (409, "CONFLICT")
    assert "update_enabled" in response.json["message"]
    rejected = client.post(f"/api/v1/actions/{action['id']}/reject", json={"reason": "frozen"},
                           headers=auth.operator)  # fmt: skip
    assert rejected.json["status"] == "rejected"


def fire(client, auth, fingerprint):
    alert = {"status": "firing", "labels": {"alertname": "AptUpgradesPending", "server_id": "box"},
             "startsAt": "2026-01-01T00:00:00Z", "fingerprint": fingerprint}  # fmt: skip
    response = client.post("/api/v1/alerts/alertmanager", json={"version": "4", "alerts": [alert]},
                           headers=auth.operator)  # fmt: skip
    assert response.status_code == 200, response.json
    return response.json["alerts"][0]


def test_alert_rules_obey_the_same_gates(client, auth, box):
    client.put(SERVER, json={"update_enabled": False}, headers=auth.operator)
    refused = fire(client, auth, "aa")
    assert (refused["remediation"], refused["action_id"]) == ("refused", None)
    assert "update_enabled" in refused["remediation_detail"]
    client.put(SERVER, json={"update_enabled": True}, headers=auth.operator)
    queued = fire(client, auth, "bb")
    assert queued["remediation"] == "queued"
    assert "waiting for approval" in queued["remediation_detail"]
