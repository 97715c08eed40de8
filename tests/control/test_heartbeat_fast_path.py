"""The heartbeat's fast path (control.api.heartbeat_wsgi) answers exactly as the Flask view does.

Every heartbeat test in this directory goes through it already (the test client calls the
app's `wsgi_app`); these pin what it adds: which requests it takes and which it leaves to
Flask, byte-identical answers and stored state on both paths, and refusals the domain raises
after it called it answered once, by the view's error handling, and counted once.
"""

from __future__ import annotations

import dataclasses

import peewee
import pytest

from control import context
from control.api import heartbeat_wsgi
from control.fleet import enrollment
from control.models import ApiKey, MetricsSample, Server
from tests.helpers import HEARTBEAT_URL

BEAT = {
    "server_id": "nas",
    "hostname": "nas",
    "timestamp": "2026-01-01T00:00:00Z",
    "metrics_port": 9100,
    "metrics": {"cpu_percent": 5.0, "memory_percent": 40.0},
    "os_info": {"distribution": "Debian", "version": "12"},
    "containers": [{"name": "web", "image": "nginx:1", "state": "running"}],
    "packages": {"upgradable": 3, "security": 1, "reboot_required": False},
}


class FlaskSpy:
    """Flask's own WSGI callable behind the fast path, counting the requests that reach it."""

    def __init__(self, app):
        self.fast_path = app.wsgi_app
        assert isinstance(self.fast_path, heartbeat_wsgi.HeartbeatFastPath)
        self.flask = self.fast_path.wsgi_app
        self.calls = 0
        self.fast_path.wsgi_app = self

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.flask(environ, start_response)


@pytest.fixture
def spy(app):
    return FlaskSpy(app)


def post(client, key, body=BEAT, **kwargs):
    headers = {"X-API-Key": key} if key is not None else {}
    return client.post(HEARTBEAT_URL, json=body, headers=headers, **kwargs)


def counted(app, reason):
    return context.of(app).metrics.registry.get_sample_value(
        "homelab_auth_failures_total", {"reason": reason}
    )


def stored(server_id="nas"):
    """What a heartbeat leaves in the database, without the times it was received at."""
    server = Server.get_by_id(server_id)
    sample = MetricsSample.get_by_id(server.latest_sample_id)
    return (
        server.hostname,
        server.status,
        server.metrics_port,
        server.os_distribution,
        server.containers,
        server.packages,
        server.health,
        sample.cpu_percent,
        sample.memory_percent,
        MetricsSample.select().count(),
    )


def without_date(response):
    return [(name, value) for name, value in response.headers if name != "Date"]


def test_a_plain_heartbeat_never_reaches_flask(app, client, auth, spy):
    key = post(client, auth.agent_key).json["agent_key"]  # enrolment: a bound key
    calls = spy.calls
    response = post(client, key)
    assert response.status_code == 200
    assert response.json == {"status": "ok", "server_registered": False, "pending_commands": []}
    assert spy.calls == calls
    assert Server.get_by_id("nas").status == "online"
    registry = context.of(app).metrics.registry
    assert registry.get_sample_value("homelab_heartbeats_received_total") == 2
    timed = {"method": "POST", "endpoint": HEARTBEAT_URL, "status": "200"}
    assert registry.get_sample_value("homelab_http_request_duration_seconds_count", timed) == 2


def test_both_paths_answer_and_store_the_same(app, settings, client, auth):
    """The same heartbeats through the fast path and through Flask alone: same bytes, same rows."""
    answers = {}
    for path in ("fast", "flask"):
        fast_path = app.wsgi_app
        if path == "flask":
            app.wsgi_app = fast_path.wsgi_app
        try:
            enrolled = post(client, auth.agent_key)
            again = post(client, enrolled.json["agent_key"], {**BEAT, "hostname": "nas2"})
            answers[path] = [
                (r.status_code, without_date(r), r.data if i else sorted(r.json)) for i, r in
                enumerate((enrolled, again))
            ]  # fmt: skip
            answers[path].append(stored())
        finally:
            app.wsgi_app = fast_path
        ApiKey.delete().where(ApiKey.server_id == "nas").execute()
        client.delete("/api/v1/servers/nas", headers=auth.operator)
    assert answers["fast"] == answers["flask"]


def test_a_refusal_after_the_domain_call_is_answered_and_counted_once(app, client, auth, spy):
    # A bound key for another server: the domain refuses, after the fast path called it.
    nas = post(client, auth.agent_key).json["agent_key"]
    before = counted(app, "not_bound")
    response = post(client, nas, {**BEAT, "server_id": "router"})
    assert response.status_code == 403
    assert response.json["code"] == "FORBIDDEN"
    assert "may only report for server 'nas'" in response.json["message"]
    assert counted(app, "not_bound") == before + 1
    assert not Server.select().where(Server.id == "router").exists()


def test_a_key_revoked_while_remembered_is_refused_once_then_asked_of_the_database(
    app, client, auth
):
    key = post(client, auth.agent_key).json["agent_key"]
    assert post(client, key).status_code == 200  # now in the key ring's memory
    ApiKey.update(revoked_at=ApiKey.created_at).where(ApiKey.server_id == "nas").execute()
    before = counted(app, "invalid")
    first = post(client, key)
    assert (first.status_code, first.json["code"]) == (401, "UNAUTHORIZED")
    assert counted(app, "invalid") == before + 1
    second = post(client, key)  # forgotten: refused by authentication, before any write
    assert second.status_code == 401
    assert counted(app, "invalid") == before + 2


def test_the_enrollment_rate_limit_is_answered_by_the_view(app, settings, client, auth):
    context.of(app).settings = dataclasses.replace(settings, enroll_rate=1)
    assert post(client, auth.agent_key).status_code == 200
    before = counted(app, "enroll_rate")
    response = post(client, auth.agent_key, {**BEAT, "server_id": "router"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "60"
    assert counted(app, "enroll_rate") == before + 1


def test_a_database_error_in_the_domain_is_the_apps_503(app, client, auth, spy, monkeypatch):
    key = post(client, auth.agent_key).json["agent_key"]
    calls = spy.calls

    def down(*args, **kwargs):
        raise peewee.OperationalError("database is locked")

    monkeypatch.setattr(enrollment, "accept_heartbeat", down)
    response = post(client, key)
    assert response.status_code == 503
    assert response.json["code"] == "UNAVAILABLE"
    assert spy.calls == calls + 1  # the view answered, with the refusal handed over


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"key": None}, 401, "UNAUTHORIZED"),
        ({"key": "viewer"}, 403, "FORBIDDEN"),
        ({"body": {**BEAT, "hostname": "bad host"}}, 422, "VALIDATION_ERROR"),
        ({"body": [BEAT]}, 422, "VALIDATION_ERROR"),
        ({"data": b'{"server_id": "nas",', "content_type": "application/json"}, 400, "BAD_REQUEST"),
        ({"data": b'{"server_id": NaN}', "content_type": "application/json"}, 400, "BAD_REQUEST"),
        ({"data": b"server_id=nas", "content_type": "text/plain"}, 415, "BAD_REQUEST"),
        ({"query_string": "verbose=1"}, 200, None),  # Flask ignores it; this path won't
        ({"data": b"x" * 2_000_000, "content_type": "application/json"}, 413, None),
    ],
)  # fmt: skip
def test_what_the_fast_path_leaves_reaches_flask_whole(
    client, auth, spy, request_kwargs, status, code
):
    key = post(client, auth.agent_key).json["agent_key"]
    kwargs = dict(request_kwargs)
    sent_key = kwargs.pop("key", key)
    if sent_key == "viewer":
        sent_key = auth.viewer_key
    headers = {"X-API-Key": sent_key} if sent_key else {}
    if "data" not in kwargs:
        kwargs["json"] = kwargs.pop("body", BEAT)
    calls = spy.calls
    response = client.post(HEARTBEAT_URL, headers=headers, **kwargs)
    assert response.status_code == status, response.data
    if code:
        assert response.json["code"] == code
    assert spy.calls == calls + 1
    assert Server.get_by_id("nas").hostname == "nas"
