"""The repo's prometheus.yml and rules in the real Prometheus: discovery through control's
http_sd with the viewer key from a credentials file, the scheduler label fix, and rules that
evaluate cleanly and stay quiet on a healthy host."""

from __future__ import annotations

import pytest

from tests.prometheus.conftest import AGENT_LABELS
from tests.prometheus.files import alert_rules

pytestmark = pytest.mark.integration


def _result(prom, expr: str) -> list[dict]:
    response = prom.query(expr)
    assert response.status_code == 200, response.text
    return response.json()["data"]["result"]


def test_http_sd_is_called_with_the_viewer_key_from_the_credentials_file(live_stack):
    _, control, _ = live_stack
    assert control.sd_requests
    assert {r["authorization"] for r in control.sd_requests} == {f"Bearer {control.viewer_key}"}


def test_discovered_agent_is_scraped_with_controls_labels(live_stack):
    prom, _, agent = live_stack
    targets = [
        t for t in prom.api("targets")["activeTargets"] if t["labels"]["job"] == "homelab-agents"
    ]
    assert [t["labels"]["instance"] for t in targets] == [agent.address]
    assert targets[0]["health"] == "up"
    assert AGENT_LABELS.items() <= targets[0]["labels"].items()


def test_node_load1_has_data_for_the_discovered_server(live_stack):
    prom, _, _ = live_stack
    (sample,) = _result(prom, 'node_load1{server_id="web-1"}')
    assert float(sample["value"][1]) == pytest.approx(0.42)


def test_controls_server_state_joins_the_agents_series_on_server_id(live_stack):
    """The rules join the agent's `up` (server_id from http_sd) with control's state series
    (server_id a metric label): both sides carry the same server_id, and the join keeps the
    agent's own labels, so HostDown's labels are the target's."""
    prom, _, agent = live_stack
    (state,) = _result(prom, 'homelab_server_status{status="online"} == 1')
    assert state["metric"]["server_id"] == "web-1"
    assert state["metric"]["job"] == "homelab-control"
    assert not any(k.startswith("exported_") for k in state["metric"])
    joined = _result(
        prom,
        'up{job="homelab-agents"} and on (server_id) homelab_server_paused{job="homelab-control"}',
    )
    assert [s["metric"]["instance"] for s in joined] == [agent.address]
    assert joined[0]["metric"]["job"] == "homelab-agents"
    (info,) = _result(prom, "homelab_server_info")
    assert info["metric"]["display_name"] == "Web 1"


def test_control_scheduler_job_label_is_kept_as_scheduler_job(live_stack):
    prom, _, _ = live_stack
    series = _result(prom, "homelab_scheduler_last_run_timestamp_seconds")
    assert {s["metric"]["scheduler_job"] for s in series} == {"offline_check", "retention"}
    assert all(s["metric"]["job"] == "homelab-control" for s in series)
    assert not any("exported_job" in s["metric"] for s in series)


def test_every_rule_is_loaded_and_evaluates_without_error(live_stack):
    prom, _, _ = live_stack
    rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(r["alert"] for _, r in alert_rules())
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


def test_only_the_failed_unit_alerts_on_the_fixture_host(live_stack):
    """The fixture is healthy except nginx.service failed, so control judges web-1 failed:
    nothing else may be pending (temperatures, containers and the reboot flag are fine)."""
    prom, _, _ = live_stack
    alerts = sorted(_result(prom, "ALERTS"), key=lambda a: a["metric"]["alertname"])
    assert [(a["metric"]["alertname"], a["metric"].get("name")) for a in alerts] == [
        ("ServerHealthFailed", None),
        ("SystemdServiceFailed", "nginx.service"),
    ]
    judged, unit = (a["metric"] for a in alerts)
    assert (judged["server_id"], judged["severity"], judged["job"]) == (
        "web-1",
        "critical",
        "homelab-control",
    )
    assert (unit["server_id"], unit["severity"]) == ("web-1", "warning")
