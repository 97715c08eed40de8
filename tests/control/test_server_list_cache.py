"""GET /servers' render cache (control/api/server_list_cache.py) never serves a stale server.

After each kind of write, the cached listing is byte for byte what rendering every row afresh
gives (the path before the cache: list_server_rows → server_rows_to_json → orjson); writes
through another app, another process or raw SQL show at once; the row-version trigger exists
on fresh and on migrated databases. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading

import orjson
import pytest

from control.api.server_list_cache import ServerListCache
from control.api.server_schemas import server_rows_to_json
from control.db import db, is_sqlite
from control.fleet import offline, retention, servers
from control.jsonprovider import OPTIONS
from control.models import Server, utcnow
from tests.helpers import send_heartbeat

BASE = "/api/v1/servers"
QUERIES = ("", "?limit=2", "?limit=2&offset=1", "?offset=2", "?status=online", "?tag=rack_a")


def register(client, auth, server_id, **fields):
    body = {"id": server_id, "hostname": f"{server_id}.lan", **fields}
    response = client.post(BASE, json=body, headers=auth.operator)
    assert response.status_code == 201, response.json


def heartbeat(client, auth, server_id, cpu=1.0, **extra):
    body = {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": "2026-01-18T10:30:00Z",
        "metrics": {"cpu_percent": cpu, "memory_percent": 50.0, "disk_percent": 40.0},
        **extra,
    }
    response = send_heartbeat(client, auth, body)
    assert response.status_code == 200, response.json


def uncached(query_string=""):
    """The body GET /servers gave before the cache: every row read and rendered now."""
    query = dict(part.split("=") for part in query_string.lstrip("?").split("&") if part)
    limit = int(query.pop("limit")) if "limit" in query else None
    offset = int(query.pop("offset", 0))
    rows, total = servers.list_server_rows(**query, limit=limit, offset=offset)
    body = {"servers": server_rows_to_json(rows), "total": total, "limit": limit, "offset": offset}
    return orjson.dumps(body, option=OPTIONS)


def assert_listings_fresh(client, auth, queries=QUERIES):
    """Every listing in `queries` equals a fresh render, byte for byte."""
    for query in queries:
        response = client.get(f"{BASE}{query}", headers=auth.viewer)
        assert response.status_code == 200
        assert response.data == uncached(query), query


@pytest.fixture
def fleet(client, auth):
    """Three servers, two heartbeating, one tagged; every listing of QUERIES cached."""
    register(client, auth, "a", tags=["rack_a"])
    register(client, auth, "b")
    register(client, auth, "c")
    heartbeat(client, auth, "a")
    heartbeat(client, auth, "b")
    assert_listings_fresh(client, auth)
    return ["a", "b", "c"]


def test_a_heartbeat_shows_in_the_next_listing(client, auth, fleet):
    heartbeat(client, auth, "a", cpu=77.5)
    assert_listings_fresh(client, auth)
    listed = client.get(BASE, headers=auth.viewer).json["servers"]
    assert listed[0]["latest_metrics"]["cpu_percent"] == 77.5


def test_a_heartbeat_with_device_health_facts_shows(client, auth, fleet):
    heartbeat(
        client,
        auth,
        "b",
        commit_hash="1a2b3c4",
        packages={"upgradable": 3, "security": 1, "reboot_required": True},
    )
    assert_listings_fresh(client, auth)


def test_an_update_of_the_settings_shows(client, auth, fleet):
    body = {"display_name": "Alpha", "tags": ["rack_b"], "metadata": {"u": 4}}
    assert client.put(f"{BASE}/a", json=body, headers=auth.operator).status_code == 200
    assert_listings_fresh(client, auth, (*QUERIES, "?tag=rack_b"))


def test_pause_and_resume_show(client, auth, fleet):
    assert client.put(f"{BASE}/b/pause", headers=auth.operator).status_code == 200
    assert_listings_fresh(client, auth)
    assert client.put(f"{BASE}/b/unpause", headers=auth.operator).status_code == 200
    assert_listings_fresh(client, auth)


def test_a_manual_health_state_shows(client, auth, fleet):
    body = {"health": "failed", "reason": "fan"}
    assert client.patch(f"{BASE}/c/health", json=body, headers=auth.operator).status_code == 200
    assert_listings_fresh(client, auth, (*QUERIES, "?health=failed"))


def test_going_offline_shows(client, auth, fleet):
    assert sorted(offline.mark_offline(180, now=utcnow() + dt.timedelta(hours=1))) == ["a", "b"]
    assert_listings_fresh(client, auth, (*QUERIES, "?status=offline"))


def test_a_server_deleted_and_registered_again_shows_its_new_facts(client, auth, fleet):
    version = Server.get_by_id("c").row_version
    assert client.delete(f"{BASE}/c", headers=auth.operator).status_code == 204
    register(client, auth, "c", display_name="the new c", ssh_port=2222)
    # The same version number as the old row's: only its created_at tells them apart.
    assert Server.get_by_id("c").row_version == version
    assert_listings_fresh(client, auth)


def test_retention_deleting_the_newest_sample_shows(client, auth, fleet):
    pruned = retention.prune_history(1, now=utcnow() + dt.timedelta(days=30))
    assert pruned["samples"] >= 2  # the newest samples of a and b, no server row touched
    assert_listings_fresh(client, auth)
    assert client.get(BASE, headers=auth.viewer).json["servers"][0]["latest_metrics"] is None


def test_a_deleted_server_leaves_the_listing_and_the_cache(client, auth, app, fleet):
    assert client.delete(f"{BASE}/b", headers=auth.operator).status_code == 204
    assert_listings_fresh(client, auth)
    assert len(app.extensions["homelab.server_list_cache"]) == 2


def test_raw_sql_updates_bump_the_row_version_once_each(client, auth, fleet):
    before = Server.get_by_id("a").row_version
    db.execute_sql("UPDATE server SET display_name = 'raw' WHERE id = 'a'")
    assert Server.get_by_id("a").row_version == before + 1
    # A writer putting back an older version (a stale copy saved whole) still moves it on.
    Server.update(row_version=before).where(Server.id == "a").execute()
    assert Server.get_by_id("a").row_version == before + 2
    assert_listings_fresh(client, auth)


def test_a_heartbeat_bumps_the_row_version_exactly_once(client, auth, fleet):
    # It bumps the version itself (SQLite's trigger then stands aside): once, not twice.
    before = Server.get_by_id("a").row_version
    heartbeat(client, auth, "a", cpu=12.5)
    assert Server.get_by_id("a").row_version == before + 1
    assert_listings_fresh(client, auth)


def test_a_write_through_another_app_shows_in_this_ones_next_listing(client, auth, settings, fleet):
    from control.app import create_app

    other = create_app(settings).test_client()
    assert other.get(BASE, headers=auth.viewer).data == uncached()
    heartbeat(other, auth, "c", cpu=42.0)  # enrolls through the other app
    assert other.put(f"{BASE}/a/pause", headers=auth.operator).status_code == 200
    assert_listings_fresh(client, auth)
    heartbeat(client, auth, "b", cpu=9.0)
    assert_listings_fresh(other, auth)


def test_a_write_from_another_process_shows(client, auth, database_url, fleet):
    """A plain driver in another process, no control code: only the trigger can tell."""
    if is_sqlite():
        script = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute(\"UPDATE server SET hostname = 'moved.lan' WHERE id = 'b'\"); c.commit()"
        )
        target = database_url.removeprefix("sqlite:///")
    else:
        script = (
            "import psycopg2, sys; c = psycopg2.connect(sys.argv[1]); "
            "c.cursor().execute(\"UPDATE server SET hostname = 'moved.lan' WHERE id = 'b'\"); "
            "c.commit()"
        )
        target = database_url
    subprocess.run([sys.executable, "-c", script, target], check=True)
    assert_listings_fresh(client, auth)
    listed = client.get(BASE, headers=auth.viewer).json["servers"]
    assert listed[1]["hostname"] == "moved.lan"


def test_an_unchanged_fleet_is_listed_from_one_query_of_keys(client, auth, app, fleet):
    statements = []
    original = db.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return original(sql, params, *args, **kwargs)

    db.obj.execute_sql = counting
    try:
        assert client.get(BASE, headers=auth.viewer).status_code == 200
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1
        assert "hostname" not in selects[0]  # keys only: no row read in full
        statements.clear()
        heartbeat(client, auth, "a", cpu=3.0)
        statements.clear()
        assert client.get(BASE, headers=auth.viewer).status_code == 200
    finally:
        db.obj.execute_sql = original
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2 and "hostname" in selects[1]  # the keys, then the one row


def test_most_rows_changed_reads_the_page_again_and_stays_right(client, auth, fleet):
    for server_id in fleet:
        heartbeat(client, auth, server_id, cpu=11.0)
    assert_listings_fresh(client, auth)


def test_concurrent_listings_and_writes_end_fresh(client, auth, fleet):
    errors = []

    def lister():
        for _ in range(15):
            for query in ("", "?limit=2", "?status=online"):
                if client.get(f"{BASE}{query}", headers=auth.viewer).status_code != 200:
                    errors.append(query)

    threads = [threading.Thread(target=lister) for _ in range(3)]
    for thread in threads:
        thread.start()
    for round_ in range(10):
        heartbeat(client, auth, fleet[round_ % 3], cpu=float(round_))
    for thread in threads:
        thread.join()
    assert errors == []
    assert_listings_fresh(client, auth)


def test_the_cache_stays_within_its_capacity(app, client, auth, fleet):
    with app.app_context():
        cache = ServerListCache(min_capacity=2)
        for query in ({"tag": "rack_a"}, {"status": "online"}, {"status": "unknown"}):
            cache.listing(query, None, 0)
        assert len(cache) == 2
        fragments, total = cache.listing({}, None, 0)
        assert (len(fragments), total, len(cache)) == (3, 3, 3)  # sized to the fleet


def _has_trigger() -> bool:
    if is_sqlite():
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'server_row_version'"
    else:
        sql = "SELECT 1 FROM pg_trigger WHERE tgname = 'server_row_version'"
    return db.execute_sql(sql).fetchone() is not None


def _bumps() -> bool:
    Server.create(id="probe", hostname="probe")
    Server.update(hostname="probe.lan").where(Server.id == "probe").execute()
    return Server.get_by_id("probe").row_version == 1


def test_a_fresh_database_gets_the_trigger(database_url, settings):
    import dataclasses

    from control.app import create_app

    url = database_url
    if not database_url.startswith("sqlite"):
        import psycopg2

        admin = psycopg2.connect(database_url)
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE fresh_row_version")
        url = database_url.rsplit("/", 1)[0] + "/fresh_row_version"
    try:
        create_app(dataclasses.replace(settings, database_url=url))
        assert _has_trigger()
        assert _bumps()
    finally:
        db.close()
        if url != database_url:
            admin.cursor().execute("DROP DATABASE fresh_row_version")
            admin.close()


def test_a_version_9_database_gains_the_row_version_and_its_trigger(app):
    from control import migrations
    from control.migrations import SchemaVersion

    Server.create(id="old", hostname="old")
    if is_sqlite():
        db.execute_sql("DROP TRIGGER server_row_version")
    else:
        db.execute_sql('DROP TRIGGER server_row_version ON "server"')
        db.execute_sql("DROP FUNCTION server_row_version_bump()")
    db.execute_sql("ALTER TABLE server DROP COLUMN row_version")
    SchemaVersion.update(version=9).execute()
    assert not _has_trigger()

    assert migrations.migrate() == migrations.LATEST_VERSION
    assert _has_trigger()
    assert Server.get_by_id("old").row_version == 0
    assert _bumps()
    assert migrations.migrate() == migrations.LATEST_VERSION  # again: nothing to do


def test_retention_clears_the_pointer_to_a_newest_sample_it_deletes(client, auth, fleet):
    before = {server.id: server.row_version for server in Server.select()}
    retention.prune_history(1, now=utcnow() + dt.timedelta(days=30))
    after = {server.id: (server.latest_sample_id, server.row_version) for server in Server.select()}
    # a and b lost their newest sample: pointer cleared, so the version (the listing's key,
    # read without the samples) moved; c had none and was not touched.
    assert after == {
        "a": (None, before["a"] + 1),
        "b": (None, before["b"] + 1),
        "c": (None, before["c"]),
    }
