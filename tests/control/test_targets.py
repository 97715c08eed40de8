"""`GET /api/v1/prometheus/targets`: Prometheus http_sd for every agent that reported a port."""

from __future__ import annotations

import pytest

from control.fleet import offline
from control.fleet.targets import target_address

URL = "/api/v1/prometheus/targets"


def heartbeat(client, auth, server_id, port=9100, remote="10.0.0.5", **extra):
    body = {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    if port is not None:
        body["metrics_port"] = port
    response = client.post(
        "/api/v1/agents/heartbeat",
        json={**body, **extra},
        headers=auth.agent,
        environ_overrides={"REMOTE_ADDR": remote},
    )
    assert response.status_code == 200, response.json


def targets(client, auth):
    response = client.get(URL, headers=auth.bearer(auth.viewer_key))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json


def test_no_servers_is_an_empty_list(client, auth):
    assert targets(client, auth) == []


def test_agent_that_reported_its_port_is_a_target_with_labels(client, auth):
    heartbeat(client, auth, "web-1")
    assert targets(client, auth) == [
        {
            "targets": ["10.0.0.5:9100"],
            "labels": {
                "server_id": "web-1",
                "hostname": "web-1.lan",
                "status": "online",
                "is_paused": "false",
            },
        }
    ]


def test_servers_without_a_metrics_port_are_not_targets(client, auth):
    heartbeat(client, auth, "old-agent", port=None)
    body = {"id": "manual", "hostname": "manual", "ip_address": "10.0.0.9"}
    client.post("/api/v1/servers", json=body, headers=auth.operator)
    assert targets(client, auth) == []


def test_ip_address_wins_over_the_heartbeat_address_and_labels_follow_the_server(client, auth):
    heartbeat(client, auth, "nas", port=9101)
    changes = {"ip_address": "192.168.1.20", "display_name": "NAS", "tags": ["storage", "rack_2"]}
    assert client.put("/api/v1/servers/nas", json=changes, headers=auth.operator).status_code == 200
    client.put("/api/v1/servers/nas/pause", headers=auth.operator)
    (group,) = targets(client, auth)
    assert group["targets"] == ["192.168.1.20:9101"]
    assert group["labels"] == {
        "server_id": "nas",
        "hostname": "nas.lan",
        "display_name": "NAS",
        "status": "online",
        "is_paused": "true",
        "tag_rack_2": "true",
        "tag_storage": "true",
    }


def test_ipv6_addresses_are_bracketed(client, auth):
    heartbeat(client, auth, "v6", remote="2001:db8::7")
    assert targets(client, auth)[0]["targets"] == ["[2001:db8::7]:9100"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("10.1.2.3", "10.1.2.3:9100"),
        ("::1", "[::1]:9100"),
        ("::ffff:10.1.2.3", "10.1.2.3:9100"),
        ("box.lan", "box.lan:9100"),
    ],
)
def test_target_address_forms(host, expected):
    assert target_address(host, 9100) == expected


def test_offline_servers_stay_and_deleted_ones_go(client, auth):
    heartbeat(client, auth, "a")
    heartbeat(client, auth, "b")
    offline.mark_offline(0, now=None)
    statuses = {g["labels"]["server_id"]: g["labels"]["status"] for g in targets(client, auth)}
    assert statuses == {"a": "offline", "b": "offline"}
    assert client.delete("/api/v1/servers/a", headers=auth.operator).status_code == 204
    assert [g["labels"]["server_id"] for g in targets(client, auth)] == ["b"]


def test_targets_need_a_viewer_key(client, auth):
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers=auth.agent).status_code == 403


@pytest.mark.parametrize(
    "tags",
    [["Upper"], ["with-dash"], [""], ["x" * 33], [f"t{i}" for i in range(17)], ["a", "a"], "a"],
)
def test_invalid_tags_are_422(client, auth, tags):
    body = {"id": "s", "hostname": "s", "tags": tags}
    response = client.post("/api/v1/servers", json=body, headers=auth.operator)
    assert response.status_code == 422
    assert "tags" in response.json["errors"]


def test_tags_are_returned_sorted_and_can_be_cleared(client, auth):
    body = {"id": "s", "hostname": "s", "tags": ["web", "db_primary"]}
    created = client.post("/api/v1/servers", json=body, headers=auth.operator).json
    assert created["tags"] == ["db_primary", "web"]
    cleared = client.put("/api/v1/servers/s", json={"tags": []}, headers=auth.operator).json
    assert cleared["tags"] == []
