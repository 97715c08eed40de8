"""Every list endpoint behaves the same: one envelope, validated filters, the same paging."""

from __future__ import annotations

import pytest


def assert_error(response, status: int, code: str) -> None:
    """The response is our error shape with this status and code."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["code"] == code


# path → (a filter with a value no such item can have, a valid filter)
LISTS = {
    "/api/v1/servers": ("status=sleeping", "status=online"),
    "/api/v1/actions": ("status=done", "status=pending"),
    "/api/v1/servers/web-1/actions": ("status=done", "action_type=clear_logs"),
    "/api/v1/events": ("type=bogus", "type=server_registered"),
    "/api/v1/servers/web-1/events": ("severity=fatal", "severity=info"),
    # No filters of its own (yet): the page size is the value it checks.
    "/api/v1/servers/web-1/updates": ("limit=101", "limit=100"),
    "/api/v1/audit": ("source=cron", "source=execute"),
    "/api/v1/alerts": ("status=pending", "status=firing"),
}


@pytest.fixture
def web1(client, auth):
    body = {"id": "web-1", "hostname": "web-1"}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201


@pytest.mark.parametrize("path", LISTS)
def test_every_list_has_the_same_envelope(client, auth, web1, path):
    body = client.get(path, headers=auth.viewer).json
    plural = path.rsplit("/", 1)[-1]
    assert set(body) == {plural, "total", "limit", "offset"}
    assert isinstance(body[plural], list) and body["total"] >= len(body[plural])


@pytest.mark.parametrize("path", LISTS)
def test_an_unknown_filter_value_is_422_on_every_list(client, auth, web1, path):
    bad, good = LISTS[path]
    assert client.get(f"{path}?{good}", headers=auth.viewer).status_code == 200
    response = client.get(f"{path}?{bad}", headers=auth.viewer)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert bad.split("=")[0] in response.json["errors"]


@pytest.mark.parametrize("path", LISTS)
def test_an_unknown_query_parameter_is_422_on_every_list(client, auth, web1, path):
    response = client.get(f"{path}?stauts=online", headers=auth.viewer)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert "stauts" in response.json["errors"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("query", ["limit=0", "offset=-1", "limit=abc", "server_id=Not_An_Id"])
def test_paging_and_id_filters_are_checked_on_every_list(client, auth, web1, path, query):
    # On /servers/web-1/actions `server_id` is not a filter at all: 422 as unknown.
    response = client.get(f"{path}?{query}", headers=auth.viewer)
    assert_error(response, 422, "VALIDATION_ERROR")


def test_servers_page_only_when_asked(client, auth):
    for name in ("a", "b", "c", "d"):
        body = {"id": name, "hostname": name}
        assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    whole = client.get("/api/v1/servers", headers=auth.viewer).json
    assert [s["id"] for s in whole["servers"]] == ["a", "b", "c", "d"]
    assert (whole["total"], whole["limit"], whole["offset"]) == (4, None, 0)
    paged = client.get("/api/v1/servers?limit=2&offset=1", headers=auth.viewer).json
    assert [s["id"] for s in paged["servers"]] == ["b", "c"]
    assert (paged["total"], paged["limit"], paged["offset"]) == (4, 2, 1)
    tail = client.get("/api/v1/servers?offset=3", headers=auth.viewer).json
    assert [s["id"] for s in tail["servers"]] == ["d"]


def test_servers_filter_by_tag_exactly(client, auth):
    for name, tags in (("a", ["web", "db_1"]), ("b", ["dbx1"]), ("c", [])):
        body = {"id": name, "hostname": name, "tags": tags}
        assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    tagged = client.get("/api/v1/servers?tag=db_1", headers=auth.viewer).json
    # `_` is a LIKE wildcard: a sloppy filter would also return "dbx1".
    assert ([s["id"] for s in tagged["servers"]], tagged["total"]) == (["a"], 1)
    assert client.get("/api/v1/servers?tag=db", headers=auth.viewer).json["total"] == 0
    both = client.get("/api/v1/servers?tag=web&status=unknown", headers=auth.viewer).json
    assert [s["id"] for s in both["servers"]] == ["a"]
    assert_error(
        client.get("/api/v1/servers?tag=Web!", headers=auth.viewer), 422, "VALIDATION_ERROR"
    )


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [(None, None, 422), ("null", "application/json", 422), ("[]", "application/json", 422),
     ('"text"', "application/json", 422), ("", "application/json", 422),
     # JSON under another media type: 415, saying which Content-Type to send.
     ('{"hostname": "x"}', "text/plain", 415), ('{"hostname": "x"}', None, 415)],
)  # fmt: skip
def test_a_body_that_is_not_a_json_object_is_422_never_a_silent_no_op(
    client, auth, web1, data, content_type, status
):
    headers = {**auth.operator, **({"Content-Type": content_type} if content_type else {})}
    response = client.put("/api/v1/servers/web-1", data=data, headers=headers)
    if status == 422:
        assert_error(response, 422, "VALIDATION_ERROR")
        assert "body" in response.json["errors"]
    else:
        assert_error(response, 415, "BAD_REQUEST")
        assert "Content-Type: application/json" in response.json["message"]
    assert client.post("/api/v1/actions", data=data, headers=headers).status_code == status
    assert client.get("/api/v1/servers/web-1", headers=auth.viewer).json["hostname"] == "web-1"


def test_an_empty_object_still_changes_nothing(client, auth, web1):
    response = client.put("/api/v1/servers/web-1", json={}, headers=auth.operator)
    assert response.status_code == 200 and response.json["hostname"] == "web-1"


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("get", "/api/v1/audit?actor=a%00b", None, "actor"),
        ("get", "/api/v1/actions?action_type=a%00", None, "action_type"),
        ("post", "/api/v1/agents/heartbeat", {"server_id": "nul", "hostname": "nul",
          "timestamp": "2026-01-01T00:00:00Z", "agent_version": "1\x00"}, "agent_version"),
        ("put", "/api/v1/servers/web-1", {"display_name": "\x00"}, "display_name"),
    ],
)  # fmt: skip
def test_a_nul_character_anywhere_is_422_on_both_databases(
    client, auth, web1, method, url, body, field
):
    response = client.open(url, method=method.upper(), json=body, headers=auth.operator)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert field in response.json["errors"]


def test_a_nul_in_a_path_id_is_404(client, auth, web1):
    assert_error(client.get("/api/v1/servers/web%001", headers=auth.viewer), 404, "NOT_FOUND")


def test_a_nul_inside_alert_labels_is_kept_as_json_on_both_databases(client, auth):
    """Labels are stored as JSON text, where a NUL is an escape (\\u0000), not a raw byte."""
    alert = {"status": "firing", "labels": {"alertname": "X", "job": "a\x00b"},
             "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "ab"}  # fmt: skip
    body = {"version": "4", "alerts": [alert]}
    response = client.post("/api/v1/alerts/alertmanager", json=body, headers=auth.operator)
    assert response.status_code == 200, response.json
    assert response.json["alerts"][0]["labels"]["job"] == "a\x00b"
