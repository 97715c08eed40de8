"""Seed 000: server registration API (TC006-TC012) and its edge cases.

Over 300 lines: one resource's whole contract (seed 000's cases, validation tables, the list
built from raw rows checked against the schema) reads best in one place.
"""

from __future__ import annotations

import json

import pytest

from control.models import MetricsSample, Server
from tests.helpers import send_heartbeat

BASE = "/api/v1/servers"


def register(client, auth, **fields):
    body = {"id": "web-1", "hostname": "web-1.lan", **fields}
    response = client.post(BASE, json=body, headers=auth.operator)
    assert response.status_code == 201, response.json
    return response.json


def heartbeat(client, auth, server_id="web-1", **extra):
    body = {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": "2026-01-18T10:30:00Z",
        **extra,
    }
    response = send_heartbeat(client, auth, body)
    assert response.status_code == 200, response.json
    return response.json


def test_list_servers_is_empty_at_first(client, auth):
    response = client.get(BASE, headers=auth.viewer)
    assert response.status_code == 200
    assert response.json == {"servers": [], "total": 0, "limit": None, "offset": 0}


def test_register_server_with_minimal_fields_starts_unknown(client, auth):
    server = register(client, auth)
    assert server["id"] == "web-1"
    assert server["hostname"] == "web-1.lan"
    assert server["status"] == "unknown"
    assert server["ssh_port"] == 22
    assert server["last_seen"] is None
    assert server["latest_metrics"] is None
    assert server["created_at"].endswith("Z")


def test_register_server_with_all_fields(client, auth):
    server = register(
        client,
        auth,
        display_name="Web server",
        ip_address="192.168.1.10",
        tdp_watts=65,
        ssh_port=2222,
        ssh_user="deploy",
    )
    assert server["display_name"] == "Web server"
    assert server["ip_address"] == "192.168.1.10"
    assert server["tdp_watts"] == 65
    assert server["ssh_port"] == 2222
    assert server["ssh_user"] == "deploy"


def test_duplicate_server_is_409(client, auth):
    register(client, auth)
    response = client.post(BASE, json={"id": "web-1", "hostname": "other"}, headers=auth.operator)
    assert response.status_code == 409
    assert response.json["code"] == "CONFLICT"
    assert "web-1" in response.json["message"]


def test_get_server_details(client, auth):
    register(client, auth, tdp_watts=40)
    response = client.get(f"{BASE}/web-1", headers=auth.viewer)
    assert response.status_code == 200
    assert response.json["tdp_watts"] == 40


def test_get_nonexistent_server_is_404(client, auth):
    response = client.get(f"{BASE}/nope", headers=auth.viewer)
    assert response.status_code == 404
    assert response.json == {"code": "NOT_FOUND", "message": "Server 'nope' not found"}


def test_update_server_changes_only_given_fields(client, auth):
    register(client, auth, display_name="Old", tdp_watts=10)
    response = client.put(f"{BASE}/web-1", json={"display_name": "New"}, headers=auth.operator)
    assert response.status_code == 200
    assert response.json["display_name"] == "New"
    assert response.json["tdp_watts"] == 10
    assert response.json["updated_at"] >= response.json["created_at"]


def test_update_with_empty_body_returns_current_state(client, auth):
    created = register(client, auth, display_name="Same")
    response = client.put(f"{BASE}/web-1", json={}, headers=auth.operator)
    assert response.status_code == 200
    assert response.json["display_name"] == "Same"
    assert response.json["updated_at"] == created["updated_at"]


def test_update_nonexistent_server_is_404(client, auth):
    response = client.put(f"{BASE}/nope", json={"display_name": "x"}, headers=auth.operator)
    assert response.status_code == 404


def test_update_can_clear_nullable_field(client, auth):
    register(client, auth, tdp_watts=10)
    response = client.put(f"{BASE}/web-1", json={"tdp_watts": None}, headers=auth.operator)
    assert response.json["tdp_watts"] is None


def test_update_cannot_change_id(client, auth):
    register(client, auth)
    response = client.put(f"{BASE}/web-1", json={"id": "other"}, headers=auth.operator)
    assert response.status_code == 422
    assert "id" in response.json["errors"]


def test_delete_server_removes_it_and_its_metrics(client, auth, app):
    register(client, auth)
    heartbeat(client, auth, metrics={"cpu_percent": 10})
    assert MetricsSample.select().where(MetricsSample.server == "web-1").count() == 1
    response = client.delete(f"{BASE}/web-1", headers=auth.operator)
    assert response.status_code == 204
    assert response.data == b""
    assert client.get(f"{BASE}/web-1", headers=auth.viewer).status_code == 404
    assert MetricsSample.select().where(MetricsSample.server == "web-1").count() == 0


def test_delete_nonexistent_server_is_404(client, auth):
    assert client.delete(f"{BASE}/nope", headers=auth.operator).status_code == 404


def test_delete_keeps_an_event_saying_so(client, auth):
    register(client, auth)
    client.delete(f"{BASE}/web-1", headers=auth.operator)
    events = client.get("/api/v1/events?server_id=web-1", headers=auth.viewer).json["events"]
    assert [e["type"] for e in events] == ["server_deleted", "server_registered"]


@pytest.mark.parametrize("address", ["nas.lan", "nas", "192.168.1.10", "2001:db8::1", "a" * 63])
def test_ip_address_may_be_an_address_or_a_dns_name(client, auth, address):
    server = register(client, auth, ip_address=address)
    assert server["ip_address"] == address


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "Web_1"),
        ("id", "web 1"),
        ("id", "web-1\n"),
        ("id", ""),
        ("id", "a" * 101),
        ("id", "wéb"),
        ("id", 12),
        ("hostname", ""),
        ("hostname", "h" * 256),
        ("hostname", "bad host; rm -rf /"),
        ("display_name", "d" * 256),
        ("ip_address", "not an address"),
        ("ip_address", "-oProxyCommand=touch-x"),
        ("ip_address", "nas..lan"),
        ("ip_address", "10.0.0.300"),
        ("ip_address", "a" * 254),
        ("ip_address", "1" * 46),
        ("tdp_watts", -1),
        ("tdp_watts", 10001),
        ("tdp_watts", 1.5),
        ("tdp_watts", "65"),
        ("ssh_port", 0),
        ("ssh_port", 65536),
        ("ssh_user", "Root"),
        ("ssh_user", "a;b"),
    ],
)
def test_invalid_fields_are_422_with_field_errors(client, auth, field, value):
    body = {"id": "web-1", "hostname": "web-1", field: value}
    response = client.post(BASE, json=body, headers=auth.operator)
    assert response.status_code == 422
    assert response.json["code"] == "VALIDATION_ERROR"
    assert field in response.json["errors"]
    assert client.get(f"{BASE}/web-1", headers=auth.viewer).status_code == 404


def test_missing_required_fields_are_422(client, auth):
    response = client.post(BASE, json={}, headers=auth.operator)
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"id", "hostname"}


def test_unknown_fields_are_rejected(client, auth):
    response = client.post(
        BASE, json={"id": "a", "hostname": "a", "colour": "red"}, headers=auth.operator
    )
    assert response.status_code == 422
    assert "colour" in response.json["errors"]


def test_boundary_values_are_accepted(client, auth):
    server = register(
        client, auth, id="a" * 100, hostname="h" * 255, tdp_watts=10000, ip_address="2001:db8::1"
    )
    assert server["id"] == "a" * 100
    assert register(client, auth, id="b", tdp_watts=0)["tdp_watts"] == 0


def test_list_includes_latest_metrics_and_total(client, auth):
    register(client, auth)
    heartbeat(client, auth, metrics={"cpu_percent": 10, "memory_percent": 20})
    heartbeat(client, auth, metrics={"cpu_percent": 30, "memory_percent": 40, "disk_percent": 50})
    register(client, auth, id="db-1")
    listing = client.get(BASE, headers=auth.viewer).json
    assert listing["total"] == 2
    by_id = {s["id"]: s for s in listing["servers"]}
    assert by_id["web-1"]["latest_metrics"]["cpu_percent"] == 30
    assert by_id["web-1"]["latest_metrics"]["disk_percent"] == 50
    assert by_id["db-1"]["latest_metrics"] is None


def test_list_filters_by_status(client, auth):
    register(client, auth, id="quiet")
    heartbeat(client, auth, server_id="busy")
    online = client.get(f"{BASE}?status=online", headers=auth.viewer).json
    assert [s["id"] for s in online["servers"]] == ["busy"]
    assert online["total"] == 1
    unknown = client.get(f"{BASE}?status=unknown", headers=auth.viewer).json
    assert [s["id"] for s in unknown["servers"]] == ["quiet"]


def test_list_rejects_unknown_status_filter(client, auth):
    response = client.get(f"{BASE}?status=sleeping", headers=auth.viewer)
    assert response.status_code == 422
    assert "status" in response.json["errors"]


def test_list_uses_a_constant_number_of_queries(client, auth, app):
    from control.db import db

    for index in range(5):
        heartbeat(client, auth, server_id=f"s{index}", metrics={"cpu_percent": index})
    statements = []
    original = db.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return original(sql, params, *args, **kwargs)

    db.obj.execute_sql = counting
    try:
        listing = client.get(BASE, headers=auth.viewer).json
    finally:
        db.obj.execute_sql = original
    assert listing["total"] == 5
    assert all(s["latest_metrics"] for s in listing["servers"])
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) <= 2


def test_list_body_matches_the_documented_server_schema(client, auth):
    """The list is built from raw rows for speed; it must equal ServerSchema's dump."""
    from control.api.server_schemas import ServerSchema
    from control.fleet import servers

    register(client, auth, id="plain")
    register(
        client,
        auth,
        id="full",
        display_name="Full",
        ip_address="10.0.0.9",
        tdp_watts=35,
        ssh_port=2222,
        ssh_user="ops",
        tags=["rack_a", "nas"],
        role="nas",
        branch="main",
        segment="lan.2",
        update_enabled=False,
        version_lock="9f8e7d6",
        metadata={"rack": "a", "u": [1, 2.5, None, True], "note": "é\u2028"},
    )
    client.put("/api/v1/servers/full/pause", headers=auth.operator)
    body = {"health": "degraded", "reason": "fan"}
    assert client.patch("/api/v1/servers/full/health", json=body, headers=auth.operator).json
    heartbeat(
        client,
        auth,
        server_id="full",
        agent_version="1.2.3",
        metrics_port=9100,
        os_info={
            "distribution": "Debian",
            "version": "12",
            "kernel": "6.1",
            "architecture": "x86_64",
        },
        metrics={
            "cpu_percent": 12.5,
            "memory_total_mb": 16384,
            "load_1m": 0.25,
            "uptime_seconds": 3600,
            "disk_total_gb": 500.0,
        },
    )
    heartbeat(client, auth, server_id="bare")
    Server.update(
        current_commit_hash="1a2b3c4",
        packages=json.dumps({"upgradable": 2, "security": 0, "reboot_required": False}),
        containers=json.dumps([{"name": "web", "image": "nginx", "state": "running"}]),
    ).where(Server.id == "full").execute()
    listed = client.get(BASE, headers=auth.viewer).json["servers"]
    assert [s["id"] for s in listed] == ["bare", "full", "plain"]
    assert listed[1]["packages"]["upgradable"] == 2 and listed[1]["health_reasons"]
    for item in listed:
        assert item == ServerSchema().dump(servers.get_server(item["id"])), item["id"]


def test_list_is_one_statement_with_its_total(client, auth, app):
    """The page and the total come from one SELECT, filtered or not."""
    from control.db import db

    for index in range(3):
        heartbeat(client, auth, server_id=f"s{index}", metrics={"cpu_percent": index})
    statements = []
    original = db.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return original(sql, params, *args, **kwargs)

    db.obj.execute_sql = counting
    try:
        listings = [
            client.get(f"{BASE}{query}", headers=auth.viewer).json
            for query in ("", "?limit=2", "?status=online&offset=1", "?health=failed")
        ]
    finally:
        db.obj.execute_sql = original
    assert [(len(page["servers"]), page["total"]) for page in listings] == [
        (3, 3),
        (2, 3),
        (2, 3),
        (0, 0),
    ]
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 4


def test_list_past_the_last_page_still_counts_every_match(client, auth):
    for server_id in ("a", "b", "c"):
        register(client, auth, id=server_id)
    past = client.get(f"{BASE}?offset=5", headers=auth.viewer).json
    assert (past["servers"], past["total"], past["offset"]) == ([], 3, 5)
    last = client.get(f"{BASE}?limit=2&offset=2", headers=auth.viewer).json
    assert ([s["id"] for s in last["servers"]], last["total"]) == (["c"], 3)


def test_list_shows_stored_edge_values_as_the_schema_does(client, auth):
    """Whole-second times (no fraction stored), empty stored JSON columns and a metadata
    integer beyond 64 bits come out of the raw-row list as ServerSchema shows them."""
    import datetime as dt

    from control.api.server_schemas import ServerSchema
    from control.fleet import servers

    register(client, auth, id="edge", metadata={"big": 2**70, "nested": {"a": [1, "x"]}})
    # 17 significant digits (the schema's float, whatever precision the column keeps)
    heartbeat(client, auth, server_id="edge", metrics={"cpu_percent": 0.1 + 0.2})
    whole = dt.datetime(2026, 1, 2, 3, 4, 5)
    Server.update(
        created_at=whole, last_seen=whole, health_changed_at=whole, tags="", health_reasons=""
    ).where(Server.id == "edge").execute()
    MetricsSample.update(received_at=whole.replace(microsecond=999999)).execute()
    item = client.get(BASE, headers=auth.viewer).json["servers"][0]
    assert item["created_at"] == "2026-01-02T03:04:05.000Z"
    assert item["latest_metrics"]["received_at"] == "2026-01-02T03:04:05.999Z"
    assert (item["tags"], item["health_reasons"]) == ([], [])
    assert item["metadata"]["big"] == 2**70
    assert item == ServerSchema().dump(servers.get_server("edge"))
