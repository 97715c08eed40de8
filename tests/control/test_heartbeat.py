"""Seed 001: the agent heartbeat (TC013-TC017), its edge cases, and agent-key binding."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Annotated

import marshmallow as ma
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.api import strict_json
from control.api.agents import HeartbeatSchema
from control.api.compiled import compile_schema, strict_type
from control.fleet import heartbeats, offline
from control.keys import create_key
from control.models import MetricsSample, Server, utcnow
from tests.helpers import send_heartbeat

URL = "/api/v1/agents/heartbeat"

FULL_METRICS = {
    "cpu_percent": 12.5,
    "memory_percent": 45.2,
    "memory_total_mb": 16384,
    "memory_used_mb": 7400,
    "disk_percent": 61.0,
    "disk_total_gb": 500.0,
    "disk_used_gb": 305.0,
    "network_rx_bytes": 123456789,
    "network_tx_bytes": 98765432,
    "load_1m": 0.5,
    "load_5m": 0.7,
    "load_15m": 0.9,
    "uptime_seconds": 86400,
}
OS_INFO = {
    "distribution": "Debian GNU/Linux",
    "version": "12",
    "kernel": "6.1.0-18-amd64",
    "architecture": "x86_64",
}


def beat(server_id="pi-1", **extra):
    return {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": "2026-01-18T10:30:00Z",
        **extra,
    }


def post(client, auth, body, headers=None):
    return send_heartbeat(client, auth, body, headers)


def test_heartbeat_stores_metrics(client, auth):
    response = post(client, auth, beat(metrics=FULL_METRICS))
    assert response.status_code == 200
    sample = MetricsSample.get(MetricsSample.server == "pi-1")
    for field, value in FULL_METRICS.items():
        assert getattr(sample, field) == value
    assert sample.timestamp == dt.datetime(2026, 1, 18, 10, 30)
    assert abs((utcnow() - sample.received_at).total_seconds()) < 60


def test_heartbeat_sets_status_online_and_last_seen(client, auth):
    client.post("/api/v1/servers", json={"id": "pi-1", "hostname": "pi-1"}, headers=auth.operator)
    before = utcnow()
    post(client, auth, beat())
    server = Server.get_by_id("pi-1")
    assert server.status == "online"
    assert server.last_seen >= before


def test_heartbeat_auto_registers_unknown_server(client, auth):
    response = post(client, auth, beat("new-box"))
    answer = dict(response.json)
    assert answer.pop("agent_key").startswith("hlc_")  # the shared key enrolled it
    assert answer == {"status": "ok", "server_registered": True, "pending_commands": []}
    server = client.get("/api/v1/servers/new-box", headers=auth.viewer).json
    assert server["hostname"] == "new-box.lan"
    assert server["status"] == "online"
    second = post(client, auth, beat("new-box"))
    assert second.json["server_registered"] is False
    assert "agent_key" not in second.json


def test_heartbeat_updates_os_info(client, auth):
    post(client, auth, beat(os_info=OS_INFO))
    server = client.get("/api/v1/servers/pi-1", headers=auth.viewer).json
    assert server["os_distribution"] == "Debian GNU/Linux"
    assert server["os_version"] == "12"
    assert server["kernel_version"] == "6.1.0-18-amd64"
    assert server["architecture"] == "x86_64"


def test_heartbeat_without_os_info_keeps_previous(client, auth):
    post(client, auth, beat(os_info=OS_INFO))
    post(client, auth, beat())
    assert Server.get_by_id("pi-1").os_version == "12"


def test_heartbeat_response_has_empty_pending_commands(client, auth):
    assert post(client, auth, beat()).json["pending_commands"] == []


def test_heartbeat_records_agent_version_metrics_port_and_address(client, auth):
    post(client, auth, beat(agent_version="0.1.0", metrics_port=9100))
    server = Server.get_by_id("pi-1")
    assert (server.agent_version, server.metrics_port) == ("0.1.0", 9100)
    assert server.last_seen_address == "127.0.0.1"


def test_heartbeat_requires_auth(client, auth):
    assert client.post(URL, json=beat()).status_code == 401
    wrong = client.post(URL, json=beat(), headers={"X-API-Key": "wrong"})
    assert wrong.status_code == 401
    assert wrong.json["code"] == "UNAUTHORIZED"


def test_viewer_key_cannot_heartbeat(client, auth):
    response = post(client, auth, beat(), headers=auth.viewer)
    assert response.status_code == 403
    assert response.json["code"] == "FORBIDDEN"


def test_bearer_agent_key_works(client, auth):
    assert post(client, auth, beat(), headers=auth.bearer(auth.agent_key)).status_code == 200


def test_partial_metrics_are_accepted(client, auth):
    post(client, auth, beat(metrics={"cpu_percent": 5, "load_1m": None}))
    sample = MetricsSample.get()
    assert sample.cpu_percent == 5
    assert sample.memory_percent is None


def test_heartbeat_without_metrics_updates_status_only(client, auth):
    post(client, auth, beat())
    assert MetricsSample.select().count() == 0
    assert Server.get_by_id("pi-1").status == "online"


def test_duplicate_heartbeat_creates_a_new_sample(client, auth):
    post(client, auth, beat(metrics={"cpu_percent": 1}))
    post(client, auth, beat(metrics={"cpu_percent": 2}))
    assert MetricsSample.select().count() == 2
    latest = client.get("/api/v1/servers/pi-1", headers=auth.viewer).json["latest_metrics"]
    assert latest["cpu_percent"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hostname": "h", "timestamp": "2026-01-18T10:30:00Z"}, "server_id"),
        ({"server_id": "a", "hostname": "h"}, "timestamp"),
        ({"server_id": "a", "timestamp": "2026-01-18T10:30:00Z"}, "hostname"),
        (beat("Bad_Id"), "server_id"),
        (beat("a" * 101), "server_id"),
        (beat(timestamp="yesterday"), "timestamp"),
        (beat(metrics={"cpu_percent": -1}), "metrics"),
        (beat(metrics={"cpu_percent": 100.1}), "metrics"),
        (beat(metrics={"memory_total_mb": -5}), "metrics"),
        (beat(metrics={"network_rx_bytes": 2**63}), "metrics"),
        (beat(metrics={"uptime_seconds": 1.5}), "metrics"),
        (beat(metrics="lots"), "metrics"),
        (beat(os_info={"architecture": "x" * 21}), "os_info"),
        (beat(metrics_port=0), "metrics_port"),
        (beat(metrics_port=70000), "metrics_port"),
    ],
)
def test_invalid_heartbeat_is_422_and_stores_nothing(client, auth, body, field):
    response = post(client, auth, body)
    assert response.status_code == 422
    assert field in response.json["errors"]
    assert Server.select().count() == 0
    assert MetricsSample.select().count() == 0


def test_unknown_fields_from_newer_agents_are_ignored(client, auth):
    response = post(client, auth, beat(gpu={"count": 1}, metrics={"cpu_percent": 1, "gpu": 3}))
    assert response.status_code == 200


def test_last_seen_is_receive_time_not_agent_clock(client, auth):
    post(client, auth, beat(timestamp="2001-01-01T00:00:00Z"))
    assert Server.get_by_id("pi-1").last_seen > dt.datetime(2026, 1, 1)


def test_last_seen_never_moves_backwards(app):
    now = utcnow()
    heartbeats.ingest_heartbeat(beat(timestamp=now), now=now)
    heartbeats.ingest_heartbeat(beat(timestamp=now), now=now - dt.timedelta(minutes=5))
    assert Server.get_by_id("pi-1").last_seen == now


def test_heartbeat_brings_offline_server_back_online_with_event(client, auth):
    post(client, auth, beat())
    offline.mark_offline(60, now=utcnow() + dt.timedelta(minutes=5))
    assert Server.get_by_id("pi-1").status == "offline"
    post(client, auth, beat())
    assert Server.get_by_id("pi-1").status == "online"
    types = [
        e["type"]
        for e in client.get("/api/v1/events?server_id=pi-1", headers=auth.viewer).json["events"]
    ]
    # Each status change comes with its health change (seed 002), in the same transaction.
    assert types == [
        "health_changed",
        "status_changed",
        "health_changed",
        "status_changed",
        "server_enrolled",
        "health_changed",
        "server_registered",
    ]


def test_agent_key_bound_to_a_server_cannot_report_for_another(client, auth):
    key, _ = create_key("agent", "pi-1-agent", server_id="pi-1")
    assert post(client, auth, beat("pi-1"), headers={"X-API-Key": key}).status_code == 200
    response = post(client, auth, beat("pi-2"), headers={"X-API-Key": key})
    assert response.status_code == 403
    assert response.json["code"] == "FORBIDDEN"
    assert not Server.select().where(Server.id == "pi-2").exists()


def test_heartbeat_counter_in_metrics(client, auth):
    post(client, auth, beat())
    post(client, auth, beat())
    text = client.get("/metrics").data.decode()
    assert "homelab_heartbeats_received_total 2.0" in text
    assert 'homelab_servers{status="online"} 1.0' in text
    assert 'homelab_server_last_seen_timestamp_seconds{server_id="pi-1"}' in text


# --- the heartbeat schema compiled to msgspec: never more lenient than marshmallow ----------------

CONTAINER = {
    "name": "web",
    "image": "nginx:1.27",
    "state": "running",
    "health": None,
    "exit_code": 0,
    "restart_count": 1,
}
SEED_002 = beat(
    metrics={**FULL_METRICS, "temperature": 41.5, "containers_running": 1, "containers_failed": 0},
    os_info=OS_INFO,
    agent_version="0.1.0",
    metrics_port=9100,
    containers=[CONTAINER],
    services=[{"name": "nginx.service", "active_state": "active", "sub_state": "running"}],
    packages={"upgradable": 1, "security": 0, "reboot_required": False},
    commit_hash="1a2b3c4",
)
# Values that sit at, or just past, some rule of some field: types, bounds, patterns, NUL,
# a trailing newline (which `$` alone lets through), non-ASCII digits and letters.
ODD_VALUES = [
    None, True, False, 0, 1, -1, 100, 101, 65535, 65536, 2**63 - 1, 2**63, -(2**70), 0.5,
    100.0, 100.5, -50.0, -50.5, 200.0, 1e12, 1e13, "5", "5.5", "", "a", "a\n", "\x00", "a\x00b",
    "1a2b3c4", "1A2B3C4", "1a2b3c4\n", "١٢٣٤٥٦٧", "pi-1", "PI-1", "pi_1", "é", "x" * 101,
    "x" * 256, "2026-01-18T10:30:00Z", "2026-01-18T10:30:00", "9999-12-31T23:59:59-05:00",
    "2026-13-01T00:00:00Z", "2026-01-18 10:30:00\x00junk", [], [CONTAINER], {}, {"x": 1},
    {"upgradable": 1, "security": 0, "reboot_required": 0},
]  # fmt: skip
FIELDS = [
    ("server_id",), ("hostname",), ("timestamp",), ("agent_version",), ("metrics_port",),
    ("commit_hash",), ("os_info",), ("os_info", "kernel"), ("os_info", "architecture"),
    ("metrics",), ("metrics", "cpu_percent"), ("metrics", "memory_total_mb"),
    ("metrics", "temperature"), ("metrics", "containers_failed"), ("metrics", "uptime_seconds"),
    ("containers",), ("services",), ("packages",), ("surprise",), ("metrics", "surprise"),
]  # fmt: skip


def mutated(changes):
    body = copy.deepcopy(SEED_002)
    for path, value in changes:
        target = body
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = value
    return body


def agree(body) -> None:
    """The compiled check refuses `body`, or loads it exactly as marshmallow does."""
    struct, finish = compile_schema(HeartbeatSchema())
    try:
        fast = finish(msgspec.to_builtins(msgspec.convert(body, struct)))
    except (msgspec.ValidationError, ma.ValidationError):
        return  # marshmallow decides: the same 422 as ever
    assert fast == ma.Schema.load(HeartbeatSchema(), body)
    agree_on_bytes(json.dumps(body).encode())


ONE_PASS = HeartbeatSchema()  # built once: load_json compiles its decoder on first use


def agree_on_bytes(raw: bytes) -> None:
    """The one-pass read (`load_json`) refuses `raw`, or loads it as the exact path does:
    `strict_json` then marshmallow."""
    fast = ONE_PASS.load_json(raw)
    if fast is not None:
        assert fast == ma.Schema.load(HeartbeatSchema(), strict_json.loads(raw))


@pytest.mark.parametrize(
    "raw",
    [
        # What msgspec skips unchecked in a key it ignores, and strict_json refuses (400).
        b'{"server_id": "pi-1", "hostname": "pi", "timestamp": "2026-01-18T10:30:00Z", '
        b'"surprise": ' + b"9" * 5000 + b"}",
        b'{"server_id": "pi-1", "hostname": "pi", "timestamp": "2026-01-18T10:30:00Z", '
        b'"surprise": "\xff"}',
        b'{"server_id": "pi-1", "hostname": "pi", "timestamp": "2026-01-18T10:30:00Z", '
        b'"metrics": {"cpu_percent": 1, "surprise": 1e999}}',
        b'{"server_id": "pi-1", "hostname": "pi", "timestamp": "2026-01-18T10:30:00Z", '
        b'"containers": [{"name": "web", "image": "x", "state": "running", "surprise": [[[]]]}]}',
    ],
)
def test_the_one_pass_read_leaves_a_body_with_unknown_keys_to_the_exact_path(raw):
    assert ONE_PASS.load_json(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"server_id": "pi-1", "hostname": "pi\xff", "timestamp": "2026-01-18T10:30:00Z"}',
        b'{"server_id": "pi-1", "hostname": "\\ud800", "timestamp": "2026-01-18T10:30:00Z"}',
        b'{"server_id": "pi-1", "hostname": "pi", "timestamp": "2026-01-18T10:30:00Z", '
        b'"metrics": {"cpu_percent": NaN}}',
        b'{"server_id": "pi-1", "hostname": "pi", "timestamp": "2026-01-18T10:30:00Z"} []',
        b'[{"server_id": "pi-1", "hostname": "pi", "timestamp": "2026-01-18T10:30:00Z"}]',
        b'{"server_id": "pi-1", "server_id": "PI", "hostname": "pi", "timestamp": "x"}',
        b'{"server_id": "pi-1", "hostname": "pi", "timestamp": "2026-01-18T10:30:00Z", '
        b'"metrics": {"memory_total_mb": ' + b"9" * 30 + b"}}",
    ],
)
def test_the_one_pass_read_refuses_what_the_exact_path_refuses(raw):
    assert ONE_PASS.load_json(raw) is None


def test_the_one_pass_read_takes_a_well_formed_seed_002_heartbeat():
    raw = json.dumps(SEED_002).encode()
    assert ONE_PASS.load_json(raw) == ma.Schema.load(HeartbeatSchema(), SEED_002)


def test_the_compiled_heartbeat_check_is_never_more_lenient_for_any_one_odd_value():
    for path in FIELDS:
        for value in ODD_VALUES:
            agree(mutated([(path, value)]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FIELDS), st.sampled_from(ODD_VALUES)), max_size=4))
def test_the_compiled_heartbeat_check_is_never_more_lenient_for_odd_values_together(changes):
    agree(mutated(changes))


def test_a_well_formed_seed_002_heartbeat_takes_the_compiled_path():
    struct, finish = compile_schema(HeartbeatSchema())
    loaded = finish(msgspec.to_builtins(msgspec.convert(SEED_002, struct)))
    assert loaded == ma.Schema.load(HeartbeatSchema(), SEED_002)
    assert loaded["timestamp"] == dt.datetime(2026, 1, 18, 10, 30)


@pytest.mark.parametrize(
    "field",
    [
        ma.fields.Email(),
        ma.fields.String(validate=ma.validate.OneOf(["a"])),
        ma.fields.String(validate=lambda value: True),
        ma.fields.Integer(data_key="other"),
        ma.fields.Integer(load_default=5),
        ma.fields.Float(allow_nan=True),
        ma.fields.List(ma.fields.String()),
    ],
)
def test_a_rule_the_compiler_does_not_know_stops_it_instead_of_being_skipped(field):
    schema = ma.Schema.from_dict({"field": field})()
    with pytest.raises(TypeError):
        compile_schema(schema)


class Renamed(msgspec.Struct, rename="camel"):
    some_field: int


class WithDefaults(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(max_length=3)]
    tags: list[str] = msgspec.field(default_factory=list)
    count: int = 0


def test_a_strict_type_keeps_bounds_and_defaults_and_refuses_unknown_keys():
    strict = strict_type(Annotated[list[WithDefaults], msgspec.Meta(max_length=2)] | None)
    decode = msgspec.json.Decoder(strict).decode
    assert msgspec.to_builtins(decode(b'[{"name": "abc"}]')) == [
        {"name": "abc", "tags": [], "count": 0}
    ]
    assert decode(b"null") is None
    for refused in (b'[{"name": "abcd"}]', b"[{}, {}, {}]", b'[{"name": "a", "x": 1}]'):
        with pytest.raises(msgspec.ValidationError):
            decode(refused)


def test_a_struct_whose_wire_names_differ_is_not_made_strict():
    with pytest.raises(TypeError, match="wire form"):
        strict_type(list[Renamed])
