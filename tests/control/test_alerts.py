"""The Alertmanager webhook with payloads recorded from the real Alertmanager: one row per alert
occurrence, remediation rules queueing actions through the approval gate, and refusals that are
recorded on the alert instead of failing the delivery.

Over 300 lines: the payloads recorded from Alertmanager are shared by every test here.
"""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from control import context
from control.models import Action, ActionStatus, Alert, AuditEntry, utcnow
from control.remediation import alerts, wakeup
from control.scheduler import ControlScheduler
from tests.helpers import wait_until
from tests.prometheus.files import FIXTURES

URL = "/api/v1/alerts/alertmanager"
FIRING = json.loads((FIXTURES / "alertmanager" / "firing.json").read_text())
RESOLVED = json.loads((FIXTURES / "alertmanager" / "resolved.json").read_text())

RULES = """
[remediation.restart_failed_unit]
alertname = "SystemdServiceFailed"
action_type = "restart_service"
parameters = { service_name = "{labels.name}" }

[remediation.vacuum_journal]
alertname = "FilesystemAlmostFull"
action_type = "clear_logs"
match = { mountpoint = "/var/log" }
"""

# With a real sshd, restart_service is replaced by a command that leaves a marker file, so the
# test can see that the alert's action really ran (there is no systemd here).
SSH_COMMANDS = """
[commands.restart_service]
argv = ["touch", "@WORKDIR@/restarted-{service_name}"]
[commands.restart_service.params]
service_name = "^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$"
"""


@pytest.fixture
def settings_overrides(request, tmp_path):
    commands = tmp_path / "commands.toml"
    overrides = {"commands_file": str(commands)}
    text = RULES
    if "sshd" in request.fixturenames:  # not the `integration` marker: every postgres test has it
        sshd = request.getfixturevalue("sshd")
        workdir = tmp_path / "remote"
        workdir.mkdir()
        text = SSH_COMMANDS.replace("@WORKDIR@", str(workdir)) + RULES
        overrides.update(
            ssh_key_file=str(sshd.client_key_path),
            ssh_known_hosts=str(sshd.known_hosts_path),
            ssh_user=sshd.user,
        )
    commands.write_text(text)
    return overrides


@pytest.fixture
def web1(client, auth):
    body = {"id": "web-1", "hostname": "web-1", "display_name": "Web 1"}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    return "web-1"


def deliver(client, auth, payload, **changes):
    """Post a payload, with `changes` applied to the labels/fields of its (single) alert."""
    payload = copy.deepcopy(payload)
    alert = payload["alerts"][0]
    alert["labels"].update(changes.pop("labels", {}))
    alert.update(changes)
    response = client.post(URL, json=payload, headers=auth.bearer(auth.operator_key))
    assert response.status_code == 200, response.json
    return response.json


def test_firing_alert_is_stored_and_queues_an_auto_approved_action(client, auth, web1):
    body = deliver(client, auth, FIRING)
    assert body["received"] == 1
    (alert,) = body["alerts"]
    assert alert["alertname"] == "SystemdServiceFailed"
    assert (alert["status"], alert["server_id"]) == ("firing", "web-1")
    assert alert["fingerprint"] == "ce6917767867ff67"
    assert alert["starts_at"] == "2026-11-22T03:15:52.000Z"
    assert alert["ends_at"] is None  # Alertmanager's 0001-01-01 means "no end"
    assert alert["labels"] == FIRING["alerts"][0]["labels"]
    assert alert["annotations"]["summary"] == "Service nginx.service failed on web-1"
    assert (alert["remediation"], alert["remediation_rule"]) == ("queued", "restart_failed_unit")
    action = client.get(f"/api/v1/actions/{alert['action_id']}", headers=auth.viewer).json
    assert action["action_type"] == "restart_service"
    assert action["parameters"] == {"service_name": "nginx.service"}
    assert action["command"] == "systemctl restart -- nginx.service"
    assert (action["status"], action["approved_by"]) == ("approved", "auto")
    assert (action["created_by"], action["alert_id"]) == ("alertmanager", alert["id"])


def test_redelivered_alert_is_one_row_and_one_action(client, auth, web1):
    first = deliver(client, auth, FIRING)["alerts"][0]
    second = deliver(client, auth, FIRING)["alerts"][0]
    assert second["id"] == first["id"]
    assert second["received_count"] == 2
    assert second["last_received_at"] >= first["last_received_at"]
    assert (second["remediation"], second["action_id"]) == ("queued", first["action_id"])
    assert Alert.select().count() == 1
    assert Action.select().count() == 1


def test_resolved_delivery_updates_the_same_row(client, auth, web1):
    firing = deliver(client, auth, FIRING)["alerts"][0]
    resolved = deliver(client, auth, RESOLVED)["alerts"][0]
    assert resolved["id"] == firing["id"]
    assert resolved["status"] == "resolved"
    assert resolved["ends_at"] == "2026-11-22T03:18:51.870Z"
    assert resolved["action_id"] == firing["action_id"]
    assert Alert.select().count() == 1 and Action.select().count() == 1
    events = client.get("/api/v1/events?server_id=web-1", headers=auth.viewer).json["events"]
    types = [e["type"] for e in events]
    assert types.index("alert_resolved") < types.index("alert_firing")


def test_late_firing_redelivery_does_not_reopen_a_resolved_alert(client, auth, web1):
    deliver(client, auth, FIRING)
    deliver(client, auth, RESOLVED)
    late = deliver(client, auth, FIRING)["alerts"][0]
    assert (late["status"], late["received_count"]) == ("resolved", 3)


def test_resolved_alert_alone_is_recorded_and_queues_nothing(client, auth, web1):
    alert = deliver(client, auth, RESOLVED)["alerts"][0]
    assert alert["status"] == "resolved"
    assert alert["remediation"] is None and alert["action_id"] is None
    assert Action.select().count() == 0


def test_paused_server_gets_a_pending_action(client, auth, web1):
    client.put("/api/v1/servers/web-1/pause", headers=auth.operator)
    alert = deliver(client, auth, FIRING)["alerts"][0]
    action = client.get(f"/api/v1/actions/{alert['action_id']}", headers=auth.viewer).json
    assert (action["status"], action["approved_by"]) == ("pending", None)
    assert "waiting for approval" in alert["remediation_detail"]


def test_an_approved_action_wakes_the_dispatcher_a_pending_one_does_not(app, client, auth, web1):
    woken = []

    def listener(_sender):
        woken.append(1)

    wakeup.action_approved.connect(listener)
    try:
        client.put("/api/v1/servers/web-1/pause", headers=auth.operator)
        deliver(client, auth, FIRING)
        assert woken == []
        client.put("/api/v1/servers/web-1/unpause", headers=auth.operator)
        deliver(client, auth, FIRING, labels={"name": "redis.service"}, fingerprint="aa01")
        assert woken == [1]
    finally:
        wakeup.action_approved.disconnect(listener)


def test_flapping_alert_while_its_action_is_open_is_a_recorded_duplicate(client, auth, web1):
    first = deliver(client, auth, FIRING)["alerts"][0]
    deliver(client, auth, RESOLVED)
    again = deliver(client, auth, FIRING, startsAt="2026-11-22T03:25:07Z")["alerts"][0]
    assert again["id"] != first["id"]
    assert again["remediation"] == "duplicate"
    assert again["action_id"] == first["action_id"]
    assert "already exists" in again["remediation_detail"]
    assert Action.select().count() == 1


def test_status_label_is_not_the_alert_status(client, auth, web1):
    deliver(client, auth, FIRING)
    firing = client.get("/api/v1/alerts?status=firing", headers=auth.viewer).json
    assert firing["total"] == 1
    assert firing["alerts"][0]["labels"]["status"] == "online"
    assert client.get("/api/v1/alerts?status=resolved", headers=auth.viewer).json["total"] == 0
    assert client.get("/api/v1/alerts?status=online", headers=auth.viewer).status_code == 422


def test_unknown_server_is_refused_on_the_alert_not_a_500(client, auth):
    alert = deliver(client, auth, FIRING)["alerts"][0]
    assert alert["remediation"] == "refused"
    assert alert["remediation_detail"] == "Server 'web-1' not found"
    assert alert["action_id"] is None and Action.select().count() == 0


def test_alert_without_server_id_label_is_refused(client, auth, web1):
    payload = copy.deepcopy(FIRING)
    del payload["alerts"][0]["labels"]["server_id"]
    response = client.post(URL, json=payload, headers=auth.operator)
    alert = response.json["alerts"][0]
    assert (alert["server_id"], alert["remediation"]) == (None, "refused")
    assert alert["remediation_detail"] == "the alert has no server_id label"


@pytest.mark.parametrize("server_id", ["web-1\x00", "WEB-1", "web 1", "x" * 101, ""])
def test_malformed_server_id_label_is_kept_in_labels_and_refused(client, auth, web1, server_id):
    alert = deliver(client, auth, FIRING, labels={"server_id": server_id})["alerts"][0]
    assert alert["server_id"] is None
    assert alert["labels"]["server_id"] == server_id
    assert alert["remediation"] == "refused"
    assert Action.select().count() == 0


def test_alert_missing_a_label_the_rule_needs_is_refused(client, auth, web1):
    payload = copy.deepcopy(FIRING)
    del payload["alerts"][0]["labels"]["name"]
    alert = client.post(URL, json=payload, headers=auth.operator).json["alerts"][0]
    assert alert["remediation"] == "refused"
    assert alert["remediation_detail"] == "the alert has no label 'name'"


@pytest.mark.parametrize(
    "name", ["x; touch PWNED", "$(touch PWNED)", "nginx.service\n", "-rf", "a b", "\uff4eginx"]
)
def test_label_value_failing_the_whitelist_queues_nothing(client, auth, web1, name):
    alert = deliver(client, auth, FIRING, labels={"name": name})["alerts"][0]
    assert alert["remediation"] == "refused"
    assert "parameters.service_name" in alert["remediation_detail"]
    assert Action.select().count() == 0
    assert AuditEntry.select().count() == 0  # nothing was even attempted


def test_alert_matching_no_rule_is_stored_without_remediation(client, auth, web1):
    labels = {"alertname": "HighCpuSustained", "name": "ignored"}
    alert = deliver(client, auth, FIRING, labels=labels, fingerprint="beef")["alerts"][0]
    assert alert["alertname"] == "HighCpuSustained"
    assert (alert["remediation"], alert["remediation_rule"], alert["action_id"]) == (
        None,
        None,
        None,
    )
    assert Action.select().count() == 0


def test_rule_match_labels_select_which_alerts_remediate(client, auth, web1):
    full = {"alertname": "FilesystemAlmostFull", "mountpoint": "/home"}
    home = deliver(client, auth, FIRING, labels=full, fingerprint="f1")["alerts"][0]
    assert home["remediation"] is None
    full["mountpoint"] = "/var/log"
    logs = deliver(client, auth, FIRING, labels=full, fingerprint="f2")["alerts"][0]
    assert (logs["remediation"], logs["remediation_rule"]) == ("queued", "vacuum_journal")
    assert Action.get_by_id(logs["action_id"]).action_type == "clear_logs"


def test_still_firing_alert_is_retried_only_after_its_action_finished_long_enough_ago(
    app, client, auth, web1
):
    alert = deliver(client, auth, FIRING)["alerts"][0]
    ctx = context.of(app)
    first = Action.get_by_id(alert["action_id"])

    def redeliver(now):
        item = {
            "status": "firing",
            "labels": FIRING["alerts"][0]["labels"],
            "annotations": {},
            "starts_at": dt.datetime(2026, 11, 22, 3, 15, 52),
            "ends_at": None,
            "fingerprint": FIRING["alerts"][0]["fingerprint"],
        }
        return alerts.receive([item], ctx.remediation_rules, ctx.remediation.whitelist, now)

    Action.update(status=ActionStatus.COMPLETED).where(Action.id == first.id).execute()
    redeliver(first.created_at + dt.timedelta(minutes=5))  # regrouping resend: too soon
    assert Action.select().count() == 1
    received = redeliver(first.created_at + alerts.RETRY_AFTER)  # Alertmanager's repeat
    assert received.queued_approved
    assert Action.select().count() == 2
    second = received.alerts[0].action_id
    assert second != first.id and Action.get_by_id(second).alert_id == alert["id"]
    Action.update(status=ActionStatus.REJECTED).where(Action.id == second).execute()
    redeliver(utcnow() + 10 * alerts.RETRY_AFTER)  # an operator said no: never again
    assert Action.select().count() == 2


def test_list_filters_and_paginates(client, auth, web1):
    deliver(client, auth, FIRING)
    deliver(client, auth, FIRING, labels={"alertname": "HighCpuSustained"}, fingerprint="b1")
    other = {"server_id": "db-1", "alertname": "HighCpuSustained"}
    deliver(client, auth, FIRING, labels=other, fingerprint="b2")
    deliver(client, auth, RESOLVED, fingerprint="b3")

    def ids(query):
        body = client.get(f"/api/v1/alerts?{query}", headers=auth.viewer).json
        return body["total"], [a["fingerprint"] for a in body["alerts"]]

    assert ids("") == (4, ["b3", "b2", "b1", "ce6917767867ff67"])
    assert ids("alertname=HighCpuSustained") == (2, ["b2", "b1"])
    assert ids("server_id=db-1") == (1, ["b2"])
    assert ids("status=resolved") == (1, ["b3"])
    assert ids("limit=2&offset=1") == (4, ["b2", "b1"])
    page = client.get("/api/v1/alerts?limit=2&offset=1", headers=auth.viewer).json
    assert (page["limit"], page["offset"]) == (2, 1)


def test_get_alert_by_id_and_404(client, auth, web1):
    alert = deliver(client, auth, FIRING)["alerts"][0]
    assert client.get(f"/api/v1/alerts/{alert['id']}", headers=auth.viewer).json == alert
    for alert_id in (999999, 2**64):
        missing = client.get(f"/api/v1/alerts/{alert_id}", headers=auth.viewer)
        assert (missing.status_code, missing.json["code"]) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.pop("alerts"), "alerts"),
        (lambda p: p["alerts"][0]["labels"].pop("alertname"), "alerts"),
        (lambda p: p["alerts"][0].update(fingerprint="NOT HEX"), "alerts"),
        (lambda p: p["alerts"][0].update(status="online"), "alerts"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts"),
        (lambda p: p["alerts"][0].update(startsAt="0001-01-01T00:00:00+05:00"), "alerts"),
        (lambda p: p["alerts"][0].update(endsAt="9999-12-31T23:59:59-05:00"), "alerts"),
        (lambda p: p["alerts"][0]["labels"].update({"name": 7}), "alerts"),
        (lambda p: p["alerts"][0]["labels"].update(alertname="Down\x00"), "alerts"),
        (lambda p: p["alerts"][0].update(generatorURL="http://x/\x00"), "alerts"),
    ],
)
def test_malformed_payloads_are_422_and_store_nothing(client, auth, web1, change, field):
    payload = copy.deepcopy(FIRING)
    change(payload)
    response = client.post(URL, json=payload, headers=auth.operator)
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]
    assert Alert.select().count() == 0


def test_unknown_payload_fields_are_ignored(client, auth, web1):
    payload = copy.deepcopy(FIRING)
    payload["newInAlertmanager2030"] = True
    payload["alerts"][0]["silencedBy"] = []
    assert client.post(URL, json=payload, headers=auth.operator).status_code == 200


def test_webhook_takes_the_operator_key_as_bearer_and_refuses_a_viewer(client, auth, web1):
    viewer = client.post(URL, json=FIRING, headers=auth.bearer(auth.viewer_key))
    assert viewer.status_code == 403
    assert client.post(URL, json=FIRING).status_code == 401
    assert client.post(URL, json=FIRING, headers=auth.bearer(auth.operator_key)).status_code == 200


def test_alerts_received_are_counted_in_metrics(client, auth, web1):
    deliver(client, auth, FIRING)
    deliver(client, auth, FIRING)
    deliver(client, auth, RESOLVED)
    text = client.get("/metrics").data.decode()
    assert 'homelab_alerts_received_total{status="firing"} 2.0' in text
    assert 'homelab_alerts_received_total{status="resolved"} 1.0' in text


@pytest.mark.integration
def test_alert_action_really_runs_on_the_server(app, client, auth, sshd, tmp_path):
    """Webhook → rule → action → dispatcher → SSH: the marker the command leaves appears."""
    body = {"id": "web-1", "hostname": "web-1", "ip_address": sshd.host, "ssh_port": sshd.port}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    ctx = context.of(app)
    scheduler = ControlScheduler(ctx.settings, remediation=ctx.remediation)
    scheduler.start()
    try:
        alert = deliver(client, auth, FIRING)["alerts"][0]

        def finished():
            action = Action.get_by_id(alert["action_id"])
            return action if action.status in {"completed", "failed"} else None

        action = wait_until(finished, timeout=30)
    finally:
        scheduler.shutdown()
    assert (action.status, action.exit_code) == ("completed", 0), action.failure_reason
    assert (tmp_path / "remote" / "restarted-nginx.service").exists()
