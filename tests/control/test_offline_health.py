"""The offline sweep judges health too: silent servers go offline, one UPDATE for them all.

Their `health_changed` events (error) go in with the `status_changed` ones, in one INSERT; the
heartbeat that brings a server back judges its health again.
"""

from __future__ import annotations

import datetime as dt
import json

from control.db import db
from control.fleet import heartbeats, offline
from control.models import Event, Server, utcnow
from tests.helpers import heartbeat


def beat(server_id, at, **fields):
    heartbeats.ingest_heartbeat({**heartbeat(server_id), "timestamp": at, **fields}, now=at)


def health_events(server_id):
    rows = (
        Event.select()
        .where((Event.server_id == server_id) & (Event.type == "health_changed"))
        .order_by(Event.id)
    )
    return [(json.loads(e.details)["from"], json.loads(e.details)["to"], e.severity) for e in rows]


def test_silent_server_goes_offline_with_a_health_changed_error(app):
    now = utcnow()
    beat("quiet", now - dt.timedelta(seconds=200), metrics={"temperature": 80.0})
    beat("chatty", now - dt.timedelta(seconds=10))
    assert offline.mark_offline(180, now=now) == ["quiet"]
    quiet = Server.get_by_id("quiet")
    assert (quiet.status, quiet.health) == ("offline", "offline")
    assert json.loads(quiet.health_reasons) == ["no heartbeat: the server is offline"]
    assert quiet.health_changed_at == now
    assert health_events("quiet")[-1] == ("degraded", "offline", "error")
    event = Event.select().where(Event.type == "health_changed").order_by(Event.id.desc()).get()
    assert event.created_at == now
    assert event.message == "server quiet is offline: no heartbeat: the server is offline"
    assert Server.get_by_id("chatty").health == "healthy"


def test_offline_wins_over_a_manual_health(app):
    now = utcnow()
    beat("box", now - dt.timedelta(hours=1))
    Server.update(manual_health="degraded").where(Server.id == "box").execute()
    offline.mark_offline(180, now=now)
    assert Server.get_by_id("box").health == "offline"


def test_heartbeat_after_offline_judges_health_again(app):
    now = utcnow()
    beat("box", now - dt.timedelta(hours=1))
    offline.mark_offline(180, now=now)
    beat("box", now, metrics={"disk_percent": 99.0})
    server = Server.get_by_id("box")
    assert (server.status, server.health) == ("online", "failed")
    assert health_events("box") == [
        ("unknown", "healthy", "info"),
        ("healthy", "offline", "error"),
        ("offline", "failed", "error"),
    ]


def test_sweep_of_many_servers_is_one_update_and_one_insert(app):
    now = utcnow()
    for index in range(20):
        beat(f"s{index:02d}", now - dt.timedelta(hours=1))
    statements = []
    original = db.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        statements.append(sql.lstrip().split()[0].upper())
        return original(sql, params, *args, **kwargs)

    db.obj.execute_sql = counting
    try:
        assert len(offline.mark_offline(60, now=now)) == 20
    finally:
        db.obj.execute_sql = original
    assert statements.count("UPDATE") == 1
    assert statements.count("INSERT") == 1
    assert Server.select().where(Server.health == "offline").count() == 20
    assert (
        Event.select().where(Event.type == "health_changed", Event.severity == "error").count()
        == 20
    )


def test_quiet_sweep_writes_nothing(app):
    now = utcnow()
    beat("box", now)
    statements = []
    original = db.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        statements.append(sql.lstrip().split()[0].upper())
        return original(sql, params, *args, **kwargs)

    db.obj.execute_sql = counting
    try:
        assert offline.mark_offline(60, now=now) == []
    finally:
        db.obj.execute_sql = original
    assert "UPDATE" not in statements and "INSERT" not in statements


def test_never_seen_server_keeps_unknown_health(app):
    from control.fleet import servers

    servers.register_server({"id": "new", "hostname": "new"})
    offline.mark_offline(1, now=utcnow() + dt.timedelta(days=1))
    assert Server.get_by_id("new").health == "unknown"
    assert health_events("new") == []
