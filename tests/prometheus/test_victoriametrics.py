"""Past one Prometheus (docs/scale.md): a real `homelab-control serve`, the real Prometheus
scraping it with the repo's config, and `remote_write` into a real VictoriaMetrics (Debian
package `victoria-metrics`); the homelab metrics are then queried back from VictoriaMetrics'
own Prometheus-compatible API, the URL Grafana's datasource points at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import free_port, heartbeat, require_binary, wait_until
from tests.live import LiveControl
from tests.prometheus.harness import Process, Prometheus, prometheus_config

pytestmark = pytest.mark.integration

OPERATOR_KEY = "vm-operator-key"
VIEWER_KEY = "vm-viewer-key"


class VictoriaMetrics(Process):
    """Single-node VictoriaMetrics with its own storage directory."""

    ready_path = "/health"

    def __init__(self, binary: str, tmp: Path) -> None:
        port = free_port()
        super().__init__(
            [
                binary,
                f"-storageDataPath={tmp / 'vm-data'}",
                f"-httpListenAddr=127.0.0.1:{port}",
                # By default the newest 30 s are hidden from queries (samples still arriving);
                # the test reads back what was written a second ago.
                "-search.latencyOffset=1s",
            ],
            port,
            tmp / "victoria-metrics.log",
        )

    def query(self, expr: str) -> list[dict]:
        """An instant PromQL query through VictoriaMetrics' /api/v1/query; the result vector."""
        response = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        response.raise_for_status()
        return response.json()["data"]["result"]


@pytest.fixture(scope="module")
def victoria_metrics_bin() -> str:
    """Path of the VictoriaMetrics server (Debian package `victoria-metrics`)."""
    return require_binary("victoria-metrics", "VictoriaMetrics (Debian package victoria-metrics)")


def with_remote_write(config: Path, url: str) -> Path:
    """Add the `remote_write` block of docs/scale.md to a Prometheus config, sending each
    batch within a second (the default waits up to 5 s)."""
    document = yaml.safe_load(config.read_text())
    document["remote_write"] = [{"url": url, "queue_config": {"batch_send_deadline": "1s"}}]
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    return config


def test_prometheus_remote_writes_homelab_metrics_into_victoriametrics(
    prometheus_bin, victoria_metrics_bin, tmp_path
):
    vm = VictoriaMetrics(victoria_metrics_bin, tmp_path)
    control = LiveControl(tmp_path / "control", operator_key=OPERATOR_KEY, viewer_key=VIEWER_KEY)
    control.start()
    prom = None
    try:
        registered = requests.post(
            control.url + "/api/v1/agents/heartbeat",
            json=heartbeat("vm-box"),
            headers={"X-API-Key": OPERATOR_KEY},
            timeout=10,
        )
        assert registered.status_code == 200
        config = prometheus_config(
            tmp_path, control=f"127.0.0.1:{control.port}", viewer_key=VIEWER_KEY, interval="1s"
        )
        with_remote_write(config, f"{vm.url}/api/v1/write")
        prom = Prometheus(prometheus_bin, config, tmp_path)

        online = 'homelab_servers{job="homelab-control", status="online"}'
        result = wait_until(lambda: vm.query(online), timeout=60, interval=0.5)
        assert [float(sample["value"][1]) for sample in result] == [1.0]
        # Written by Prometheus (its external label), not scraped by VictoriaMetrics itself.
        assert result[0]["metric"]["monitor"] == "homelabcmd"
        box = wait_until(
            lambda: vm.query('homelab_server_status{server_id="vm-box", status="online"}'),
            timeout=60,
        )
        assert [float(sample["value"][1]) for sample in box] == [1.0]
    finally:
        if prom:
            prom.stop()
        control.stop()
        vm.stop()
