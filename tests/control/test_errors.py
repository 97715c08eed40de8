"""Every failure is `{code, message}` JSON with the right status: never HTML, never a 500."""

from __future__ import annotations

import pytest

from control.models import Server

SERVERS = "/api/v1/servers"
HEARTBEAT = "/api/v1/agents/heartbeat"


def raw_post(client, auth, path, data, content_type="application/json"):
    return client.post(path, data=data, headers={**auth.operator, "Content-Type": content_type})


def assert_error(response, status, code):
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json"
    assert response.json["code"] == code
    assert isinstance(response.json["message"], str) and response.json["message"]
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "body",
    [
        b"{bad json",
        b'{"id": "a", "hostname": "a",}',
        b"\xff\xfe\x00garbage",
        b'{"id": "a", "hostname": "a", "tdp_watts": NaN}',
        b'{"id": "a", "hostname": "a", "tdp_watts": Infinity}',
        b'{"id": "a", "hostname": "a", "tdp_watts": -Infinity}',
        b'{"id": "a", "hostname": "a", "tdp_watts": 1e999}',
        b'{"id": "a", "hostname": "a", "tdp_watts": ' + b"9" * 5000 + b"}",
        b'{"id": "a", "hostname": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"id": "a", "hostname": "a", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
    ],
    ids=[
        "truncated",
        "trailing-comma",
        "not-utf8",
        "nan",
        "infinity",
        "-infinity",
        "float-overflow",
        "5000-digit-int",
        "deep-100k",
        "deep-40",
    ],
)
def test_unreadable_json_is_400_and_nothing_is_written(client, auth, body):
    assert_error(raw_post(client, auth, SERVERS, body), 400, "BAD_REQUEST")
    assert Server.select().count() == 0


def test_long_integers_are_range_checked_422(client, auth):
    body = b'{"id": "a", "hostname": "a", "tdp_watts": ' + b"9" * 25 + b"}"
    assert_error(raw_post(client, auth, SERVERS, body), 422, "VALIDATION_ERROR")
    beat = (
        b'{"server_id": "a", "hostname": "a", "timestamp": "2026-01-01T00:00:00Z",'
        b' "metrics": {"network_rx_bytes": ' + b"9" * 25 + b', "cpu_percent": ' + b"9" * 400 + b"}}"
    )
    response = raw_post(client, auth, HEARTBEAT, beat)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert set(response.json["errors"]["metrics"]) == {"network_rx_bytes", "cpu_percent"}
    assert Server.select().count() == 0


def test_long_integer_in_an_ignored_heartbeat_field_is_harmless(client, auth):
    beat = (
        b'{"server_id": "a", "hostname": "a", "timestamp": "2026-01-01T00:00:00Z",'
        b' "future_counter": ' + b"9" * 30 + b"}"
    )
    assert raw_post(client, auth, HEARTBEAT, beat).status_code == 200


def test_nan_in_heartbeat_metrics_is_400(client, auth):
    body = (
        b'{"server_id": "a", "hostname": "a", "timestamp": "2026-01-01T00:00:00Z",'
        b' "metrics": {"cpu_percent": NaN}}'
    )
    assert_error(raw_post(client, auth, HEARTBEAT, body), 400, "BAD_REQUEST")


def test_moderate_nesting_in_a_string_is_fine(client, auth):
    body = b'{"id": "a", "hostname": "a", "display_name": "' + b"[" * 200 + b'"}'
    assert raw_post(client, auth, SERVERS, body).status_code == 201


def test_json_array_instead_of_object_is_422(client, auth):
    assert_error(raw_post(client, auth, SERVERS, b"[1, 2]"), 422, "VALIDATION_ERROR")


def test_body_without_json_content_type_is_415_not_500(client, auth):
    response = raw_post(client, auth, SERVERS, b"id=a", content_type="text/plain")
    assert_error(response, 415, "BAD_REQUEST")
    assert "Content-Type: application/json" in response.json["message"]


def test_oversized_body_is_413(client, auth):
    body = b'{"id": "a", "hostname": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    assert_error(raw_post(client, auth, SERVERS, body), 413, "PAYLOAD_TOO_LARGE")


def test_unknown_route_is_json_404(client):
    assert_error(client.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert_error(client.get("/favicon.ico"), 404, "NOT_FOUND")


def test_wrong_method_is_405_with_allow_header(client, auth):
    response = client.patch(SERVERS, headers=auth.operator)
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_validation_error_lists_fields(client, auth):
    response = client.post(SERVERS, json={"id": "A"}, headers=auth.operator)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert set(response.json["errors"]) == {"id", "hostname"}
    assert all(isinstance(m, list) for m in response.json["errors"].values())


def test_bad_query_parameter_is_422(client, auth):
    assert_error(
        client.get("/api/v1/events?limit=1000", headers=auth.viewer), 422, "VALIDATION_ERROR"
    )
    assert_error(
        client.get("/api/v1/events?offset=-1", headers=auth.viewer), 422, "VALIDATION_ERROR"
    )


def test_unexpected_exception_is_opaque_500(app, client, auth, monkeypatch):
    from control.fleet import servers

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(servers, "list_server_rows", explode)
    response = client.get(SERVERS, headers=auth.viewer)
    assert_error(response, 500, "INTERNAL_ERROR")
    assert "secret" not in response.get_data(as_text=True)


def test_database_failure_is_503_unavailable(app, client, auth, monkeypatch):
    import peewee

    from control.fleet import servers

    def locked(*args, **kwargs):
        raise peewee.OperationalError("database is locked")

    monkeypatch.setattr(servers, "list_server_rows", locked)
    assert_error(client.get(SERVERS, headers=auth.viewer), 503, "UNAVAILABLE")
