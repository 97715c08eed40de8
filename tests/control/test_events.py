"""The event log: every event's severity, the filters (severity, type, server, since) and one
server's events, which outlive the server."""

from __future__ import annotations

import datetime as dt

import pytest

from control.fleet import events
from control.fleet.events import EventType

EVENTS = "/api/v1/events"
T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def log(app):
    """Six events of two servers over an hour, recorded through the domain like any other."""
    with app.app_context():
        rows = [
            (EventType.SERVER_REGISTERED, "web-1", None, 0),
            (EventType.HEALTH_CHANGED, "web-1", "warning", 10),
            (EventType.ACTION_FAILED, "web-1", None, 20),
            (EventType.SERVER_REGISTERED, "db-1", None, 30),
            (EventType.HEALTH_CHANGED, "db-1", "error", 40),
            (EventType.HEALTH_CHANGED, "web-1", "info", 60),
        ]
        for kind, server_id, severity, minutes in rows:
            events.record(kind, f"{kind} {server_id}", server_id=server_id,
                          severity=severity, created_at=at(minutes))  # fmt: skip


def listed(client, auth, url):
    response = client.get(url, headers=auth.viewer)
    assert response.status_code == 200, response.json
    return [(e["type"], e["server_id"], e["severity"]) for e in response.json["events"]]


def test_every_event_carries_a_severity_from_its_type_or_its_change(client, auth, log):
    assert listed(client, auth, EVENTS) == [
        ("health_changed", "web-1", "info"),
        ("health_changed", "db-1", "error"),
        ("server_registered", "db-1", "info"),
        ("action_failed", "web-1", "error"),
        ("health_changed", "web-1", "warning"),
        ("server_registered", "web-1", "info"),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("severity=error", [("health_changed", "db-1"), ("action_failed", "web-1")]),
        ("severity=warning", [("health_changed", "web-1")]),
        ("severity=error&server_id=web-1", [("action_failed", "web-1")]),
        ("type=health_changed&severity=info", [("health_changed", "web-1")]),
        ("since=2026-03-01T12:40:00Z", [("health_changed", "web-1"), ("health_changed", "db-1")]),
        # The same instant in another zone, and a naive time taken as UTC.
        ("since=2026-03-01T13:40:00%2B01:00", [("health_changed", "web-1"),
                                               ("health_changed", "db-1")]),
        ("since=2026-03-01T12:40:00.001", [("health_changed", "web-1")]),
        ("since=2026-03-01T12:40:00Z&server_id=db-1", [("health_changed", "db-1")]),
        ("since=2026-03-01T14:00:00Z", []),
        ("type=server_registered&since=2026-03-01T12:00:00Z",
         [("server_registered", "db-1"), ("server_registered", "web-1")]),
    ],
)  # fmt: skip
def test_events_filter_by_severity_type_server_and_since(client, auth, log, query, expected):
    assert [row[:2] for row in listed(client, auth, f"{EVENTS}?{query}")] == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("severity=critical", "severity"), ("severity=ERROR", "severity"),
        ("severity=", "severity"),
        ("since=yesterday", "since"), ("since=2026-13-01T00:00:00Z", "since"),
        ("since=9999-12-31T23:59:59-05:00", "since"), ("since=2026-03-01T00:00:00%00", "since"),
        ("type=health", "type"),
    ],
)  # fmt: skip
def test_an_unknown_severity_or_a_time_that_is_no_instant_is_422(client, auth, query, field):
    response = client.get(f"{EVENTS}?{query}", headers=auth.viewer)
    assert (response.status_code, response.json["code"]) == (422, "VALIDATION_ERROR")
    assert field in response.json["errors"]


def test_events_page_like_the_other_lists(client, auth, log):
    body = client.get(f"{EVENTS}?limit=2&offset=1&severity=info", headers=auth.viewer).json
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 1)
    assert [e["type"] for e in body["events"]] == ["server_registered", "server_registered"]


def test_one_servers_events_take_the_same_filters(client, auth, log):
    body = {"id": "web-1", "hostname": "web-1"}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    url = "/api/v1/servers/web-1/events"
    assert listed(client, auth, f"{url}?severity=error") == [("action_failed", "web-1", "error")]
    since = listed(client, auth, f"{url}?since=2026-03-01T12:10:00Z&type=health_changed")
    assert since == [("health_changed", "web-1", "info"), ("health_changed", "web-1", "warning")]
    page = client.get(f"{url}?limit=1", headers=auth.viewer).json
    assert (page["events"][0]["type"], page["total"]) == ("server_registered", 5)
    response = client.get(f"{url}?server_id=db-1", headers=auth.viewer)
    assert response.status_code == 422 and "server_id" in response.json["errors"]


def test_a_deleted_servers_history_stays_readable_and_an_unknown_server_is_404(client, auth):
    body = {"id": "gone-1", "hostname": "gone-1"}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    assert client.delete("/api/v1/servers/gone-1", headers=auth.operator).status_code == 204
    kept = listed(client, auth, "/api/v1/servers/gone-1/events")
    assert [row[0] for row in kept] == ["server_deleted", "server_registered"]
    # A filter that matches nothing is an empty page, not a 404: the server had a history.
    assert listed(client, auth, "/api/v1/servers/gone-1/events?severity=error") == []
    response = client.get("/api/v1/servers/never-was/events", headers=auth.viewer)
    assert (response.status_code, response.json["code"]) == (404, "NOT_FOUND")
    assert "never-was" in response.json["message"]
