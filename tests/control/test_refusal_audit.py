"""Refused remediation requests leave a trace: every refused `POST /actions` and execute is in
the audit log with the key's name, what it asked for and why it was refused; requests without a
valid key are counted in `/metrics` instead (issue 11, Medium 4).

Nothing here reaches SSH: every request is refused before anything runs.
"""

from __future__ import annotations

import pytest

from control.keys import create_key
from control.models import AuditEntry

ACTIONS = "/api/v1/actions"


@pytest.fixture
def settings_overrides(remediation_settings):
    """The test whitelist (nothing runs) and 5 requests per key per minute."""
    return remediation_settings


def execute_url(server_id="box"):
    return f"/api/v1/servers/{server_id}/commands/execute"


def refusals():
    """Every refused audit entry, oldest first."""
    return list(AuditEntry.select().where(AuditEntry.allowed == False).order_by(AuditEntry.id))  # noqa: E712


def only_refusal():
    (entry,) = refusals()
    return entry


def test_action_outside_the_whitelist_is_audited_with_key_what_and_why(client, box):
    key, _ = create_key("operator", "ci-bot")
    body = {"server_id": "box", "action_type": "format_disk", "parameters": {"disk": "/dev/sda"}}
    response = client.post(ACTIONS, json=body, headers={"X-API-Key": key})
    assert (response.status_code, response.json["code"]) == (403, "COMMAND_NOT_ALLOWED")
    entry = only_refusal()
    assert (entry.actor, entry.scope, entry.source) == ("ci-bot", "operator", "action")
    assert (entry.result, entry.server_id, entry.action_type) == ("refused", "box", "format_disk")
    assert entry.argv is None and entry.action_id is None
    assert "403 COMMAND_NOT_ALLOWED" in entry.detail
    assert "not in the whitelist" in entry.detail
    assert '"disk":"/dev/sda"' in entry.detail  # what was asked


def test_injection_attempt_on_actions_is_422_and_audited(client, auth, box):
    body = {"server_id": "box", "action_type": "restart_service", "service_name": "x; rm -rf /"}
    response = client.post(ACTIONS, json=body, headers=auth.operator)
    assert (response.status_code, response.json["code"]) == (422, "VALIDATION_ERROR")
    entry = only_refusal()
    assert (entry.actor, entry.result, entry.action_type) == (
        "bootstrap-operator",
        "invalid",
        "restart_service",
    )
    assert "422 VALIDATION_ERROR" in entry.detail
    assert "parameters.service_name" in entry.detail
    assert "x; rm -rf /" in entry.detail


def test_unknown_server_and_unknown_alert_are_404_and_audited(client, auth, box):
    ghost = {"server_id": "ghost", "action_type": "touch_marker", "parameters": {"name": "a"}}
    assert client.post(ACTIONS, json=ghost, headers=auth.operator).status_code == 404
    no_alert = {"server_id": "box", "action_type": "touch_marker", "parameters": {"name": "a"},
                "alert_id": 4242}  # fmt: skip
    response = client.post(ACTIONS, json=no_alert, headers=auth.operator)
    assert (response.status_code, response.json["code"]) == (404, "NOT_FOUND")
    assert response.json["message"] == "Alert 4242 not found"
    first, second = refusals()
    assert (first.result, first.server_id) == ("not_found", "ghost")
    assert "Server 'ghost' not found" in first.detail
    assert (second.result, second.server_id) == ("not_found", "box")
    assert "Alert 4242 not found" in second.detail and '"alert_id":4242' in second.detail
    assert client.get(ACTIONS, headers=auth.viewer).json["total"] == 0


def test_a_duplicate_is_a_409_and_not_a_refusal(client, auth, box):
    client.put("/api/v1/servers/box/pause", headers=auth.operator)
    body = {"server_id": "box", "action_type": "touch_marker", "parameters": {"name": "a"}}
    assert client.post(ACTIONS, json=body, headers=auth.operator).status_code == 201
    assert client.post(ACTIONS, json=body, headers=auth.operator).status_code == 409
    assert refusals() == []


def test_injection_attempts_refused_by_the_schema_are_audited_too(client, auth, box):
    """`restart;id` as a type, or a NUL in a command, fails validation before the whitelist:
    still an attempt to run something, so it is written down with what was asked."""
    key, _ = create_key("operator", "night-shift")
    headers = {"X-API-Key": key}
    bad_type = {"server_id": "box", "action_type": "touch_marker;id"}
    assert client.post(ACTIONS, json=bad_type, headers=headers).status_code == 422
    nul = {"command": "echo hi\x00; reboot"}
    assert client.post(execute_url(), json=nul, headers=headers).status_code == 422
    action, execute = refusals()
    assert (action.source, action.result, action.actor) == ("action", "invalid", "night-shift")
    assert action.server_id == "box" and action.action_type is None  # not a storable type
    assert "touch_marker;id" in action.detail and "422 VALIDATION_ERROR" in action.detail
    assert (execute.source, execute.result, execute.server_id) == ("execute", "invalid", "box")
    assert "reboot" in execute.detail and "\x00" not in execute.detail


def test_requests_refused_before_authentication_are_not_audited(client, auth, box):
    bad = {"server_id": "Box!", "action_type": "touch_marker"}
    assert client.post(ACTIONS, json=bad).status_code == 401
    assert client.post(ACTIONS, json=bad, headers=auth.viewer).status_code == 403
    assert refusals() == []


def test_execute_refusals_are_audited_with_the_command_asked(client, auth, box):
    key, _ = create_key("operator", "night-shift")
    headers = {"X-API-Key": key}
    command = {"command": "echo hi; touch /tmp/PWNED"}
    assert client.post(execute_url(), json=command, headers=headers).status_code == 400
    bad_param = {"action_type": "touch_marker", "parameters": {"name": "$(reboot)"}}
    assert client.post(execute_url(), json=bad_param, headers=headers).status_code == 422
    assert client.post(execute_url("ghost"), json=command, headers=headers).status_code == 404
    refused, invalid, missing = refusals()
    assert {e.actor for e in (refused, invalid, missing)} == {"night-shift"}
    assert {e.source for e in (refused, invalid, missing)} == {"execute"}
    assert refused.result == "refused" and "400 COMMAND_NOT_ALLOWED" in refused.detail
    assert "echo hi; touch /tmp/PWNED" in refused.detail
    assert (invalid.result, invalid.action_type) == ("invalid", "touch_marker")
    assert "$(reboot)" in invalid.detail
    assert (missing.result, missing.server_id) == ("not_found", "ghost")


def test_what_was_asked_is_truncated_and_nul_safe(client, auth, box):
    long_command = "echo " + "A" * 4000
    response = client.post(execute_url(), json={"command": long_command}, headers=auth.operator)
    assert response.status_code == 400
    nul = {"action_type": "touch_marker", "parameters": {"name": "a\x00b", "x\x00": "y"}}
    response = client.post(execute_url(), json=nul, headers=auth.operator)
    assert response.status_code == 422
    long_entry, nul_entry = refusals()
    assert len(long_entry.detail) <= 2000
    assert "AAAA" in long_entry.detail and "…" in long_entry.detail
    assert "\x00" not in nul_entry.detail
    assert "a\\u0000b" in nul_entry.detail  # escaped, still readable


def test_a_server_id_too_long_for_the_column_is_kept_in_the_detail_only(client, auth, box):
    """The execute path takes any string as the server id: the audit must not 500 on it."""
    weird = "Not-An-Id_" + "x" * 200
    response = client.post(execute_url(weird), json={"command": "ls"}, headers=auth.operator)
    assert response.status_code == 404
    entry = only_refusal()
    assert entry.server_id is None
    assert "Not-An-Id_xxx" in entry.detail


def test_audit_api_lists_refusals_by_result(client, auth, box):
    body = {"server_id": "box", "action_type": "format_disk"}
    client.post(ACTIONS, json=body, headers=auth.operator)
    listed = client.get("/api/v1/audit?result=refused&source=action", headers=auth.viewer).json
    assert [e["action_type"] for e in listed["audit"]] == ["format_disk"]
    assert client.get("/api/v1/audit?result=not_found", headers=auth.viewer).status_code == 200
    assert client.get("/api/v1/audit?result=invalid", headers=auth.viewer).status_code == 200
    listed = client.get("/api/v1/audit?result=rate_limited", headers=auth.viewer)
    assert listed.status_code == 200


def test_rate_limited_requests_are_audited(client, auth, box):
    for name in "abcde":
        body = {"server_id": "box", "action_type": "touch_marker", "parameters": {"name": name}}
        assert client.post(ACTIONS, json=body, headers=auth.operator).status_code == 201
    body = {"server_id": "box", "action_type": "touch_marker", "parameters": {"name": "f"}}
    assert client.post(ACTIONS, json=body, headers=auth.operator).status_code == 429
    entry = only_refusal()
    assert (entry.result, entry.actor) == ("rate_limited", "bootstrap-operator")
    assert '"name":"f"' in entry.detail


def metric(client, name, **labels):
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in client.get("/metrics").data.decode().splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.split()[-1])
    return None


def test_unauthenticated_and_under_scoped_requests_are_counted_not_audited(client, auth, box):
    assert metric(client, "homelab_auth_failures_total", reason="missing") == 0
    body = {"server_id": "box", "action_type": "format_disk"}
    assert client.post(ACTIONS, json=body).status_code == 401
    assert client.post(ACTIONS, json=body, headers={"X-API-Key": "nope"}).status_code == 401
    assert client.post(ACTIONS, json=body, headers={"X-API-Key": "nope"}).status_code == 401
    assert client.post(ACTIONS, json=body, headers=auth.viewer).status_code == 403
    assert metric(client, "homelab_auth_failures_total", reason="missing") == 1
    assert metric(client, "homelab_auth_failures_total", reason="invalid") == 2
    assert metric(client, "homelab_auth_failures_total", reason="forbidden") == 1
    assert refusals() == []
