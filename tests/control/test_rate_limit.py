"""The per-key rate limit of `POST /actions` and the execute endpoint (issue 11, Medium 6).

It counts only attempts that reach the whitelist (not 404s, not 401/403), keeps one budget per
key and endpoint, and lives in the database, so every worker on one PostgreSQL shares it.
Nothing here reaches SSH: the executes are refused by the whitelist.
"""

from __future__ import annotations

import datetime as dt

import pytest

from control.app import create_app
from control.errors import RateLimited
from control.keys import create_key
from control.models import utcnow
from control.remediation.ratelimit import KeyRateLimiter

ACTIONS = "/api/v1/actions"
LIMIT = 5  # remediation_settings


@pytest.fixture
def settings_overrides(remediation_settings):
    """The test whitelist and 5 requests per key per minute."""
    return remediation_settings


def action(name, server_id="box"):
    return {"server_id": server_id, "action_type": "touch_marker", "parameters": {"name": name}}


def test_actions_over_the_limit_are_429_with_retry_after(client, auth, box):
    for n in range(LIMIT):
        assert client.post(ACTIONS, json=action(f"a{n}"), headers=auth.operator).status_code == 201
    limited = client.post(ACTIONS, json=action("over"), headers=auth.operator)
    assert (limited.status_code, limited.json["code"]) == (429, "RATE_LIMITED")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "action" in limited.json["message"]
    # Nothing was queued by the refused request.
    assert client.get(ACTIONS, headers=auth.viewer).json["total"] == LIMIT


def test_the_limit_is_per_key(client, auth, box):
    for n in range(LIMIT):
        client.post(ACTIONS, json=action(f"a{n}"), headers=auth.operator)
    assert client.post(ACTIONS, json=action("x"), headers=auth.operator).status_code == 429
    other, _ = create_key("operator", "second-operator")
    assert client.post(ACTIONS, json=action("x"), headers={"X-API-Key": other}).status_code == 201


def test_unknown_servers_and_unknown_alerts_do_not_count(client, auth, box):
    for n in range(3 * LIMIT):
        ghost = client.post(ACTIONS, json=action(f"g{n}", "ghost"), headers=auth.operator)
        assert ghost.status_code == 404
        url = "/api/v1/servers/ghost/commands/execute"
        assert client.post(url, json={"command": "ls"}, headers=auth.operator).status_code == 404
    with_alert = {**action("x"), "alert_id": 99}
    for _ in range(3 * LIMIT):
        assert client.post(ACTIONS, json=with_alert, headers=auth.operator).status_code == 404
    for n in range(LIMIT):
        assert client.post(ACTIONS, json=action(f"a{n}"), headers=auth.operator).status_code == 201


def test_wrong_scope_and_missing_keys_do_not_count(client, auth, box):
    for n in range(3 * LIMIT):
        assert client.post(ACTIONS, json=action(f"a{n}"), headers=auth.viewer).status_code == 403
        assert client.post(ACTIONS, json=action(f"a{n}")).status_code == 401
    for n in range(LIMIT):
        assert client.post(ACTIONS, json=action(f"a{n}"), headers=auth.operator).status_code == 201


def test_whitelist_refusals_count(client, auth, box):
    """Probing the whitelist (unknown types, injection attempts) uses up the budget."""
    for n in range(LIMIT):
        probe = {"server_id": "box", "action_type": "restart_service", "service_name": f"x;{n}"}
        assert client.post(ACTIONS, json=probe, headers=auth.operator).status_code == 422
    assert client.post(ACTIONS, json=action("a"), headers=auth.operator).status_code == 429


def test_execute_has_its_own_budget_and_counts_refusals(client, auth, box):
    url = "/api/v1/servers/box/commands/execute"
    for n in range(LIMIT):
        assert client.post(ACTIONS, json=action(f"a{n}"), headers=auth.operator).status_code == 201
    for _ in range(LIMIT):
        refused = client.post(url, json={"command": "rm -rf /"}, headers=auth.operator)
        assert refused.status_code == 400
    limited = client.post(url, json={"command": "rm -rf /"}, headers=auth.operator)
    assert (limited.status_code, limited.json["code"]) == (429, "RATE_LIMITED")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_two_workers_on_one_database_share_the_budget(app, client, auth, box, settings):
    """Two apps on the same database (two gunicorn workers) give one key one budget."""
    second = create_app(settings).test_client()
    clients = [client, second]
    for n in range(LIMIT):
        response = clients[n % 2].post(ACTIONS, json=action(f"a{n}"), headers=auth.operator)
        assert response.status_code == 201
    for each in clients:
        assert each.post(ACTIONS, json=action("over"), headers=auth.operator).status_code == 429


def test_the_window_moves(app):
    limiter = KeyRateLimiter(2)
    start = utcnow()
    limiter.hit("k", "actions", now=start)
    limiter.hit("k", "actions", now=start + dt.timedelta(seconds=10))
    with pytest.raises(RateLimited) as refused:
        limiter.hit("k", "actions", now=start + dt.timedelta(seconds=20))
    assert refused.value.headers["Retry-After"] == "40"  # the first hit leaves the window then
    limiter.hit("k", "execute", now=start + dt.timedelta(seconds=20))  # another budget
    limiter.hit("k", "actions", now=start + dt.timedelta(seconds=60, milliseconds=1))
    with pytest.raises(RateLimited):
        limiter.hit("k", "actions", now=start + dt.timedelta(seconds=61))


def test_concurrent_requests_never_exceed_the_budget(app):
    """Count-then-insert is serialised per key (an advisory lock on PostgreSQL, the write lock
    on SQLite): however many requests race, exactly the limit get through."""
    import threading

    from control.db import db

    limiter = KeyRateLimiter(LIMIT)
    start = threading.Barrier(4 * LIMIT)
    outcomes: list[str] = []

    def request():
        db.connect(reuse_if_open=True)
        start.wait()
        try:
            limiter.hit("racer", "actions")
            outcomes.append("ok")
        except RateLimited:
            outcomes.append("limited")
        finally:
            db.close()

    threads = [threading.Thread(target=request) for _ in range(4 * LIMIT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["limited"] * (3 * LIMIT) + ["ok"] * LIMIT
