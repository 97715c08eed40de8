"""Authentication and scopes, swept over every operation in the OpenAPI spec."""

from __future__ import annotations

import pytest

from control.keys import KeyRing, create_key, hash_key, revoke_key
from tests.helpers import api_operations

HEARTBEAT = "/api/v1/agents/heartbeat"


def call(client, method, path, headers=None):
    return client.open(path, method=method.upper(), json={}, headers=headers or {})


def test_spec_lists_the_core_operations(client):
    found = set(api_operations(client))
    assert {
        ("get", "/api/v1/servers"),
        ("post", "/api/v1/servers"),
        ("get", "/api/v1/servers/1"),
        ("put", "/api/v1/servers/1"),
        ("delete", "/api/v1/servers/1"),
        ("post", HEARTBEAT),
        ("get", "/api/v1/events"),
        ("put", "/api/v1/servers/1/pause"),
        ("put", "/api/v1/servers/1/unpause"),
        ("get", "/api/v1/servers/1/actions"),
        ("post", "/api/v1/servers/1/commands/execute"),
        ("get", "/api/v1/actions"),
        ("post", "/api/v1/actions"),
        ("get", "/api/v1/actions/1"),
        ("post", "/api/v1/actions/1/approve"),
        ("post", "/api/v1/actions/1/reject"),
        ("get", "/api/v1/audit"),
    } <= found


def test_every_operation_requires_a_key(client):
    for method, path in api_operations(client):
        response = call(client, method, path)
        assert response.status_code == 401, (method, path)
        assert response.json["code"] == "UNAUTHORIZED"


def test_every_operation_rejects_a_wrong_key(client):
    for method, path in api_operations(client):
        response = call(client, method, path, {"X-API-Key": "not-a-key"})
        assert response.status_code == 401, (method, path)


def test_under_scoped_keys_are_403_everywhere(client, auth):
    for method, path in api_operations(client):
        if path == HEARTBEAT:
            weaker = [auth.viewer]
        elif method == "get":
            weaker = [auth.agent]
        else:
            weaker = [auth.agent, auth.viewer]
        for headers in weaker:
            response = call(client, method, path, headers)
            assert response.status_code == 403, (method, path, headers)
            assert response.json["code"] == "FORBIDDEN"


def test_operations_document_their_security(client):
    spec = client.get("/api/openapi.json").json
    assert set(spec["components"]["securitySchemes"]) == {"ApiKeyHeader", "BearerAuth"}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            if method != "parameters":
                assert operation.get("security"), (method, path)
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_auth_is_checked_before_the_body(client):
    response = client.post("/api/v1/servers", data=b"{broken", content_type="application/json")
    assert response.status_code == 401


def test_bearer_and_header_forms_both_work(client, auth):
    assert client.get("/api/v1/servers", headers=auth.bearer(auth.viewer_key)).status_code == 200
    assert client.get("/api/v1/servers", headers=auth.viewer).status_code == 200
    basic = {"Authorization": f"Basic {auth.viewer_key}"}
    assert client.get("/api/v1/servers", headers=basic).status_code == 401


@pytest.mark.parametrize("odd", ["\xff\xfe\x00", "ключ", "k" * 10_000, " ", "\x00"])
def test_odd_bytes_in_a_key_are_401_not_500(client, odd):
    environ = {"HTTP_X_API_KEY": odd.encode("utf-8").decode("latin-1")}
    response = client.get("/api/v1/servers", environ_overrides=environ)
    assert response.status_code == 401


def test_stored_keys_work_by_scope_and_stop_when_revoked(client):
    viewer_key, _ = create_key("viewer", "dash")
    operator_key, _ = create_key("operator", "admin")
    assert client.get("/api/v1/servers", headers={"X-API-Key": viewer_key}).status_code == 200
    forbidden = client.post(
        "/api/v1/servers", json={"id": "a", "hostname": "a"}, headers={"X-API-Key": viewer_key}
    )
    assert forbidden.status_code == 403
    created = client.post(
        "/api/v1/servers", json={"id": "a", "hostname": "a"}, headers={"X-API-Key": operator_key}
    )
    assert created.status_code == 201
    revoke_key("dash")
    assert client.get("/api/v1/servers", headers={"X-API-Key": viewer_key}).status_code == 401


def test_only_the_hash_of_a_key_is_stored(app):
    from control.models import ApiKey

    key, row = create_key("agent", "box")
    stored = ApiKey.get_by_id(row.id)
    assert stored.key_hash == hash_key(key)
    assert key not in {stored.key_hash, stored.prefix, stored.name}


def test_keyring_without_bootstrap_keys_rejects_empty_key(app):
    assert KeyRing().resolve("") is None
    assert KeyRing(operator_key="op").resolve("op").scope == "operator"
