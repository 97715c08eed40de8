"""`GET /api/v1/prometheus/targets`: Prometheus http_sd for every agent that reported a port."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from control.fleet import offline
from control.fleet.targets import target_address
from tests.helpers import send_heartbeat

URL = "/api/v1/prometheus/targets"


def heartbeat(client, auth, server_id, port=9100, remote="10.0.0.5", **extra):
    body = {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    if port is not None:
        body["metrics_port"] = port
    response = send_heartbeat(
        client, auth, {**body, **extra}, environ_overrides={"REMOTE_ADDR": remote}
    )
    assert response.status_code == 200, response.json


def targets(client, auth):
    response = client.get(URL, headers=auth.bearer(auth.viewer_key))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json


def metric_samples(client, name):
    """{labels tuple: value} of one family on control's /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.data.decode()):
        if family.name == name:
            return {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    return {}


def server_status(client):
    """server_id → the status whose `homelab_server_status` series is 1."""
    found = {}
    for labels, value in metric_samples(client, "homelab_server_status").items():
        if value == 1:
            found[dict(labels)["server_id"]] = dict(labels)["status"]
    return found


def test_no_servers_is_an_empty_list(client, auth):
    assert targets(client, auth) == []


def test_agent_that_reported_its_port_is_a_target_with_labels(client, auth):
    heartbeat(client, auth, "web-1")
    assert targets(client, auth) == [
        {
            "targets": ["10.0.0.5:9100"],
            "labels": {"server_id": "web-1", "hostname": "web-1.lan"},
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
    assert [g["labels"]["server_id"] for g in targets(client, auth)] == ["a", "b"]
    assert server_status(client) == {"a": "offline", "b": "offline"}
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


def test_target_labels_do_not_change_with_pause_status_or_display_name(client, auth):
    """Status, pause and display name change at run time: as target labels each change would
    start a new series for every metric of the box. Only id, hostname and tags stay."""
    heartbeat(client, auth, "nas")
    client.put("/api/v1/servers/nas", json={"tags": ["storage"]}, headers=auth.operator)
    (before,) = targets(client, auth)
    assert client.put("/api/v1/servers/nas/pause", headers=auth.operator).status_code == 200
    (paused,) = targets(client, auth)
    changes = {"display_name": "The NAS"}
    assert client.put("/api/v1/servers/nas", json=changes, headers=auth.operator).status_code == 200
    (renamed,) = targets(client, auth)
    offline.mark_offline(0, now=None)
    (gone_quiet,) = targets(client, auth)
    assert client.put("/api/v1/servers/nas/unpause", headers=auth.operator).status_code == 200
    heartbeat(client, auth, "nas")
    (back,) = targets(client, auth)
    assert before == paused == renamed == gone_quiet == back
    assert before["labels"] == {"server_id": "nas", "hostname": "nas.lan", "tag_storage": "true"}


def test_status_is_a_state_set_on_controls_metrics(client, auth):
    heartbeat(client, auth, "web-1")
    client.post("/api/v1/servers", json={"id": "new", "hostname": "new"}, headers=auth.operator)
    samples = metric_samples(client, "homelab_server_status")
    # One series per server and status, always present, so the set of series never changes.
    assert samples == {
        (("server_id", server), ("status", status)): float(
            status == ("online" if server == "web-1" else "unknown")
        )
        for server in ("web-1", "new")
        for status in ("online", "offline", "unknown")
    }
    offline.mark_offline(0, now=None)
    assert server_status(client) == {"web-1": "offline", "new": "unknown"}
    assert metric_samples(client, "homelab_server_status").keys() == samples.keys()


def test_pause_is_a_zero_or_one_metric_on_controls_metrics(client, auth):
    heartbeat(client, auth, "web-1")
    heartbeat(client, auth, "db-1")
    assert client.put("/api/v1/servers/db-1/pause", headers=auth.operator).status_code == 200
    assert metric_samples(client, "homelab_server_paused") == {
        (("server_id", "db-1"),): 1.0,
        (("server_id", "web-1"),): 0.0,
    }
    assert client.put("/api/v1/servers/db-1/unpause", headers=auth.operator).status_code == 200
    assert metric_samples(client, "homelab_server_paused")[(("server_id", "db-1"),)] == 0.0


def test_display_name_is_an_info_metric_to_join_on(client, auth):
    heartbeat(client, auth, "nas")
    heartbeat(client, auth, "web-1")
    client.put("/api/v1/servers/nas", json={"display_name": "NAS"}, headers=auth.operator)
    assert metric_samples(client, "homelab_server_info") == {
        (("display_name", "NAS"), ("server_id", "nas")): 1.0,
        (("display_name", ""), ("server_id", "web-1")): 1.0,
    }
