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


# Issue 16's /proc collectors (family-name prefixes as the parser names them, _total cut).
ISSUE_16_PREFIXES = (
    "node_netstat_", "node_sockstat_", "node_vmstat_", "node_timex_", "node_nf_conntrack_",
    "node_pressure_", "node_softnet_", "node_arp_", "node_entropy_", "node_filefd_",
    "node_udp_queues",
)  # fmt: skip
# Newer than the node_exporter 1.5 on the CI box: exported by node_exporter 1.8+.
NEWER_THAN_1_5 = {"node_pressure_irq_stalled_seconds"}


def test_issue_16_collectors_export_every_family_node_exporter_does(both):
    """Same box, same moment: every family of these collectors on both sides (type, HELP and
    labels are checked by the shared-metrics test above)."""
    agent, node = both

    def names(families):
        return {name for name in families if name.startswith(ISSUE_16_PREFIXES)}

    assert len(names(node)) >= 80, sorted(names(node))
    assert names(node) - names(agent) == set()
    assert names(agent) - names(node) <= NEWER_THAN_1_5


def test_issue_16_values_that_do_not_move_are_identical(both):
    agent, node = both
    steady = [
        "node_filefd_maximum", "node_entropy_pool_size_bits", "node_netstat_Ip_Forwarding",
        "node_timex_tick_seconds", "node_timex_tai_offset_seconds",
        "node_timex_loop_time_constant",
    ]  # fmt: skip
    if "node_nf_conntrack_entries_limit" in node:
        steady.append("node_nf_conntrack_entries_limit")
    for name in steady:
        assert value(agent, name, name) == value(node, name, name), name
    cpus = {s.labels["cpu"] for s in node["node_softnet_processed"].samples}
    assert cpus == {s.labels["cpu"] for s in agent["node_softnet_processed"].samples}


# Issue 16's /sys collectors on this box. It has no sensors, RAID, bonds or EDAC, so hwmon,
# mdadm, bonding and edac are compared with node_exporter on the fixture trees instead
# (tests/agent/test_agent_collectors_hw.py).
NETCLASS_FAMILIES = (
    "node_network_up", "node_network_info", "node_network_address_assign_type",
    "node_network_carrier", "node_network_carrier_changes", "node_network_carrier_up_changes",
    "node_network_carrier_down_changes", "node_network_device_id", "node_network_dormant",
    "node_network_flags", "node_network_iface_id", "node_network_iface_link",
    "node_network_iface_link_mode", "node_network_mtu_bytes", "node_network_name_assign_type",
    "node_network_net_dev_group", "node_network_speed_bytes",
    "node_network_transmit_queue_length", "node_network_protocol_type",
)  # fmt: skip


def test_issue_16_netclass_series_are_identical(both):
    """Device facts do not move between two scrapes: every sample and value is the same."""
    agent, node = both

    def samples(families, name):
        return sorted((s.name, sorted(s.labels.items()), s.value) for s in families[name].samples)

    in_node = [name for name in NETCLASS_FAMILIES if name in node]
    assert {"node_network_up", "node_network_info", "node_network_mtu_bytes"} <= set(in_node)
    assert [name for name in NETCLASS_FAMILIES if name in agent] == in_node
    for name in in_node:
        assert samples(agent, name) == samples(node, name), name


def test_issue_16_scrape_metadata_and_textfile_error_under_node_exporters_names(both):
    agent, node = both
    for name in ("node_scrape_collector_duration_seconds", "node_scrape_collector_success"):
        assert {s.labels["collector"] for s in agent[name].samples} >= {"cpu", "netclass"}
    collectors = {s.labels["collector"] for s in agent["homelab_agent_collector_success"].samples}
    success = {s.labels["collector"] for s in agent["node_scrape_collector_success"].samples}
    assert success == collectors
    # Debian's node_exporter reads its empty /var/lib/prometheus/node-exporter; the agent no
    # directory (none configured): no file, no error on either side.
    assert value(agent, "node_textfile_scrape_error", "node_textfile_scrape_error") == 0
    assert value(node, "node_textfile_scrape_error", "node_textfile_scrape_error") == 0


def test_live_agent_output_passes_promtool(start_agent, node_exporter, promtool):
    """The only findings are names node_exporter itself trips and dashboards depend on: the
    camelCase meminfo and netstat names, and entropy counted in bits."""

    def findings(url):
        body = http_get(url + "/metrics")[2]
        result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
        return set((result.stdout + result.stderr).decode().splitlines())

    agent_findings = findings(start_agent().url)
    node_findings = findings(node_exporter.url)
    assert agent_findings, "promtool found nothing: is it really checking?"
    node_exporters_own = ("node_memory_", "node_netstat_", "node_entropy_")
    assert {f for f in agent_findings if not f.startswith(node_exporters_own)} == set()
    assert agent_findings <= node_findings
