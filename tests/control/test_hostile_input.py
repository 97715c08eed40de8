"""Inputs a hostile box or client can send that once gave a 500: each is a clear 4xx now.

Times that are no instant (converting them to UTC leaves the years 1-9999), lone UTF-16
surrogates in JSON strings, and JSON sent under another media type. A box whose clock is wild
but well-formed is not an error: its sample is stored at control's receive time.
"""

from __future__ import annotations

import datetime as dt
import json

import marshmallow as ma
import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.api import strict_json
from control.api.agents import HeartbeatSchema
from control.api.alerts import AlertTime
from control.fleet.heartbeats import MAX_CLOCK_SKEW
from control.models import MetricsSample, Server, utcnow

NO_INSTANT = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"]


def beat(**fields):
    body = {
        "server_id": "box",
        "hostname": "box",
        "timestamp": "2026-01-18T10:30:00Z",
        "metrics": {"cpu_percent": 5},
    }
    return {**body, **fields}


def post_raw(client, url, text, headers, method="POST"):
    """Send `text` byte for byte: the JSON escape `\\ud800` must reach control unchanged."""
    return client.open(
        url,
        method=method,
        data=text.encode("ascii"),
        headers={**headers, "Content-Type": "application/json"},
    )


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["code"] == code
    assert response.json["message"]


# --- times that are no instant -----------------------------------------------------------------


@pytest.mark.parametrize("stamp", NO_INSTANT)
def test_a_heartbeat_whose_clock_is_no_instant_is_stored_at_the_receive_time(client, auth, stamp):
    before = utcnow()
    response = client.post(
        "/api/v1/agents/heartbeat", json=beat(timestamp=stamp), headers=auth.agent
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    sample = MetricsSample.get()
    assert sample.timestamp == sample.received_at
    assert before <= sample.timestamp <= utcnow()
    assert Server.get_by_id("box").status == "online"


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]
)
def test_a_heartbeat_clock_absurdly_far_from_control_is_stored_at_the_receive_time(
    client, auth, stamp
):
    response = client.post(
        "/api/v1/agents/heartbeat", json=beat(timestamp=stamp), headers=auth.agent
    )
    assert response.status_code == 200
    sample = MetricsSample.get()
    assert sample.timestamp == sample.received_at
    latest = client.get("/api/v1/servers/box", headers=auth.viewer).json["latest_metrics"]
    assert latest["timestamp"] == latest["received_at"]


def test_a_heartbeat_clock_off_by_less_than_the_limit_is_kept_as_the_agents_clock(client, auth):
    # Relative to now, so the test means the same whatever day it runs.
    skewed = (utcnow() - MAX_CLOCK_SKEW + dt.timedelta(days=1)).replace(microsecond=0)
    stamp = skewed.isoformat() + "+02:00"
    response = client.post(
        "/api/v1/agents/heartbeat", json=beat(timestamp=stamp), headers=auth.agent
    )
    assert response.status_code == 200
    assert MetricsSample.get().timestamp == skewed - dt.timedelta(hours=2)


@pytest.mark.parametrize("stamp", ["yesterday", "2026-13-01T00:00:00Z", None, 5])
def test_a_heartbeat_timestamp_that_is_no_date_time_at_all_is_still_422(client, auth, stamp):
    response = client.post(
        "/api/v1/agents/heartbeat", json=beat(timestamp=stamp), headers=auth.agent
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert "timestamp" in response.json["errors"]
    assert Server.select().count() == 0


@pytest.mark.parametrize("stamp", NO_INSTANT)
@pytest.mark.parametrize("field", ["startsAt", "endsAt"])
def test_an_alert_time_that_is_no_instant_is_422(client, auth, stamp, field):
    alert = {
        "status": "firing",
        "labels": {"alertname": "Test"},
        "annotations": {},
        "startsAt": "2026-01-18T10:30:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "abc",
        field: stamp,
    }
    body = {"version": "4", "status": "firing", "alerts": [alert]}
    response = client.post("/api/v1/alerts/alertmanager", json=body, headers=auth.operator)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert "Not an instant" in json.dumps(response.json["errors"])


# --- lone surrogates ---------------------------------------------------------------------------

LONE = ["\\ud800", "\\udfff", "a\\udc80b", "\\ud83d", "\\ude00\\ud83d"]


@pytest.mark.parametrize("escape", LONE)
@pytest.mark.parametrize(
    "body",
    [
        '{{"server_id": "box", "hostname": "box{escape}", "timestamp": "2026-01-18T10:30:00Z"}}',
        '{{"server_id": "box", "hostname": "box", "timestamp": "2026-01-18T10:30:00Z", '
        '"agent_version": "{escape}"}}',
        '{{"server_id": "box", "hostname": "box", "timestamp": "2026-01-18T10:30:00Z", '
        '"os_info": {{"kernel": "6.1{escape}"}}}}',
        '{{"server_id": "box{escape}", "hostname": "box", "timestamp": "2026-01-18T10:30:00Z"}}',
        # Unknown fields are ignored on heartbeats, but not text that is no text.
        '{{"server_id": "box", "hostname": "box", "timestamp": "2026-01-18T10:30:00Z", '
        '"future": {{"{escape}": 1}}}}',
    ],
)
def test_a_lone_surrogate_in_a_heartbeat_is_400_and_stores_nothing(client, auth, body, escape):
    response = post_raw(client, "/api/v1/agents/heartbeat", body.format(escape=escape), auth.agent)
    assert_error(response, 400, "BAD_REQUEST")
    assert "surrogate" in response.json["message"]
    assert Server.select().count() == 0


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/api/v1/servers", '{"id": "x", "hostname": "x", "display_name": "\\ud800"}'),
        ("PUT", "/api/v1/servers/web-1", '{"display_name": "web \\udbff"}'),
        ("PUT", "/api/v1/servers/web-1", '{"\\ud800": 1}'),
        ("POST", "/api/v1/actions", '{"server_id": "web-1", "action_type": "restart_service", '
         '"parameters": {"service_name": "\\ud800"}}'),
        ("POST", "/api/v1/actions", '{"server_id": "web-1", "action_type": "restart_service", '
         '"parameters": {"\\ud800": "x"}}'),
        ("POST", "/api/v1/servers/web-1/commands/execute", '{"command": "echo \\ud800"}'),
        ("POST", "/api/v1/alerts/alertmanager", '{"version": "4", "alerts": [{"status": '
         '"firing", "labels": {"alertname": "A\\ud800"}, "startsAt": "2026-01-18T10:30:00Z", '
         '"fingerprint": "ab"}]}'),
    ],
)  # fmt: skip
def test_a_lone_surrogate_in_any_operator_body_is_400(client, auth, method, url, body):
    created = client.post("/api/v1/servers", json={"id": "web-1", "hostname": "web-1"},
                          headers=auth.operator)  # fmt: skip
    assert created.status_code == 201
    response = post_raw(client, url, body, auth.operator, method=method)
    assert_error(response, 400, "BAD_REQUEST")
    assert "surrogate" in response.json["message"]
    assert client.get("/api/v1/servers/web-1", headers=auth.viewer).json["display_name"] is None


def test_a_surrogate_pair_is_one_character_and_is_accepted(client, auth):
    created = post_raw(client, "/api/v1/servers",
                       '{"id": "x", "hostname": "x", "display_name": "rack \\ud83d\\ude00"}',
                       auth.operator)  # fmt: skip
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.json["display_name"] == "rack \U0001f600"


def test_an_escaped_backslash_before_u_d800_is_plain_text(client, auth):
    created = post_raw(client, "/api/v1/servers",
                       '{"id": "x", "hostname": "x", "display_name": "C:\\\\ud800"}',
                       auth.operator)  # fmt: skip
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.json["display_name"] == "C:\\ud800"


offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)


@given(st.datetimes(timezones=offsets))
def test_every_well_formed_agent_clock_loads_as_naive_utc_or_as_no_instant(moment):
    loaded = HeartbeatSchema().load(beat(timestamp=moment.isoformat()))["timestamp"]

    try:
        expected = moment.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:
        expected = None
    assert loaded == expected


@given(st.datetimes(timezones=offsets))
def test_every_well_formed_alert_time_is_an_instant_or_a_422(moment):
    field = AlertTime()
    try:
        loaded = field.deserialize(moment.isoformat())
    except ma.ValidationError as exc:
        assert "Not an instant" in str(exc)
        return
    assert loaded == moment.astimezone(dt.UTC).replace(tzinfo=None)


# --- JSON under another media type -------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "text/json", "application/xml"],
)
@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("PUT", "/api/v1/servers/web-1", {"display_name": "Web"}),
        ("POST", "/api/v1/servers", {"id": "x", "hostname": "x"}),
        ("POST", "/api/v1/actions", {"server_id": "web-1", "action_type": "clear_logs"}),
        ("POST", "/api/v1/agents/heartbeat", beat()),
    ],
)
def test_json_sent_as_another_media_type_is_415_naming_the_one_to_send(
    client, auth, method, url, body, content_type
):
    client.post("/api/v1/servers", json={"id": "web-1", "hostname": "web-1"}, headers=auth.operator)
    headers = auth.agent if "heartbeat" in url else auth.operator
    if content_type:
        headers = {**headers, "Content-Type": content_type}
    response = client.open(url, method=method, data=json.dumps(body), headers=headers)
    assert_error(response, 415, "BAD_REQUEST")
    assert "Content-Type: application/json" in response.json["message"]
    assert client.get("/api/v1/servers/web-1", headers=auth.viewer).json["display_name"] is None
    assert client.get("/api/v1/actions", headers=auth.viewer).json["total"] == 0
    assert client.get("/api/v1/servers", headers=auth.viewer).json["total"] == 1


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_media_types_with_parameters_or_a_json_suffix_are_read(client, auth, content_type):
    client.post("/api/v1/servers", json={"id": "web-1", "hostname": "web-1"}, headers=auth.operator)
    headers = {**auth.operator, "Content-Type": content_type}
    response = client.put("/api/v1/servers/web-1", data='{"display_name": "Web"}', headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["display_name"] == "Web"


@pytest.mark.parametrize("content_type", [None, "text/plain"])
def test_no_body_at_all_is_still_the_422_that_asks_for_a_json_object(client, auth, content_type):
    client.post("/api/v1/servers", json={"id": "web-1", "hostname": "web-1"}, headers=auth.operator)
    headers = {**auth.operator, **({"Content-Type": content_type} if content_type else {})}
    response = client.put("/api/v1/servers/web-1", headers=headers)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert "body" in response.json["errors"]


# --- the strict reader: msgspec first, the reference reader's words for every refusal ----------

# JSON values whose strings hold what could fool a count of brackets on the bytes: brackets,
# quotes, backslashes and escapes of each, and non-ASCII text.
tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\/ab\n\t\u00e9\u20ac\U0001f600'), max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3)
    ),
    max_leaves=60,
)


def nesting(value) -> int:
    """How deep `value` nests arrays and objects (a scalar: 0)."""
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    return 0


def wrapped(value, depth: int):
    """`value` inside `depth` arrays and objects, alternating."""
    for level in range(depth):
        value = [value] if level % 2 else {'[\\"{': value}
    return value


@given(json_values, st.integers(0, 40), st.booleans())
def test_the_strict_reader_reads_what_json_reads_and_refuses_past_32_levels(value, extra, ascii):
    document = wrapped(value, extra)
    text = json.dumps(document, ensure_ascii=ascii)
    depth = nesting(document)
    assert strict_json.deeper_than(text.encode(), strict_json.MAX_DEPTH) == (depth > 32)
    if depth > strict_json.MAX_DEPTH:
        with pytest.raises(json.JSONDecodeError, match="nesting deeper than 32 levels"):
            strict_json.loads(text.encode())
    else:
        assert strict_json.loads(text.encode()) == json.loads(text)


HOSTILE_BODIES = [
    b"",
    b"   ",
    b"{bad json",
    b'{"a": 1,}',
    b"\xff\xfe\x00garbage",
    b'{"a": "caf\xe9"}',
    b'\xef\xbb\xbf{"a": 1}',
    b'{"a": NaN}',
    b'{"a": -Infinity}',
    b'{"a": 1e999}',
    b'{"a": -' + b"9" * 4301 + b"}",
    b'{"a": ' + b"9" * 5000 + b"}",
    b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"a": ' + b"[" * 33 + b"]" * 33 + b"}",
    b'{"a": "\\ud800"}',
    b'{"\\udfff": 1}',
    b'{"a": ["x\\ud83d"]}',
    b'{"a": "\x01"}',
    b'{"a": 1} {"b": 2}',
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_every_body_the_strict_reader_refuses_is_refused_in_the_reference_readers_words(body):
    with pytest.raises(json.JSONDecodeError) as reference:
        strict_json.reference_loads(body)
    with pytest.raises(json.JSONDecodeError) as strict:
        strict_json.loads(body)
    assert strict.value.msg == reference.value.msg


def test_the_limits_themselves_are_accepted():
    assert strict_json.loads(b"[" * 32 + b"]" * 32) == json.loads("[" * 32 + "]" * 32)
    assert strict_json.loads(b"[-" + b"9" * 4300 + b"]") == [-int("9" * 4300)]
    assert strict_json.loads(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]
    assert strict_json.loads(b'{"a": 1, "a": 2}') == {"a": 2}
