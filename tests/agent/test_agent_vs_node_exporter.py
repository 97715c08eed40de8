"""The real agent next to the real Debian prometheus-node-exporter on this box.

Both run on 127.0.0.1 on free ports; values that do not move between two scrapes must be
equal, and every metric both export must have the same TYPE, HELP and label names.
"""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.agent.conftest import http_get

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict:
    """Parse a /metrics page into {family name: Metric}."""
    status, _, body = http_get(url + "/metrics")
    assert status == 200
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def value(families: dict, family: str, sample: str, **labels) -> float:
    matches = [
        s.value
        for s in families[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (sample, labels, matches)
    return matches[0]


@pytest.fixture
def both(start_agent, node_exporter):
    agent = start_agent()
    return scrape(agent.url), scrape(node_exporter.url)


def test_memory_total_is_identical(both):
    agent, node = both
    name = "node_memory_MemTotal_bytes"
    assert value(agent, name, name) == value(node, name, name)


def test_root_filesystem_size_is_identical(both):
    agent, node = both
    size = value(agent, "node_filesystem_size_bytes", "node_filesystem_size_bytes", mountpoint="/")
    assert size == value(
        node, "node_filesystem_size_bytes", "node_filesystem_size_bytes", mountpoint="/"
    )
    assert size > 0


def test_boot_time_agrees_within_a_second(both):
    agent, node = both
    name = "node_boot_time_seconds"
    assert abs(value(agent, name, name) - value(node, name, name)) <= 1


def test_cpu_label_sets_are_identical(both):
    agent, node = both

    def labels(families):
        return {(s.labels["cpu"], s.labels["mode"]) for s in families["node_cpu_seconds"].samples}

    assert labels(agent) == labels(node)
    assert labels(agent)


def test_shared_metrics_have_node_exporters_type_help_and_labels(both):
    agent, node = both
    shared = sorted(name for name in agent if name in node and name.startswith("node_"))
    assert len(shared) >= 60, shared
    for name in shared:
        assert agent[name].type == node[name].type, name
        assert agent[name].documentation == node[name].documentation, name
        agent_labels = {frozenset(s.labels) for s in agent[name].samples}
        node_labels = {frozenset(s.labels) for s in node[name].samples}
        assert agent_labels == node_labels, name


def test_issue_metrics_are_all_exported(both):
    agent, _ = both
    required = [
        "node_cpu_seconds", "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes",
        "node_memory_MemFree_bytes", "node_memory_Buffers_bytes", "node_memory_Cached_bytes",
        "node_memory_SwapTotal_bytes", "node_memory_SwapFree_bytes", "node_filesystem_size_bytes",
        "node_filesystem_avail_bytes", "node_filesystem_free_bytes", "node_filesystem_files",
        "node_filesystem_files_free", "node_filesystem_readonly", "node_disk_read_bytes",
        "node_disk_written_bytes", "node_disk_io_time_seconds", "node_network_receive_bytes",
        "node_network_transmit_bytes", "node_network_receive_packets",
        "node_network_transmit_packets", "node_network_receive_errs", "node_network_receive_drop",
        "node_load1", "node_load5", "node_load15", "node_boot_time_seconds", "node_time_seconds",
        "node_uname_info", "node_os_info", "homelab_agent_build_info",
        "homelab_agent_collector_success", "homelab_agent_collector_duration_seconds",
    ]  # fmt: skip
    assert [name for name in required if name not in agent] == []


def test_live_agent_output_passes_promtool(start_agent, node_exporter, promtool):
    """The only findings are the camelCase meminfo names that node_exporter itself trips."""

    def findings(url):
        body = http_get(url + "/metrics")[2]
        result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
        return set((result.stdout + result.stderr).decode().splitlines())

    agent_findings = findings(start_agent().url)
    node_findings = findings(node_exporter.url)
    assert agent_findings, "promtool found nothing: is it really checking?"
    assert {f for f in agent_findings if not f.startswith("node_memory_")} == set()
    assert agent_findings <= node_findings
