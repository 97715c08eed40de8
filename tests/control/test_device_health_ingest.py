"""Seed 002 device health on the heartbeat: every new field validated, stored, and judged.

A bad value of any field is a 422 in our error shape and stores nothing (no sample, no change
to the server row, no event); a good heartbeat keeps the latest of each fact on the server and
re-judges its health, recording each change as a `health_changed` event with its severity.
"""

from __future__ import annotations

import json

import pytest

from control.db import db
from control.fleet import heartbeats
from control.models import Event, MetricsSample, Server, ServerUpdate
from tests.helpers import container, heartbeat, send_heartbeat, service

PACKAGES = {"upgradable": 3, "security": 1, "reboot_required": False}
COMMIT = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
GOOD = heartbeat(
    metrics={"cpu_percent": 5.0, "temperature": 41.5, "containers_running": 1},
    containers=[container()],
    services=[service()],
    packages=PACKAGES,
    commit_hash=COMMIT,
)


def post(client, auth, body):
    return send_heartbeat(client, auth, body)


def stored_state():
    """Everything a heartbeat may write, to compare before and after a refused one."""
    return (
        list(Server.select().order_by(Server.id).dicts()),
        MetricsSample.select().count(),
        Event.select().count(),
        ServerUpdate.select().count(),
    )


def health_events(server_id="pi-1"):
    rows = (
        Event.select()
        .where((Event.server_id == server_id) & (Event.type == "health_changed"))
        .order_by(Event.id)
    )
    return [(json.loads(e.details)["from"], json.loads(e.details)["to"], e.severity) for e in rows]


def many(item, count):
    return [item] * count


BAD = [
    # containers: the list, then each key of an item
    ("containers", "lots"),
    ("containers", {"name": "web"}),
    ("containers", many(container(), 501)),
    ("containers", [1]),
    ("containers", [{"image": "x", "state": "running"}]),
    ("containers", [container(name="/web")]),
    ("containers", [container(name="")]),
    ("containers", [container(name="a" * 129)]),
    ("containers", [container(name="web\n")]),
    ("containers", [container(name="we b")]),
    ("containers", [container(name="web\x00")]),
    ("containers", [container(name=7)]),
    ("containers", [container(image="i" * 256)]),
    ("containers", [container(image="nginx\x00:1")]),
    ("containers", [container(image=None)]),
    ("containers", [{"name": "web", "image": "x"}]),
    ("containers", [container(state="sleeping")]),
    ("containers", [container(state="Running")]),
    ("containers", [container(health="sick")]),
    ("containers", [container(exit_code=1001)]),
    ("containers", [container(exit_code=-1001)]),
    ("containers", [container(exit_code=1.5)]),
    ("containers", [container(exit_code="1")]),
    ("containers", [container(exit_code=True)]),
    ("containers", [container(restart_count=-1)]),
    ("containers", [container(restart_count=1_000_000_001)]),
    ("containers", [container(restart_count=2**64)]),
    # services
    ("services", "nginx"),
    ("services", many(service(), 257)),
    ("services", [service(name="../etc")]),
    ("services", [service(name="-nginx.service")]),
    ("services", [service(name="n" * 257)]),
    ("services", [service(name="nginx.service\n")]),
    ("services", [service(name="nginx\x00.service")]),
    ("services", [service(active_state="up")]),
    ("services", [service(active_state=None)]),
    ("services", [service(sub_state="Running")]),
    ("services", [service(sub_state="r" * 33)]),
    ("services", [service(sub_state="")]),
    ("services", [{"name": "nginx.service", "active_state": "active"}]),
    # packages
    ("packages", []),
    ("packages", "3"),
    ("packages", {**PACKAGES, "upgradable": -1}),
    ("packages", {**PACKAGES, "upgradable": 100_001}),
    ("packages", {**PACKAGES, "security": "1"}),
    ("packages", {**PACKAGES, "security": 1.0}),
    ("packages", {**PACKAGES, "reboot_required": "yes"}),
    ("packages", {**PACKAGES, "reboot_required": 1}),
    ("packages", {"upgradable": 3, "security": 1}),
    # commit_hash
    ("commit_hash", "ABCDEF1"),
    ("commit_hash", "abc123"),
    ("commit_hash", "a" * 41),
    ("commit_hash", "g123456"),
    ("commit_hash", "abcdef1\n"),
    ("commit_hash", 1234567),
    # the new metrics
    ("metrics", {"temperature": -50.1}),
    ("metrics", {"temperature": 200.1}),
    ("metrics", {"temperature": "hot"}),
    ("metrics", {"containers_running": -1}),
    ("metrics", {"containers_running": 100_001}),
    ("metrics", {"containers_running": 1.5}),
    ("metrics", {"containers_failed": -1}),
    ("metrics", {"containers_failed": 100_001}),
    ("metrics", {"containers_failed": "2"}),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_bad_device_health_field_is_422_and_stores_nothing(client, auth, field, value):
    assert post(client, auth, GOOD).status_code == 200
    before = stored_state()
    response = post(client, auth, {**GOOD, field: value})
    assert response.status_code == 422, response.json
    assert response.json["code"] == "VALIDATION_ERROR"
    assert list(response.json["errors"]) == [field]
    assert stored_state() == before


@pytest.mark.parametrize(("field", "value"), BAD[:3] + BAD[-3:])
def test_bad_field_of_a_new_server_registers_nothing(client, auth, field, value):
    assert post(client, auth, heartbeat(**{field: value})).status_code == 422
    assert stored_state() == ([], 0, 0, 0)


def test_error_names_the_path_to_the_bad_value(client, auth):
    containers = [container(f"c{i}") for i in range(3)] + [container("c3", state="zzz")]
    response = post(client, auth, heartbeat(containers=containers))
    assert response.json["errors"] == {"containers": ["Invalid enum value 'zzz' - at `$[3].state`"]}


@pytest.mark.parametrize("field", ["containers", "services"])
def test_lone_surrogate_in_a_name_is_refused_and_stores_nothing(client, auth, field):
    item = container("web") if field == "containers" else service("web.service")
    body = json.dumps(heartbeat(**{field: [{**item, "name": "web\ud800"}]}))
    response = client.post(
        "/api/v1/agents/heartbeat",
        data=body,
        content_type="application/json",
        headers=auth.agent,
    )
    assert response.status_code == 400  # as everywhere: strict_json refuses the body
    assert stored_state() == ([], 0, 0, 0)


def test_largest_valid_values_are_accepted(client, auth):
    body = heartbeat(
        metrics={"temperature": 200, "containers_running": 100_000, "containers_failed": 0},
        containers=many(container("a" * 128, image="i" * 255, restart_count=10**9), 500),
        services=many(service("n" * 256, sub_state="s" * 32), 256),
        packages={"upgradable": 100_000, "security": 100_000, "reboot_required": True},
        commit_hash="0" * 40,
    )
    assert post(client, auth, body).status_code == 200
    body = heartbeat(
        metrics={"temperature": -50},
        containers=[container("w", image="", exit_code=-1000, health="starting")],
        services=[service("systemd-fsck@dev-disk-by\\x2duuid-1.service", "reloading")],
        commit_hash="abcdef1",
    )
    assert post(client, auth, body).status_code == 200


def test_unknown_keys_in_the_new_objects_are_ignored_and_not_stored(client, auth):
    body = heartbeat(
        containers=[{**container(), "ports": [80]}],
        services=[{**service(), "pid": 7}],
        packages={**PACKAGES, "held": 2},
        uptime_of_moon=1,
    )
    assert post(client, auth, body).status_code == 200
    server = Server.get_by_id("pi-1")
    assert json.loads(server.containers) == [container()]
    assert json.loads(server.services) == [service()]
    assert json.loads(server.packages) == PACKAGES


def test_heartbeat_stores_the_new_metrics_and_the_latest_facts(client, auth):
    assert post(client, auth, GOOD).status_code == 200
    sample = MetricsSample.get()
    assert (sample.temperature, sample.containers_running, sample.containers_failed) == (
        41.5,
        1,
        None,
    )
    server = Server.get_by_id("pi-1")
    assert json.loads(server.containers) == [container()]
    assert json.loads(server.services) == [service()]
    assert json.loads(server.packages) == PACKAGES
    assert server.current_commit_hash == COMMIT
    assert server.latest_sample_id == sample.id


def test_optional_container_keys_default_to_unknown(client, auth):
    body = heartbeat(containers=[{"name": "web", "image": "nginx", "state": "created"}])
    assert post(client, auth, body).status_code == 200
    assert json.loads(Server.get_by_id("pi-1").containers) == [
        {
            "name": "web",
            "image": "nginx",
            "state": "created",
            "health": None,
            "exit_code": None,
            "restart_count": None,
        }
    ]


def test_omitted_or_null_fields_keep_the_latest_and_an_empty_list_replaces_it(client, auth):
    post(client, auth, GOOD)
    post(client, auth, heartbeat())  # an agent that lost its sources for one beat
    post(client, auth, heartbeat(containers=None, services=None, packages=None, commit_hash=None))
    server = Server.get_by_id("pi-1")
    assert json.loads(server.containers) == [container()]
    assert json.loads(server.services) == [service()]
    assert json.loads(server.packages) == PACKAGES
    assert server.current_commit_hash == COMMIT
    newer = {"upgradable": 0, "security": 0, "reboot_required": True}
    post(client, auth, heartbeat(containers=[], services=[], packages=newer, commit_hash="abcdef1"))
    server = Server.get_by_id("pi-1")
    assert (server.containers, server.services) == ("[]", "[]")
    assert json.loads(server.packages) == newer
    assert server.current_commit_hash == "abcdef1"


def test_unchanged_facts_are_not_written_again(app):
    """The JSON columns are bound only when they changed: NULL keeps the stored text."""
    body = {**GOOD, "timestamp": None}
    heartbeats.ingest_heartbeat(body)
    bound = []
    original = db.obj.execute_sql

    def spy(sql, params=None, *args, **kwargs):
        if sql.startswith("UPDATE"):
            bound.append(list(params))
        return original(sql, params, *args, **kwargs)

    db.obj.execute_sql = spy
    try:
        heartbeats.ingest_heartbeat(body)
        heartbeats.ingest_heartbeat({**body, "containers": [container(state="paused")]})
    finally:
        db.obj.execute_sql = original
    unchanged, changed = bound
    written = json.dumps([container(state="paused")], separators=(",", ":"))
    assert written not in unchanged and written in changed
    assert not [p for p in unchanged if isinstance(p, str) and p.startswith(("[", "{"))]


# --- health on every heartbeat --------------------------------------------------------------


def test_first_heartbeat_judges_the_server_healthy(client, auth):
    post(client, auth, GOOD)
    server = Server.get_by_id("pi-1")
    assert (server.health, server.health_reasons) == ("healthy", None)
    assert server.health_changed_at is not None
    assert health_events() == [("unknown", "healthy", "info")]


def test_health_transitions_are_events_with_their_severity(client, auth):
    post(client, auth, GOOD)
    hot = heartbeat(metrics={"temperature": 80.0})
    post(client, auth, hot)
    server = Server.get_by_id("pi-1")
    assert server.health == "degraded"
    assert json.loads(server.health_reasons) == ["temperature 80 °C ≥ 75"]
    post(client, auth, heartbeat(metrics={"temperature": 90.0}))
    assert Server.get_by_id("pi-1").health == "failed"
    post(client, auth, heartbeat(metrics={"temperature": 50.0}))
    server = Server.get_by_id("pi-1")
    assert (server.health, server.health_reasons) == ("healthy", None)
    assert health_events() == [
        ("unknown", "healthy", "info"),
        ("healthy", "degraded", "warning"),
        ("degraded", "failed", "error"),
        ("failed", "healthy", "info"),
    ]
    event = Event.select().where(Event.type == "health_changed").order_by(Event.id)[1]
    assert event.message == "server pi-1 is degraded: temperature 80 °C ≥ 75"
    assert json.loads(event.details)["reasons"] == ["temperature 80 °C ≥ 75"]


def test_new_reasons_without_a_new_health_update_the_row_but_record_no_event(client, auth):
    post(client, auth, heartbeat(metrics={"temperature": 80.0}))
    post(client, auth, heartbeat(metrics={"temperature": 81.0, "disk_percent": 91.0}))
    server = Server.get_by_id("pi-1")
    assert json.loads(server.health_reasons) == ["temperature 81 °C ≥ 75", "disk / 91 % ≥ 90"]
    assert health_events() == [("unknown", "degraded", "warning")]


def test_failed_container_and_service_decide_health(client, auth):
    post(client, auth, heartbeat(containers=[container(), container("job", "exited", exit_code=1)]))
    server = Server.get_by_id("pi-1")
    assert server.health == "degraded"
    assert json.loads(server.health_reasons) == ["container job exited (1)"]
    post(client, auth, heartbeat(services=[service("nginx.service", "failed")]))
    server = Server.get_by_id("pi-1")
    assert server.health == "failed"
    # The containers the heartbeat left out are judged as last reported.
    assert json.loads(server.health_reasons) == [
        "service nginx.service failed",
        "container job exited (1)",
    ]
    post(client, auth, heartbeat(containers=[container()], services=[service()]))
    assert Server.get_by_id("pi-1").health == "healthy"


def test_heartbeat_without_metrics_is_judged_on_the_latest_sample(client, auth):
    post(client, auth, heartbeat(metrics={"temperature": 80.0}))
    post(client, auth, heartbeat())
    assert Server.get_by_id("pi-1").health == "degraded"


def test_version_lock_drift_degrades_and_matching_heals(client, auth):
    post(client, auth, heartbeat(commit_hash=COMMIT))
    Server.update(version_lock="9f8e7d6c5b4a").where(Server.id == "pi-1").execute()
    post(client, auth, heartbeat())  # no commit in this beat: the stored one drifts
    server = Server.get_by_id("pi-1")
    assert server.health == "degraded"
    assert json.loads(server.health_reasons) == ["commit 1a2b3c4 ≠ locked 9f8e7d6"]
    post(client, auth, heartbeat(commit_hash="9f8e7d6c5b4a"))
    assert Server.get_by_id("pi-1").health == "healthy"
    assert [to for _, to, _ in health_events()] == ["healthy", "degraded", "healthy"]


def test_manual_health_holds_over_the_rules(client, auth):
    post(client, auth, GOOD)
    Server.update(
        manual_health="failed", manual_health_reason="disk swap", manual_health_by="op"
    ).where(Server.id == "pi-1").execute()
    post(client, auth, heartbeat(metrics={"temperature": 20.0}))
    server = Server.get_by_id("pi-1")
    assert server.health == "failed"
    assert json.loads(server.health_reasons) == ["set manually by op: disk swap"]


@pytest.mark.parametrize("settings_overrides", [{"health_temperature_degraded": 60.0}])
def test_thresholds_come_from_settings(client, auth):
    post(client, auth, heartbeat(metrics={"temperature": 65.0}))
    server = Server.get_by_id("pi-1")
    assert json.loads(server.health_reasons) == ["temperature 65 °C ≥ 60"]
