"""The recorded agent exposition that the live Prometheus tests scrape has the real agent's
metric names, types and label names, so dashboard and rule checks against it hold for the agent."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port, wait_until
from tests.prometheus.files import REPO
from tests.prometheus.harness import render_exposition

pytestmark = pytest.mark.integration

# Present only where the machine has sensors / the operator lists systemd units / a container
# engine socket answers (with containers, with healthchecks, with an engine that counts
# restarts) / apt or dnf is installed and its first background check has finished.
ENVIRONMENT_DEPENDENT = {
    "node_hwmon_temp_celsius",
    "node_thermal_zone_temp",
    "node_systemd_unit_state",
    "homelab_agent_container_state",
    "homelab_agent_container_health",
    "homelab_agent_container_failed",
    "homelab_agent_container_exit_code",
    "homelab_agent_container_restarts",  # the counter family of ..._restarts_total
    "apt_upgrades_pending",
    "node_reboot_required",
    "homelab_agent_packages_check_success",
    "homelab_agent_packages_last_check_timestamp_seconds",
}


def _families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """family name → (type, label names of its samples)."""
    out = {}
    for family in text_string_to_metric_families(text):
        labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
        out[family.name] = (family.type, labels)
    return out


@pytest.fixture(scope="module")
def real_agent_exposition(tmp_path_factory) -> str:
    """/metrics of the real `homelab-agent` on this machine (its control is unreachable)."""
    port = free_port()
    log = tmp_path_factory.mktemp("agent") / "agent.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter_agent",
                "--control-url",
                "http://127.0.0.1:9",
                "--api-key",
                "unused",
                "--server-id",
                "fixture-check",
                "--listen-address",
                "127.0.0.1",
                "--listen-port",
                str(port),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def scrape() -> str | None:
        if proc.poll() is not None:
            pytest.fail(f"homelab-agent exited:\n{log.read_text()}")
        try:
            response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        except requests.ConnectionError:
            return None
        return response.text if response.status_code == 200 else None

    try:
        yield wait_until(scrape, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_fixture_metrics_are_what_the_real_agent_exports(real_agent_exposition):
    fixture = _families(render_exposition("agent.prom", 1))
    real = _families(real_agent_exposition)
    assert set(fixture) - set(real) <= ENVIRONMENT_DEPENDENT
    mismatched = {
        name: (shape, real[name])
        for name, shape in fixture.items()
        if name in real
        and (real[name][1] or name not in ENVIRONMENT_DEPENDENT)
        and shape != real[name]
    }
    assert mismatched == {}
