"""The OpenAPI document tells the truth about status codes, in both directions.

Every error status (4xx/5xx) an operation documents is provoked here (or by the named test
that needs a real sshd), and every status a provocation gets is documented for that operation. A new
operation fails `test_every_operation_is_provoked` until its provocations are written down.
"""

from __future__ import annotations

import pytest

from tests.helpers import free_port

SERVER = "/api/v1/servers/{server_id}"
ACTION = "/api/v1/actions/{action_id}"
MALFORMED = "{not json"
PLAIN = '{"sent": "as text/plain"}'  # JSON under another media type: 415

# (method, path template) → [(status, method, url, json body or MALFORMED)], made with a fleet
# holding server web-1 (paused, SSH port closed) and its pending action 1.
PROVOKED = {
    ("get", "/api/v1/servers"): [
        (200, "/api/v1/servers", None),
        (422, "/api/v1/servers?x=1", None),
    ],
    ("post", "/api/v1/servers"): [
        (201, "/api/v1/servers", {"id": "new", "hostname": "new"}),
        (400, "/api/v1/servers", MALFORMED),
        (415, "/api/v1/servers", PLAIN),
        (409, "/api/v1/servers", {"id": "web-1", "hostname": "web-1"}),
        (422, "/api/v1/servers", {"id": "Bad Id", "hostname": "x"}),
    ],
    ("get", SERVER): [(200, "/api/v1/servers/web-1", None), (404, "/api/v1/servers/gone", None)],
    ("put", SERVER): [
        (200, "/api/v1/servers/web-1", {"display_name": "Web"}),
        (400, "/api/v1/servers/web-1", MALFORMED),
        (415, "/api/v1/servers/web-1", PLAIN),
        (404, "/api/v1/servers/gone", {"display_name": "x"}),
        (422, "/api/v1/servers/web-1", {"tdp_watts": -1}),
    ],
    ("delete", SERVER): [(404, "/api/v1/servers/gone", None), (204, "/api/v1/servers/new", None)],
    ("put", SERVER + "/pause"): [
        (200, "/api/v1/servers/web-1/pause", None),
        (404, "/api/v1/servers/gone/pause", None),
    ],
    ("put", SERVER + "/unpause"): [(404, "/api/v1/servers/gone/unpause", None)],
    ("patch", SERVER + "/health"): [
        (200, "/api/v1/servers/web-1/health", {"health": "failed", "reason": "disk"}),
        (400, "/api/v1/servers/web-1/health", MALFORMED),
        (415, "/api/v1/servers/web-1/health", PLAIN),
        (404, "/api/v1/servers/gone/health", {"health": None}),
        (422, "/api/v1/servers/web-1/health", {"health": "offline"}),
    ],
    ("get", SERVER + "/updates"): [
        (200, "/api/v1/servers/web-1/updates", None),
        (404, "/api/v1/servers/gone/updates", None),
        (422, "/api/v1/servers/web-1/updates?limit=0", None),
    ],
    ("get", SERVER + "/events"): [
        (200, "/api/v1/servers/web-1/events", None),
        (404, "/api/v1/servers/gone/events", None),
        (422, "/api/v1/servers/web-1/events?severity=fatal", None),
    ],
    ("post", SERVER + "/enrollment/reset"): [
        (200, "/api/v1/servers/web-1/enrollment/reset", None),
        (404, "/api/v1/servers/gone/enrollment/reset", None),
    ],
    ("post", SERVER + "/commands/execute"): [
        (400, "/api/v1/servers/web-1/commands/execute", {"command": "rm -rf /"}),
        (422, "/api/v1/servers/web-1/commands/execute", {}),
        (415, "/api/v1/servers/web-1/commands/execute", PLAIN),
        (404, "/api/v1/servers/gone/commands/execute", {"action_type": "clear_logs"}),
        (500, "/api/v1/servers/web-1/commands/execute", {"action_type": "clear_logs"}),
        (400, "/api/v1/servers/web-1/commands/execute", {"command": "reboot"}),
        (400, "/api/v1/servers/web-1/commands/execute", {"command": "id; id"}),
        (400, "/api/v1/servers/web-1/commands/execute", {"action_type": "format_disk"}),
        (429, "/api/v1/servers/web-1/commands/execute", {"action_type": "clear_logs"}),
    ],
    ("post", "/api/v1/agents/heartbeat"): [
        (200, "/api/v1/agents/heartbeat", {"server_id": "beat", "hostname": "beat",
                                           "timestamp": "2026-01-01T00:00:00Z"}),
        (400, "/api/v1/agents/heartbeat", MALFORMED),
        (415, "/api/v1/agents/heartbeat", PLAIN),
        (422, "/api/v1/agents/heartbeat", {"server_id": "beat"}),
    ],
    ("get", "/api/v1/actions"): [
        (200, "/api/v1/actions", None),
        (422, "/api/v1/actions?limit=0", None),
    ],
    ("post", "/api/v1/actions"): [
        (201, "/api/v1/actions", {"server_id": "web-1", "action_type": "clear_logs"}),
        (400, "/api/v1/actions", MALFORMED),
        (415, "/api/v1/actions", PLAIN),
        (403, "/api/v1/actions", {"server_id": "web-1", "action_type": "format_disk"}),
        (404, "/api/v1/actions", {"server_id": "gone", "action_type": "clear_logs"}),
        (404, "/api/v1/actions", {"server_id": "web-1", "action_type": "clear_logs",
                                  "alert_id": 99}),
        (409, "/api/v1/actions", {"server_id": "web-1", "action_type": "clear_logs"}),
        (422, "/api/v1/actions", {"server_id": "web-1", "action_type": "restart_service",
                                  "service_name": "a;b"}),
        (429, "/api/v1/actions", {"server_id": "web-1", "action_type": "clear_logs"}),
    ],
    ("get", ACTION): [(200, "/api/v1/actions/1", None), (404, "/api/v1/actions/99", None)],
    ("post", ACTION + "/approve"): [
        (404, "/api/v1/actions/99/approve", None),
        (200, "/api/v1/actions/1/approve", None),
        (409, "/api/v1/actions/1/approve", None),
    ],
    ("post", ACTION + "/reject"): [
        (400, "/api/v1/actions/1/reject", MALFORMED),
        (415, "/api/v1/actions/1/reject", PLAIN),
        (422, "/api/v1/actions/1/reject", {"reason": ""}),
        (404, "/api/v1/actions/99/reject", {"reason": "no"}),
        (409, "/api/v1/actions/1/reject", {"reason": "no"}),
    ],
    ("get", SERVER + "/actions"): [
        (200, "/api/v1/servers/web-1/actions", None),
        (404, "/api/v1/servers/gone/actions", None),
        (422, "/api/v1/servers/web-1/actions?status=done", None),
    ],
    ("get", "/api/v1/events"): [
        (200, "/api/v1/events", None),
        (422, "/api/v1/events?type=x", None),
        (422, "/api/v1/events?since=yesterday", None),
    ],
    ("get", "/api/v1/audit"): [(200, "/api/v1/audit", None), (422, "/api/v1/audit?result=x", None)],
    ("get", "/api/v1/prometheus/targets"): [(200, "/api/v1/prometheus/targets", None)],
    ("get", "/api/v1/alerts"): [
        (200, "/api/v1/alerts", None),
        (422, "/api/v1/alerts?status=x", None),
    ],
    ("get", "/api/v1/alerts/{alert_id}"): [(404, "/api/v1/alerts/1", None)],
    ("post", "/api/v1/alerts/alertmanager"): [
        (200, "/api/v1/alerts/alertmanager", {"version": "4", "alerts": []}),
        (400, "/api/v1/alerts/alertmanager", MALFORMED),
        (415, "/api/v1/alerts/alertmanager", PLAIN),
        (422, "/api/v1/alerts/alertmanager", {"version": "3", "alerts": []}),
    ],
    ("get", "/api/v1/costs"): [(200, "/api/v1/costs", None)],
}  # fmt: skip

# Statuses only a real sshd can produce, proven by the named tests.
PROVOKED_ELSEWHERE = {
    ("post", "/api/v1/agents/heartbeat", 429): "tests/control/test_enrollment.py (agent keys)",
    ("post", SERVER + "/commands/execute", 408): "tests/reliability/test_slow_ssh.py",
}


@pytest.fixture
def settings_overrides():
    # Five requests per key and endpoint: the sixth that reaches the whitelist (404s do not
    # count) is the 429 below, on execute and on actions (the fleet's action is the first).
    return {"rate_limit": 5}


@pytest.fixture
def spec(client):
    return client.get("/api/openapi.json").json


def operations(spec):
    """(method, path) → its documented statuses, for every operation in the document."""
    return {
        (method, path): {int(code) for code in op["responses"] if code != "default"}
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    }


@pytest.fixture
def fleet(client, auth):
    closed = free_port()  # nothing listens: an SSH attempt is refused at once
    body = {"id": "web-1", "hostname": "web-1", "ip_address": "127.0.0.1", "ssh_port": closed}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    assert client.put("/api/v1/servers/web-1/pause", headers=auth.operator).status_code == 200
    action = {"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}
    created = client.post("/api/v1/actions", json=action, headers=auth.operator)
    assert (created.status_code, created.json["id"], created.json["status"]) == (
        201,
        1,
        "pending",
    )


def test_every_operation_is_provoked(spec):
    assert set(operations(spec)) == set(PROVOKED)


def test_every_status_returned_is_documented_and_every_documented_one_reachable(
    client, auth, spec, fleet
):
    documented = operations(spec)
    reached = set()
    for (method, path), provocations in PROVOKED.items():
        for status, url, body in provocations:
            if body is MALFORMED or body is PLAIN:
                response = client.open(
                    url, method=method.upper(), data=body, headers=auth.operator,
                    content_type="application/json" if body is MALFORMED else "text/plain",
                )  # fmt: skip
            else:
                response = client.open(url, method=method.upper(), json=body, headers=auth.operator)
            assert response.status_code == status, (method, url, response.get_data(as_text=True))
            assert status in documented[(method, path)], f"{method} {path}: {status} undocumented"
            reached.add((method, path, status))
    for (method, path), statuses in documented.items():
        for status in {s for s in statuses if s >= 400} - {401, 403}:
            key = (method, path, status)
            assert key in reached or key in PROVOKED_ELSEWHERE, f"{method} {path}: {status} unseen"


def test_every_operation_documents_and_gives_401_and_403(client, auth, spec):
    for (method, path), statuses in operations(spec).items():
        url = path.replace("{server_id}", "web-1").replace("{action_id}", "1")
        url = url.replace("{alert_id}", "1")
        assert {401, 403} <= statuses, f"{method} {path}"
        assert client.open(url, method=method.upper()).status_code == 401
        wrong = auth.viewer if path == "/api/v1/agents/heartbeat" else auth.agent
        assert client.open(url, method=method.upper(), headers=wrong).status_code == 403, path
