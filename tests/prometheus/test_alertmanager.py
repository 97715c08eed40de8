"""alertmanager.yml: valid for the real amtool, and the real Alertmanager delivers to control's
webhook with the operator key, firing and resolved, with critical inhibiting warning.

`fixtures/alertmanager/{firing,resolved}.json` are payloads recorded from the real Alertmanager
with this config (for control's webhook tests); the live test checks they keep its shape."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.helpers import wait_until
from tests.prometheus.files import ALERTMANAGER_YML, FIXTURES, load_yaml, run
from tests.prometheus.harness import Alertmanager, FakeControl, alertmanager_config

OPERATOR_KEY = "am-operator-key"


def test_amtool_check_config_accepts_alertmanager_yml(amtool):
    result = run([amtool, "check-config", str(ALERTMANAGER_YML)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config_rejects_a_route_to_a_missing_receiver(amtool, tmp_path):
    """The check can fail."""
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(
        ALERTMANAGER_YML.read_text().replace("receiver: homelab-control", "receiver: nobody", 1)
    )
    assert run([amtool, "check-config", str(broken)]).returncode != 0


def test_every_alert_goes_to_controls_webhook_with_resolved_notifications():
    config = load_yaml(ALERTMANAGER_YML)
    receivers = {r["name"]: r for r in config["receivers"]}
    (hook,) = receivers[config["route"]["receiver"]]["webhook_configs"]
    assert hook["url"] == "http://control:8000/api/v1/alerts/alertmanager"
    assert hook["send_resolved"] is True
    auth = hook["http_config"]["authorization"]
    assert auth.get("type", "Bearer") == "Bearer"
    assert auth["credentials_file"].startswith("/")
    assert "credentials" not in auth
    assert {"alertname", "server_id"} <= set(config["route"]["group_by"])


def _alert(alertname: str, ends: dt.datetime | None = None, **labels: str) -> dict:
    now = dt.datetime.now(dt.UTC)
    alert = {
        "labels": {"alertname": alertname, "job": "homelab-agents", **labels},
        "annotations": {
            "summary": f"{alertname} summary",
            "description": f"{alertname} description",
        },
        "startsAt": (now - dt.timedelta(minutes=5)).isoformat(),
        "generatorURL": "http://prometheus:9090/graph",
    }
    if ends:
        alert["endsAt"] = ends.isoformat()
    return alert


@pytest.fixture
def live(alertmanager_bin, tmp_path):
    """A real Alertmanager with the repo's config (fast timers) and a fake control webhook."""
    control = FakeControl(operator_key=OPERATOR_KEY).start()
    config = alertmanager_config(
        tmp_path, control=control.address, alerts_key=OPERATOR_KEY, fast=True
    )
    am = Alertmanager(alertmanager_bin, config, tmp_path)
    yield am, control
    am.stop()
    control.stop()


@pytest.mark.integration
def test_alertmanager_posts_firing_then_resolved_v4_payload_with_operator_bearer(live):
    am, control = live
    labels = {"server_id": "web-1", "name": "nginx.service", "severity": "warning"}
    am.post_alerts([_alert("SystemdServiceFailed", **labels)])
    wait_until(lambda: control.webhooks)
    first = control.webhooks[0]
    assert first["authorization"] == f"Bearer {OPERATOR_KEY}"
    payload = first["payload"]
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    (alert,) = payload["alerts"]
    assert alert["labels"]["alertname"] == "SystemdServiceFailed"
    assert alert["labels"]["name"] == "nginx.service"
    assert alert["labels"]["server_id"] == "web-1"
    assert alert["fingerprint"]
    assert payload["groupLabels"] == {"alertname": "SystemdServiceFailed", "server_id": "web-1"}
    recorded = json.loads((FIXTURES / "alertmanager" / "firing.json").read_text())
    assert payload.keys() == recorded.keys()
    assert alert.keys() == recorded["alerts"][0].keys()

    ended = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    am.post_alerts([_alert("SystemdServiceFailed", ends=ended, **labels)])
    resolved = wait_until(
        lambda: [w for w in control.webhooks if w["payload"]["status"] == "resolved"]
    )
    (alert_resolved,) = resolved[0]["payload"]["alerts"]
    assert alert_resolved["fingerprint"] == alert["fingerprint"]
    assert alert_resolved["status"] == "resolved"
    recorded = json.loads((FIXTURES / "alertmanager" / "resolved.json").read_text())
    assert resolved[0]["payload"].keys() == recorded.keys()
    assert (
        recorded["alerts"][0]["fingerprint"]
        == json.loads((FIXTURES / "alertmanager" / "firing.json").read_text())["alerts"][0][
            "fingerprint"
        ]
    )


@pytest.mark.integration
def test_critical_filesystem_alert_inhibits_the_warning_for_the_same_mount(live):
    am, _ = live
    labels = {"server_id": "web-1", "mountpoint": "/", "device": "/dev/sda1"}
    am.post_alerts(
        [
            _alert("FilesystemAlmostFull", severity="critical", **labels),
            _alert("FilesystemAlmostFull", severity="warning", **labels),
            _alert(
                "FilesystemAlmostFull",
                severity="warning",
                server_id="web-1",
                mountpoint="/srv",
                device="/dev/sdb1",
            ),
        ]
    )

    def states():
        alerts = am.alerts()
        found = {
            (a["labels"]["mountpoint"], a["labels"]["severity"]): a["status"]["state"]
            for a in alerts
        }
        return found if len(found) == 3 and "unprocessed" not in found.values() else None

    def inhibited():
        found = states()
        return found if found and found[("/", "warning")] == "suppressed" else None

    assert wait_until(inhibited) == {
        ("/", "critical"): "active",
        ("/", "warning"): "suppressed",
        ("/srv", "warning"): "active",
    }
