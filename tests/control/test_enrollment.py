"""Agent identity by enrollment: a shared agent key can add boxes, never speak for one.

The attack these close: with the bootstrap agent key every box holds, a hostile box used to
heartbeat as any other server id, rewriting its hostname, address, metrics port and metrics
(so Prometheus scraped the attacker and SSH went where it chose), and register servers
without limit.
"""

from __future__ import annotations

import threading

import pytest

from control.keys import create_key
from control.models import ApiKey, MetricsSample, Server, utcnow
from control.remediation.runner import ssh_target
from tests.helpers import HEARTBEAT_URL

VICTIM = {
    "server_id": "nas",
    "hostname": "nas",
    "timestamp": "2026-01-01T00:00:00Z",
    "metrics_port": 9100,
    "metrics": {"cpu_percent": 5.0},
}
FORGED = {**VICTIM, "hostname": "evil", "metrics_port": 6666, "metrics": {"cpu_percent": 99.0}}


def beat(client, key, body=VICTIM, remote="10.0.0.2"):
    return client.post(
        HEARTBEAT_URL,
        json=body,
        headers={"X-API-Key": key},
        environ_overrides={"REMOTE_ADDR": remote},
    )


@pytest.fixture
def enrolled(client, auth):
    """The victim box enrolled with the shared key; its own bound key."""
    first = beat(client, auth.agent_key)
    assert first.status_code == 200, first.json
    return first.json["agent_key"]


def snapshot(server_id="nas"):
    server = Server.get_by_id(server_id)
    return (
        server.hostname,
        server.metrics_port,
        server.last_seen_address,
        server.latest_sample_id,
        server.last_seen,
        MetricsSample.select().count(),
    )


def test_a_box_with_the_shared_key_cannot_speak_for_an_enrolled_one(client, auth, enrolled):
    before = snapshot()
    response = beat(client, auth.agent_key, FORGED, remote="10.6.6.6")
    assert response.status_code == 403
    assert response.json["code"] == "FORBIDDEN"
    assert "enrolled" in response.json["message"]
    assert snapshot() == before  # no hostname, port, address or metrics of the attacker's


def test_another_boxs_bound_key_cannot_speak_for_it_either(client, auth, enrolled):
    other = beat(client, auth.agent_key, {**VICTIM, "server_id": "attacker"}).json["agent_key"]
    before = snapshot()
    assert beat(client, other, FORGED, remote="10.6.6.6").status_code == 403
    assert snapshot() == before


def test_the_enrolled_key_is_shown_once_and_then_speaks_for_its_server(client, auth, enrolled):
    again = beat(client, enrolled, {**VICTIM, "metrics_port": 9101})
    assert again.status_code == 200
    assert "agent_key" not in again.json
    assert Server.get_by_id("nas").metrics_port == 9101
    row = ApiKey.get(ApiKey.server_id == "nas")
    assert (row.scope, row.issued_by, row.revoked_at) == ("agent", "bootstrap-agent", None)
    assert enrolled not in row.key_hash  # only its hash is stored
    events = client.get("/api/v1/events?type=server_enrolled", headers=auth.viewer).json
    assert [e["server_id"] for e in events["events"]] == ["nas"]


def test_an_operator_may_report_for_any_server_and_never_enrolls_one(client, auth, enrolled):
    response = beat(client, auth.operator_key, {**VICTIM, "hostname": "nas-2"})
    assert response.status_code == 200 and "agent_key" not in response.json
    fresh = beat(client, auth.operator_key, {**VICTIM, "server_id": "by-hand"})
    assert fresh.status_code == 200 and "agent_key" not in fresh.json
    assert ApiKey.select().where(ApiKey.server_id == "by-hand").count() == 0


def test_a_reset_lets_the_box_enroll_again_and_is_audited(client, auth, enrolled):
    reset = client.post("/api/v1/servers/nas/enrollment/reset", headers=auth.operator)
    assert reset.status_code == 200
    assert reset.json == {"server_id": "nas", "revoked_keys": 1}
    assert beat(client, enrolled).status_code == 401  # revoked at once
    again = beat(client, auth.agent_key)
    assert again.status_code == 200 and again.json["agent_key"] != enrolled
    audit = client.get("/api/v1/audit?source=enrollment", headers=auth.viewer).json["audit"]
    assert [(a["server_id"], a["actor"], a["result"]) for a in audit] == [
        ("nas", "bootstrap-operator", "completed")
    ]
    assert "revoked 1" in audit[0]["detail"]


def test_only_operators_reset_an_enrollment(client, auth, enrolled):
    url = "/api/v1/servers/nas/enrollment/reset"
    for headers in (auth.viewer, auth.agent, {"X-API-Key": enrolled}):
        assert client.post(url, headers=headers).status_code == 403
    assert (
        client.post("/api/v1/servers/gone/enrollment/reset", headers=auth.operator).status_code
        == 404
    )
    assert beat(client, enrolled).status_code == 200


def test_a_key_made_for_a_server_with_keys_create_counts_as_its_enrollment(client, auth):
    key, _ = create_key("agent", "nas-agent", server_id="nas")
    assert beat(client, auth.agent_key).status_code == 403
    assert beat(client, key).status_code == 200


@pytest.fixture
def settings_overrides(request):
    return getattr(request, "param", {})


@pytest.mark.parametrize("settings_overrides", [{"enroll_rate": 2}], indirect=True)
def test_an_unbound_key_enrolls_at_most_the_hourly_rate(client, auth, settings_overrides):
    for name in ("a", "b"):
        assert beat(client, auth.agent_key, {**VICTIM, "server_id": name}).status_code == 200
    third = beat(client, auth.agent_key, {**VICTIM, "server_id": "c"})
    assert third.status_code == 429
    assert third.json["code"] == "RATE_LIMITED" and third.headers["Retry-After"]
    assert Server.get_or_none(Server.id == "c") is None  # nothing registered
    # Enrolled boxes go on reporting with their own keys; an operator may still register.
    assert (
        client.post(
            "/api/v1/servers", json={"id": "c", "hostname": "c"}, headers=auth.operator
        ).status_code
        == 201
    )


@pytest.mark.parametrize("settings_overrides", [{"enrollment": False}], indirect=True)
def test_with_enrollment_off_only_bound_keys_report(client, auth, settings_overrides):
    refused = beat(client, auth.agent_key)
    assert refused.status_code == 403 and "Enrollment is off" in refused.json["message"]
    assert Server.get_or_none(Server.id == "nas") is None
    key, _ = create_key("agent", "nas-agent", server_id="nas")
    assert beat(client, key).status_code == 200


def test_racing_first_heartbeats_enroll_the_server_once(app, auth):
    results = []

    def first_heartbeat():
        with app.test_client() as racer:
            response = beat(racer, auth.agent_key)
            results.append((response.status_code, (response.json or {}).get("agent_key")))

    threads = [threading.Thread(target=first_heartbeat) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    minted = [key for status, key in results if status == 200 and key]
    assert len(results) == 8 and len(minted) == 1
    assert sorted(status for status, _ in results) == [200] + [403] * 7
    assert ApiKey.select().where(ApiKey.server_id == "nas").count() == 1


def test_ssh_goes_to_the_address_the_operator_set_never_where_heartbeats_come_from(
    client, auth, enrolled
):
    # Registered by its heartbeat from 10.0.0.2: that is where SSH goes, pinned.
    assert Server.get_by_id("nas").ssh_address == "10.0.0.2"
    moved = {**VICTIM, "hostname": "victim.lan"}  # a name another box answers to
    assert beat(client, enrolled, moved, remote="10.6.6.6").status_code == 200
    server = Server.get_by_id("nas")
    assert (server.hostname, server.last_seen_address) == ("victim.lan", "10.6.6.6")
    assert ssh_target(server, "root")[0] == "10.0.0.2"  # neither the new name nor address
    by_hand = {"id": "web", "hostname": "web.lan"}
    assert client.post("/api/v1/servers", json=by_hand, headers=auth.operator).status_code == 201
    assert (
        beat(client, auth.agent_key, {**VICTIM, "server_id": "web", "hostname": "x"}).status_code
        == 200
    )
    assert ssh_target(Server.get_by_id("web"), "root")[0] == "web.lan"  # the operator's name
    renamed = {"hostname": "web2.lan"}
    assert client.put("/api/v1/servers/web", json=renamed, headers=auth.operator).status_code == 200
    assert ssh_target(Server.get_by_id("web"), "root")[0] == "web2.lan"
    body = {"ip_address": "nas.lan", "ssh_user": "admin"}
    assert client.put("/api/v1/servers/nas", json=body, headers=auth.operator).status_code == 200
    assert beat(client, enrolled, remote="10.6.6.7").status_code == 200
    assert ssh_target(Server.get_by_id("nas"), "root") == ("nas.lan", 22, "admin")


def test_deleting_a_server_revokes_its_bound_key(client, auth, enrolled):
    assert client.delete("/api/v1/servers/nas", headers=auth.operator).status_code == 204
    assert beat(client, enrolled).status_code == 401
    # The box (or a new one under this id) enrolls anew with the shared key.
    again = beat(client, auth.agent_key)
    assert again.status_code == 200 and again.json["agent_key"] != enrolled


def test_refused_heartbeats_are_counted_in_metrics(client, auth, enrolled):
    assert beat(client, auth.agent_key, FORGED).status_code == 403
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'homelab_auth_failures_total{reason="not_bound"} 1.0' in metrics
    assert 'homelab_auth_failures_total{reason="enroll_rate"} 0.0' in metrics


# --- bound keys kept in memory: a revocation by anyone is honoured by the next heartbeat -------


def revoke_behind_controls_back(server_id="nas"):
    """What `homelab-control keys revoke` in another process does: only the row changes."""
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.server_id == server_id).execute()


def test_a_bound_key_revoked_by_another_process_is_refused_at_its_next_heartbeat(client, enrolled):
    assert beat(client, enrolled).status_code == 200  # verified, and now kept in memory
    before = snapshot()
    revoke_behind_controls_back()
    refused = beat(client, enrolled, {**VICTIM, "metrics": {"cpu_percent": 77.0}})
    assert (refused.status_code, refused.json["code"]) == (401, "UNAUTHORIZED")
    assert snapshot() == before  # nothing written
    assert beat(client, enrolled).status_code == 401  # and asked of the database from now on


def test_a_revoked_key_of_a_deleted_server_cannot_register_it_again(client, auth, enrolled):
    assert beat(client, enrolled).status_code == 200
    revoke_behind_controls_back()
    Server.delete().where(Server.id == "nas").execute()
    assert beat(client, enrolled).status_code == 401
    assert not Server.select().where(Server.id == "nas").exists()


def test_other_requests_never_take_a_stored_key_from_memory(client, auth):
    viewer_key, _ = create_key("viewer", "dash")
    for _ in range(2):
        assert client.get("/api/v1/servers", headers={"X-API-Key": viewer_key}).status_code == 200
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.name == "dash").execute()
    assert client.get("/api/v1/servers", headers={"X-API-Key": viewer_key}).status_code == 401
