"""Seed 002's server fields: role, branch, segment, update_enabled, version_lock, metadata, the
latest facts the heartbeats carried, and the list's filters by health, role and segment."""

from __future__ import annotations

import json

import pytest

from control.models import Server

BASE = "/api/v1/servers"
INVENTORY = {
    "role": "web",
    "branch": "release-1.2",
    "segment": "dmz.eu_1",
    "update_enabled": False,
    "version_lock": "1a2b3c4d",
    "metadata": {"rack": "a", "shelf": 2, "tags": ["pi", None], "ok": True, "w": 1.5},
}
CONTAINERS = [
    {"name": "web", "image": "nginx:1.27", "state": "running", "health": "healthy",
     "exit_code": 0, "restart_count": 0},
    {"name": "job", "image": "busybox", "state": "exited", "health": None, "exit_code": 1,
     "restart_count": None},
]  # fmt: skip
SERVICES = [{"name": "nginx.service", "active_state": "active", "sub_state": "running"}]
PACKAGES = {"upgradable": 12, "security": 3, "reboot_required": True}


def create(client, auth, server_id="web-1", **fields):
    body = {"id": server_id, "hostname": server_id, **fields}
    return client.post(BASE, json=body, headers=auth.operator)


def assert_422(response, field):
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.json["code"] == "VALIDATION_ERROR"
    assert field in response.json["errors"], response.json


def test_a_new_server_has_the_inventory_defaults_and_no_facts(client, auth):
    server = create(client, auth).json
    assert {key: server[key] for key in INVENTORY} == {
        "role": None, "branch": None, "segment": None, "update_enabled": True,
        "version_lock": None, "metadata": None,
    }  # fmt: skip
    assert (server["health"], server["health_reasons"]) == ("unknown", ["no heartbeat yet"])
    assert server["current_commit_hash"] is None
    assert (server["containers"], server["services"], server["packages"]) == (None, None, None)
    assert server["manual_health"] is None and server["manual_health_by"] is None


def test_inventory_fields_are_set_on_create_and_changed_or_cleared_by_put(client, auth):
    created = create(client, auth, **INVENTORY)
    assert created.status_code == 201, created.json
    assert {key: created.json[key] for key in INVENTORY} == INVENTORY
    assert (
        client.get(f"{BASE}/web-1", headers=auth.viewer).json["metadata"] == INVENTORY["metadata"]
    )
    cleared = {key: None for key in INVENTORY if key != "update_enabled"}
    response = client.put(
        f"{BASE}/web-1", json={**cleared, "update_enabled": True}, headers=auth.operator
    )
    assert response.status_code == 200, response.json
    assert {key: response.json[key] for key in INVENTORY} == {**cleared, "update_enabled": True}
    role_only = client.put(f"{BASE}/web-1", json={"role": "db"}, headers=auth.operator).json
    assert (role_only["role"], role_only["segment"]) == ("db", None)


def test_metadata_up_to_4_kb_serialized_is_kept_and_one_byte_more_is_422(client, auth):
    # {"k":"…"} is 8 bytes of JSON around the value; "é" is two bytes in UTF-8.
    fits = {"k": "é" * 2 + "x" * (4096 - 8 - 4)}
    assert len(json.dumps(fits, ensure_ascii=False, separators=(",", ":")).encode()) == 4096
    assert create(client, auth, metadata=fits).status_code == 201
    over = {"k": fits["k"] + "x"}
    assert_422(
        client.put(f"{BASE}/web-1", json={"metadata": over}, headers=auth.operator), "metadata"
    )
    assert client.get(f"{BASE}/web-1", headers=auth.viewer).json["metadata"] == fits


def nested(depth):
    value = "bottom"
    for _ in range(depth):
        value = {"d": value}
    return value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "Web"), ("role", "-web"), ("role", "w" * 65), ("role", ""), ("role", 5),
        ("role", "web\n"), ("branch", "feature/x"), ("segment", "a b"), ("segment", "dmz€"),
        ("update_enabled", "true"), ("update_enabled", 1), ("update_enabled", 0),
        ("update_enabled", None), ("update_enabled", "yes"),
        ("version_lock", "ABCDEF1"), ("version_lock", "abc123"), ("version_lock", "a" * 41),
        ("version_lock", "g123456"), ("version_lock", 1234567),
        ("metadata", []), ("metadata", "x"), ("metadata", 5), ("metadata", True),
        ("metadata", {"a": "\x00"}), ("metadata", {"\x00": 1}),
        ("metadata", {"a": [{"b": "x\x00"}]}),
        ("metadata", {"x": "y" * 5000}), ("metadata", {str(n): n for n in range(1000)}),
        ("metadata", nested(9)), ("metadata", {"a": [[[[[[[[[1]]]]]]]]]}),
    ],
)  # fmt: skip
def test_hostile_inventory_values_are_422_on_create_and_on_update(client, auth, field, value):
    assert_422(create(client, auth, "bad", **{field: value}), field)
    assert client.get(f"{BASE}/bad", headers=auth.viewer).status_code == 404
    create(client, auth, "ok")
    assert_422(client.put(f"{BASE}/ok", json={field: value}, headers=auth.operator), field)


def test_metadata_numbers_beyond_64_bits_are_kept_in_the_list_and_the_detail(client, auth):
    metadata = {"serial": 2**70, "neg": -(2**64)}
    assert create(client, auth, metadata=metadata).json["metadata"] == metadata
    assert client.get(BASE, headers=auth.viewer).json["servers"][0]["metadata"] == metadata


def test_metadata_nested_up_to_8_levels_is_accepted(client, auth):
    assert create(client, auth, metadata=nested(8)).json["metadata"] == nested(8)


def test_nesting_deeper_than_any_body_may_be_is_400_not_500(client, auth):
    response = create(client, auth, metadata=nested(40))
    assert (response.status_code, response.json["code"]) == (400, "BAD_REQUEST")


def set_facts(server_id, **facts):
    """What the heartbeats would have stored (the heartbeat's own tests cover how)."""
    stored = {key: json.dumps(value) for key, value in facts.items() if key != "commit"}
    Server.update(current_commit_hash=facts.get("commit"), **stored).where(
        Server.id == server_id
    ).execute()


def test_the_latest_facts_are_shown_parsed_and_the_list_leaves_out_the_long_ones(client, auth):
    create(client, auth)
    set_facts("web-1", containers=CONTAINERS, services=SERVICES, packages=PACKAGES,
              commit="0123456789abcdef0123456789abcdef01234567")  # fmt: skip
    server = client.get(f"{BASE}/web-1", headers=auth.viewer).json
    assert (server["containers"], server["services"]) == (CONTAINERS, SERVICES)
    assert server["packages"] == PACKAGES
    assert server["current_commit_hash"] == "0123456789abcdef0123456789abcdef01234567"
    (listed,) = client.get(BASE, headers=auth.viewer).json["servers"]
    assert "containers" not in listed and "services" not in listed
    assert listed["packages"] == PACKAGES
    assert listed["current_commit_hash"] == server["current_commit_hash"]
    # An empty list is a fact too ("no containers"), unlike null ("never reported").
    set_facts("web-1", containers=[])
    assert client.get(f"{BASE}/web-1", headers=auth.viewer).json["containers"] == []


def test_the_schema_says_where_the_long_lists_are(client):
    schemas = client.get("/api/openapi.json").json["components"]["schemas"]
    assert "containers" not in schemas["Server"]["properties"]
    assert "containers" in schemas["ServerDetail"]["properties"]
    assert "GET /servers/{id}" in schemas["Server"]["description"]


@pytest.fixture
def fleet(client, auth):
    create(client, auth, "a", role="web", segment="dmz")
    create(client, auth, "b", role="web", segment="lan")
    create(client, auth, "c", role="db", segment="lan")
    body = {"health": "failed", "reason": "disk replaced"}
    assert client.patch(f"{BASE}/b/health", json=body, headers=auth.operator).status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("health=failed", ["b"]), ("health=unknown", ["a", "c"]), ("health=healthy", []),
        ("role=web", ["a", "b"]), ("segment=lan", ["b", "c"]), ("role=web&segment=lan", ["b"]),
        ("role=web&health=unknown", ["a"]), ("role=cache", []),
        ("role=web&limit=1&offset=1", ["b"]),
    ],
)  # fmt: skip
def test_the_list_filters_by_health_role_and_segment(client, auth, fleet, query, expected):
    body = client.get(f"{BASE}?{query}", headers=auth.viewer).json
    assert [s["id"] for s in body["servers"]] == expected
    if "limit" not in query:
        assert body["total"] == len(expected)


@pytest.mark.parametrize(
    ("query", "field"),
    [("health=sick", "health"), ("health=", "health"), ("role=Web", "role"),
     ("segment=a%00b", "segment"), ("role=" + "r" * 65, "role")],
)  # fmt: skip
def test_an_unknown_health_or_a_malformed_role_or_segment_filter_is_422(client, auth, query, field):
    assert_422(client.get(f"{BASE}?{query}", headers=auth.viewer), field)
