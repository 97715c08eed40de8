"""Fixtures for the Prometheus / Alertmanager / Grafana / compose files at the repo root.

Every check runs the real tool (promtool, prometheus, amtool, alertmanager, docker-compose):
locally a missing one skips its tests, in CI (`CI=true`) it fails them.
"""

from __future__ import annotations

import pytest

from tests.helpers import require_binary
from tests.prometheus.files import REPO


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool (Debian package `prometheus`)."""
    return require_binary("promtool", "promtool (Debian package prometheus)")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of the prometheus server (Debian package `prometheus`)."""
    return require_binary("prometheus", "prometheus (Debian package prometheus)")


@pytest.fixture(scope="session")
def amtool() -> str:
    """Path of amtool (Debian package `prometheus-alertmanager`)."""
    return require_binary("amtool", "amtool (Debian package prometheus-alertmanager)")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    """Path of Alertmanager (Debian names it `prometheus-alertmanager`)."""
    return require_binary(
        "prometheus-alertmanager", "Alertmanager (Debian package prometheus-alertmanager)"
    )


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Path of docker-compose (Debian package `docker-compose`; no daemon needed)."""
    return require_binary("docker-compose", "docker-compose (Debian package docker-compose)")


@pytest.fixture(scope="session")
def repo():
    """The repository root."""
    return REPO


# What control's http_sd gives a server: stable identity only (status, pause and display name
# are control's own series, see fixtures/control.prom).
AGENT_LABELS = {"server_id": "web-1", "hostname": "web-1", "tag_web": "true"}


@pytest.fixture(scope="session")
def live_stack(prometheus_bin, tmp_path_factory):
    """The real Prometheus with the repo's config and rules, 1 s intervals, scraping a fake
    control (its /metrics and http_sd) and one fake agent, warmed up until rates, rules and
    alerts have data."""
    from tests.helpers import wait_until
    from tests.prometheus.harness import FakeControl, Prometheus, prometheus_config

    tmp = tmp_path_factory.mktemp("prometheus")
    agent = FakeControl(metrics_fixture="agent.prom").start()
    control = FakeControl(viewer_key="live-viewer-key").start()
    control.targets = [{"targets": [agent.address], "labels": AGENT_LABELS}]
    config = prometheus_config(
        tmp, control=control.address, viewer_key=control.viewer_key, interval="1s"
    )
    prom = Prometheus(prometheus_bin, config, tmp)

    def has(expr: str) -> bool:
        response = prom.query(expr)
        return response.status_code == 200 and bool(response.json()["data"]["result"])

    def rules_evaluated() -> bool:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        return bool(rules) and all(r["health"] != "unknown" for r in rules)

    try:
        wait_until(lambda: has('count(rate(node_cpu_seconds_total{job="homelab-agents"}[1m]))'))
        wait_until(
            lambda: has('rate(homelab_heartbeats_received_total{job="homelab-control"}[1m])')
        )
        wait_until(rules_evaluated)
        wait_until(lambda: has('ALERTS{alertname="SystemdServiceFailed"}'))
        wait_until(lambda: has('ALERTS{alertname="ServerHealthFailed"}'))
        yield prom, control, agent
    finally:
        prom.stop()
        agent.stop()
        control.stop()
