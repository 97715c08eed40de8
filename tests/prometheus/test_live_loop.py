"""The whole loop with real processes only: `homelab-control serve`, a real `homelab-agent`
heartbeating to it, the real Prometheus discovering that agent through control's http_sd (viewer
key from a credentials file), and the real Alertmanager posting to control's webhook (alerts
key from a credentials file).

A probe rule (`LiveLoopProbe`, firing while the agent is up) stands in for a real incident: it
travels Prometheus → Alertmanager → control's webhook → a remediation rule → an action → the
dispatcher → SSH, which is refused (the server's ssh_port is closed), so the action fails and its
duration lands in `homelab_command_duration_seconds`. Then every dashboard expression runs
against this stack.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest
import requests
import yaml

from tests.agent.conftest import Proc, agent_env
from tests.helpers import free_port, wait_until
from tests.live import LiveControl
from tests.prometheus.files import substitute
from tests.prometheus.harness import (
    Alertmanager,
    Prometheus,
    alertmanager_config,
    prometheus_config,
)
from tests.prometheus.test_dashboard_queries import _queries, _query_ids, _resolve, _variables

pytestmark = pytest.mark.integration

SERVER_ID = "live-box"
PROBE_RULES = {
    "groups": [
        {
            "name": "live-loop-probe",
            "rules": [
                {
                    "alert": "LiveLoopProbe",
                    "expr": 'up{job="homelab-agents"} == 1',
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": "probe for {{ $labels.server_id }}"},
                }
            ],
        }
    ]
}
COMMANDS = """
[remediation.probe_restart]
alertname = "LiveLoopProbe"
action_type = "restart_service"
parameters = { service_name = "probe-{labels.server_id}.service" }
"""

# Series the agent cannot produce on every machine. An expression reading one of these must
# still parse; it must return data only when this machine's agent exports the metric, which the
# test checks against the agent's own /metrics, so on a box with sensors or watched units the
# exception does not apply.
MACHINE_DEPENDENT = {
    "node_hwmon_temp_celsius": "needs /sys/class/hwmon sensors (none in a container or VM)",
    "node_thermal_zone_temp": "needs /sys/class/thermal zones (none in a container or VM)",
    "node_systemd_unit_state": "needs --collector.systemd.units and a running systemd",
    "homelab_agent_container_state": "needs a Docker or Podman socket with containers",
    "homelab_agent_container_failed": "needs a Docker or Podman socket with containers",
    "homelab_agent_container_health": "needs a container with a healthcheck",
    "homelab_agent_container_exit_code": "needs a container whose exit code the engine reports",
    "homelab_agent_container_restarts_total": "needs an engine that counts restarts (Podman)",
    "apt_upgrades_pending": "needs apt-get and a finished package check",
    "node_reboot_required": "needs apt-get or dnf and a finished package check",
    "homelab_agent_packages_last_check_timestamp_seconds": "needs apt-get or dnf",
}


class Stack:
    """Handles on the running processes and the keys."""

    def __init__(self, tmp, keys):
        self.tmp = tmp
        self.keys = keys
        self.control: LiveControl | None = None
        self.agent: Proc | None = None
        self.prometheus: Prometheus | None = None
        self.alertmanager: Alertmanager | None = None

    def api(self, path: str, method: str = "GET", **kwargs) -> requests.Response:
        """Call control's API as operator."""
        headers = {"Authorization": f"Bearer {self.keys['operator']}"}
        return requests.request(
            method, f"{self.control.url}/api/v1{path}", headers=headers, timeout=10, **kwargs
        )

    def query(self, expr: str) -> list[dict]:
        """Instant query; the result vector (fails the test on a query error)."""
        response = self.prometheus.query(expr)
        assert response.status_code == 200, response.text
        return response.json()["data"]["result"]

    def has(self, expr: str) -> bool:
        """Whether the expression currently returns data."""
        response = self.prometheus.query(expr)
        return response.status_code == 200 and bool(response.json()["data"]["result"])

    def stop(self) -> None:
        """Stop whatever was started, newest first."""
        for part in (self.prometheus, self.alertmanager, self.agent):
            if part is not None:
                part.stop()
        if self.control is not None and self.control.process is not None:
            self.control.stop()


def _start_agent(stack: Stack) -> Proc:
    port = free_port()
    argv = [
        sys.executable, "-m", "exporter_agent", "--control-url", stack.control.url,
        "--server-id", SERVER_ID, "--listen-address", "127.0.0.1", "--listen-port", str(port),
        "--interval", "1", "--backoff-cap", "1",
    ]  # fmt: skip
    env = agent_env(HOMELAB_API_KEY=stack.keys["agent"])
    agent = Proc(argv, port, stack.tmp / "agent.log", env)
    agent.wait_ready()
    return agent


@pytest.fixture(scope="module")
def stack(prometheus_bin, alertmanager_bin, tmp_path_factory):
    """Control, agent, Alertmanager and Prometheus, warmed up until the loop has gone round."""
    tmp = tmp_path_factory.mktemp("live-loop")
    keys = {scope: secrets.token_urlsafe(24) for scope in ("operator", "agent", "viewer", "alerts")}
    (tmp / "commands.toml").write_text(COMMANDS)
    (tmp / "known_hosts").write_text("")
    live = Stack(tmp, keys)
    try:
        live.control = LiveControl(
            tmp / "control",
            operator_key=keys["operator"],
            agent_key=keys["agent"],
            viewer_key=keys["viewer"],
            alerts_key=keys["alerts"],
            commands_file=tmp / "commands.toml",
            ssh_known_hosts=tmp / "known_hosts",
            ssh_connect_timeout=2,
            offline_check_interval=1,
            electricity_price=0.3,
            currency="EUR",
        ).start()
        live.agent = _start_agent(live)
        wait_until(lambda: live.api(f"/servers/{SERVER_ID}").status_code == 200, timeout=30)
        # A TDP for the power dashboards, a tag for http_sd, and a closed SSH port so the
        # probe's action fails fast instead of reaching anything.
        changes = {"tdp_watts": 65, "tags": ["live"], "ssh_port": free_port(), "ssh_user": "nobody"}
        assert live.api(f"/servers/{SERVER_ID}", "PUT", json=changes).status_code == 200

        live.alertmanager = Alertmanager(
            alertmanager_bin,
            alertmanager_config(
                tmp, control=live.control.url.removeprefix("http://"),
                alerts_key=keys["alerts"], fast=True,
            ),
            tmp,
        )  # fmt: skip
        config = prometheus_config(
            tmp,
            control=live.control.url.removeprefix("http://"),
            viewer_key=keys["viewer"],
            alertmanager=f"127.0.0.1:{live.alertmanager.port}",
            interval="1s",
        )
        probe = tmp / "probe.yml"
        probe.write_text(yaml.safe_dump(PROBE_RULES))
        document = yaml.safe_load(config.read_text())
        document["rule_files"].append(str(probe))
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        live.prometheus = Prometheus(prometheus_bin, config, tmp)

        wait_until(lambda: live.has(f'node_load1{{server_id="{SERVER_ID}"}}'), timeout=60)
        wait_until(
            lambda: live.has('count(rate(node_cpu_seconds_total{job="homelab-agents"}[1m]))')
        )
        wait_until(lambda: live.has("rate(homelab_heartbeats_received_total[1m])"), timeout=60)
        wait_until(lambda: live.has("homelab_command_duration_seconds_count"), timeout=90)
        wait_until(lambda: live.has("increase(homelab_command_duration_seconds_count[24h])"))
        wait_until(lambda: live.has("homelab_scheduler_last_run_timestamp_seconds"))
        # What this machine's agent does export of the machine-dependent series (the package
        # check runs in the background) is in Prometheus before the dashboards are checked.
        wait_until(
            lambda: all(
                live.has(f'count({{__name__="{metric}"}})')
                for metric in MACHINE_DEPENDENT
                if _agent_exports(live, metric)
            )
        )
        yield live
    finally:
        live.stop()


def test_prometheus_discovers_the_real_agent_through_controls_http_sd(stack):
    targets = [
        t
        for t in stack.prometheus.api("targets")["activeTargets"]
        if t["labels"]["job"] == "homelab-agents"
    ]
    assert [t["labels"]["instance"] for t in targets] == [f"127.0.0.1:{stack.agent.port}"]
    assert targets[0]["health"] == "up"
    labels = targets[0]["labels"]
    assert {k: labels.get(k) for k in ("server_id", "tag_live")} == {
        "server_id": SERVER_ID,
        "tag_live": "true",
    }
    assert labels["hostname"]
    # Run-time state is never a target label (it would split every series at each change).
    assert not {"status", "is_paused", "display_name"} & labels.keys()


def test_servers_state_joins_the_agents_series_on_server_id(stack):
    """Control's state series and the agent's target share `server_id`: the rules' join works."""
    (online,) = stack.query('homelab_server_status{job="homelab-control", status="online"} == 1')
    assert online["metric"]["server_id"] == SERVER_ID
    joined = stack.query(
        'up{job="homelab-agents"} and on (server_id) homelab_server_paused{job="homelab-control"}'
    )
    assert [s["metric"]["server_id"] for s in joined] == [SERVER_ID]
    (paused,) = stack.query(f'homelab_server_paused{{server_id="{SERVER_ID}"}}')
    assert float(paused["value"][1]) == 0


def test_node_load1_has_data_for_the_discovered_server(stack):
    (sample,) = stack.query(f'node_load1{{server_id="{SERVER_ID}"}}')
    assert sample["metric"]["job"] == "homelab-agents"
    assert float(sample["value"][1]) >= 0


def test_control_exports_power_and_cost_for_the_server(stack):
    (watts,) = stack.query(f'homelab_server_power_watts{{server_id="{SERVER_ID}"}}')
    assert 0.4 * 65 <= float(watts["value"][1]) <= 65
    (cost,) = stack.query(f'homelab_server_cost_per_month{{server_id="{SERVER_ID}"}}')
    assert float(cost["value"][1]) > 0
    (price,) = stack.query("homelab_electricity_price")
    assert (price["metric"]["currency"], float(price["value"][1])) == ("EUR", 0.3)


def test_a_prometheus_alert_reaches_control_and_queues_a_remediation_action(stack):
    response = stack.api("/alerts?alertname=LiveLoopProbe")
    assert response.status_code == 200
    (alert,) = response.json()["alerts"]
    assert (alert["status"], alert["server_id"]) == ("firing", SERVER_ID)
    assert alert["labels"]["tag_live"] == "true"  # the http_sd labels, kept on the alert
    assert "status" not in alert["labels"]  # state is control's series, not a target label
    assert (alert["remediation"], alert["remediation_rule"]) == ("queued", "probe_restart")
    action = stack.api(f"/actions/{alert['action_id']}").json()
    assert (action["created_by"], action["alert_id"]) == ("alertmanager", alert["id"])
    assert action["command"] == f"systemctl restart -- probe-{SERVER_ID}.service"
    assert action["status"] == "failed"  # the SSH port is closed: refused, nothing ran
    received = stack.query("sum(homelab_alerts_received_total)")
    assert float(received[0]["value"][1]) >= 1


def test_template_variables_offer_the_live_server(stack):
    for _, variable in _variables():
        assert _resolve(stack.prometheus, variable) == [SERVER_ID]


def _agent_exports(stack, metric: str) -> bool:
    text = requests.get(f"http://127.0.0.1:{stack.agent.port}/metrics", timeout=10).text
    return re.search(rf"^{metric}[{{ ]", text, re.MULTILINE) is not None


@pytest.mark.parametrize(("name", "expr"), _queries(), ids=_query_ids())
def test_dashboard_query_returns_data_from_the_real_stack(stack, name, expr):
    values = {v["name"]: _resolve(stack.prometheus, v)[0] for n, v in _variables() if n == name}
    query = substitute(expr, values)
    result = stack.query(query)  # parses: a syntax error would be 400 bad_data
    dependent = [m for m in MACHINE_DEPENDENT if m in query]
    # A query may read either of two sources (hwmon or thermal zones): data once either is.
    if dependent and not any(_agent_exports(stack, m) for m in dependent):
        # Documented exception (see MACHINE_DEPENDENT): this box cannot have the series.
        assert result == [], f"{query} returned data although the agent lacks {dependent}"
        return
    assert result, f"no data for {query}"


def test_machine_dependent_exceptions_are_only_those_named(stack):
    """Every metric the dashboards read is either exported by the real agent or control, or is
    one of the documented machine-dependent exceptions: the list cannot silently grow."""
    unexplained = []
    for _, expr in _queries():
        for metric in set(re.findall(r"\b((?:node|homelab)_[A-Za-z0-9_]+)", expr)):
            if metric in MACHINE_DEPENDENT:
                continue
            if not stack.has(f'count({{__name__="{metric}"}})'):
                unexplained.append(metric)
    assert unexplained == []


def test_controls_metrics_pass_promtool_check_metrics(stack, promtool):
    body = requests.get(f"{stack.control.url}/metrics", timeout=10).content
    assert b"homelab_server_power_watts{" in body and b"homelab_alerts_received_total{" in body
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
