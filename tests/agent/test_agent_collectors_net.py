"""The network-stack collectors (netstat, sockstat, conntrack, softnet, arp, udp_queues).

Each runs on the recorded Debian 12 snapshot in a fresh registry, and on a broken or missing
source, where it must fail alone (``homelab_agent_collector_success 0``) or export nothing
exactly where node_exporter exports nothing.
"""

from __future__ import annotations

import shutil

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter_agent.collectors import build_collectors
from exporter_agent.collectors.arp import ArpCollector
from exporter_agent.collectors.netstat import DEFAULT_FIELDS, NetstatCollector
from exporter_agent.collectors.sockstat import SockstatCollector
from exporter_agent.collectors.util import DeviceFilter
from exporter_agent.config import load_settings
from exporter_agent.exporter import AgentCollector, build_registry
from tests.agent.conftest import SNAPSHOT, snapshot_options

PROC = SNAPSHOT / "proc"


def registry_for(options, *names: str) -> CollectorRegistry:
    """A fresh registry running the named collectors on ``options``."""
    return build_registry(AgentCollector(build_collectors(names, options), "test"), False)


def success(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value("homelab_agent_collector_success", {"collector": name})


def proc_copy(tmp_path, *relative: str):
    """A procfs holding copies of the snapshot's files at ``relative`` (others missing)."""
    for path in relative:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROC / path, tmp_path / path)
    return snapshot_options(procfs=str(tmp_path))


def family_names(registry: CollectorRegistry, prefix: str) -> set[str]:
    return {m.name for m in registry.collect() if m.name.startswith(prefix)}


# --- netstat -------------------------------------------------------------------------------


def test_netstat_exports_node_exporters_default_fields_from_all_three_files(snapshot):
    registry = registry_for(snapshot, "netstat")
    get = registry.get_sample_value
    assert get("node_netstat_Tcp_CurrEstab") == 9
    assert get("node_netstat_Tcp_InSegs") == 8790
    assert get("node_netstat_Tcp_RetransSegs") == 6
    assert get("node_netstat_TcpExt_ListenDrops") == 2
    assert get("node_netstat_TcpExt_TCPTimeouts") == 4
    assert get("node_netstat_IpExt_InOctets") == 64352087
    assert get("node_netstat_Ip_Forwarding") == 1
    assert get("node_netstat_Icmp_InErrors") == 1
    assert get("node_netstat_Udp_NoPorts") == 19
    # /proc/net/snmp6 is split after the first "6": Ip6, Icmp6, Udp6, UdpLite6.
    assert get("node_netstat_Ip6_InOctets") == 22416
    assert get("node_netstat_Udp6_InDatagrams") == 28
    assert get("node_netstat_UdpLite6_InErrors") == 0
    # Outside the default field filter.
    assert get("node_netstat_Tcp_MaxConn") is None
    assert get("node_netstat_TcpExt_TW") is None
    assert get("node_netstat_Ip6_InReceives") is None


def test_netstat_families_are_untyped_with_node_exporters_help(snapshot):
    families = {f.name: f for f in NetstatCollector(snapshot.procfs).collect()}
    assert len(families) == 40
    tcp = families["node_netstat_Tcp_InSegs"]
    assert tcp.type == "unknown"  # prometheus_client's name for the text format's untyped
    assert tcp.documentation == "Statistic TcpInSegs."
    assert families["node_netstat_Ip6_InOctets"].documentation == "Statistic Ip6InOctets."


def test_netstat_fields_flag_widens_the_filter(snapshot):
    settings = load_settings(["--collector.netstat.fields", "^Tcp_.*$"], env={})
    options = snapshot_options(values=dict(settings.collector_options.values))
    registry = registry_for(options, "netstat")
    assert registry.get_sample_value("node_netstat_Tcp_MaxConn") == -1
    assert registry.get_sample_value("node_netstat_Udp_NoPorts") is None


def test_netstat_default_filter_is_node_exporter_1_5s():
    assert DEFAULT_FIELDS == (
        "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
        "|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)"
        "|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
        "|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
    )


def test_netstat_without_snmp6_still_reports_ipv4(tmp_path):
    """IPv6 disabled (no /proc/net/snmp6): node_exporter exports the rest, so do we."""
    registry = registry_for(proc_copy(tmp_path, "net/netstat", "net/snmp"), "netstat")
    assert success(registry, "netstat") == 1
    assert registry.get_sample_value("node_netstat_Tcp_InSegs") == 8790
    assert family_names(registry, "node_netstat_Ip6_") == set()


@pytest.mark.parametrize("missing", ["net/netstat", "net/snmp"])
def test_netstat_fails_alone_without_netstat_or_snmp(tmp_path, missing):
    kept = [p for p in ("net/netstat", "net/snmp", "net/snmp6", "loadavg") if p != missing]
    registry = registry_for(proc_copy(tmp_path, *kept), "netstat", "loadavg")
    assert success(registry, "netstat") == 0
    assert success(registry, "loadavg") == 1
    assert family_names(registry, "node_netstat_") == set()


def test_netstat_header_and_values_of_different_length_fail(tmp_path):
    options = proc_copy(tmp_path, "net/snmp")
    (tmp_path / "net" / "netstat").write_text("TcpExt: SyncookiesSent ListenDrops\nTcpExt: 0\n")
    assert success(registry_for(options, "netstat"), "netstat") == 0


# --- sockstat ------------------------------------------------------------------------------


def test_sockstat_counts_and_pages_to_bytes(snapshot):
    registry = registry_for(snapshot_options(page_size=4096), "sockstat")
    get = registry.get_sample_value
    assert get("node_sockstat_sockets_used") == 142
    assert get("node_sockstat_TCP_inuse") == 7
    assert get("node_sockstat_TCP_tw") == 3
    assert get("node_sockstat_TCP_alloc") == 11
    assert get("node_sockstat_TCP_mem") == 2
    assert get("node_sockstat_TCP_mem_bytes") == 2 * 4096
    assert get("node_sockstat_UDP_mem_bytes") == 4 * 4096
    assert get("node_sockstat_FRAG_memory") == 0
    assert get("node_sockstat_TCP6_inuse") == 4
    assert get("node_sockstat_RAW6_inuse") == 1
    assert get("node_sockstat_FRAG6_memory") == 0
    # mem_bytes only where the kernel gives mem (in pages), never for FRAG's memory (bytes).
    assert get("node_sockstat_FRAG_memory_bytes") is None
    assert get("node_sockstat_UDPLITE_mem_bytes") is None


def test_sockstat_help_and_types_are_node_exporters(snapshot):
    families = {f.name: f for f in SockstatCollector(snapshot.procfs, 4096).collect()}
    assert families["node_sockstat_sockets_used"].documentation == "Number of IPv4 sockets in use."
    assert (
        families["node_sockstat_TCP_mem_bytes"].documentation
        == "Number of TCP sockets in state mem_bytes."
    )
    assert {f.type for f in families.values()} == {"gauge"}


def test_sockstat_without_ipv6_reports_ipv4_only(tmp_path):
    registry = registry_for(proc_copy(tmp_path, "net/sockstat"), "sockstat")
    assert success(registry, "sockstat") == 1
    assert registry.get_sample_value("node_sockstat_TCP_inuse") == 7
    assert registry.get_sample_value("node_sockstat_TCP6_inuse") is None


def test_sockstat_malformed_line_fails_the_collector(tmp_path):
    options = proc_copy(tmp_path, "net/sockstat6")
    (tmp_path / "net" / "sockstat").write_text("TCP: inuse 7 orphan\n")
    assert success(registry_for(options, "sockstat"), "sockstat") == 0


def test_sockstat_unreadable_file_fails_the_collector(tmp_path):
    options = proc_copy(tmp_path, "net/sockstat6")
    (tmp_path / "net" / "sockstat").mkdir()  # reading a directory: IsADirectoryError
    assert success(registry_for(options, "sockstat"), "sockstat") == 0


# --- conntrack -----------------------------------------------------------------------------


def test_conntrack_entries_limit_and_per_cpu_stats_summed(snapshot):
    registry = registry_for(snapshot, "conntrack")
    get = registry.get_sample_value
    assert get("node_nf_conntrack_entries") == 123
    assert get("node_nf_conntrack_entries_limit") == 262144
    # Two CPUs' hex columns, summed, as node_exporter does.
    assert get("node_nf_conntrack_stat_found") == 5
    assert get("node_nf_conntrack_stat_invalid") == 0x1D + 0x14
    assert get("node_nf_conntrack_stat_insert_failed") == 1
    assert get("node_nf_conntrack_stat_search_restart") == 15
    assert get("node_nf_conntrack_stat_drop") == 0
    assert get("node_nf_conntrack_stat_early_drop") == 0
    assert get("node_nf_conntrack_stat_ignore") == 0
    assert get("node_nf_conntrack_stat_insert") == 0


def test_conntrack_without_stat_file_reports_entries_only(tmp_path):
    options = proc_copy(
        tmp_path, "sys/net/netfilter/nf_conntrack_count", "sys/net/netfilter/nf_conntrack_max"
    )
    registry = registry_for(options, "conntrack")
    assert success(registry, "conntrack") == 1
    assert registry.get_sample_value("node_nf_conntrack_entries") == 123
    assert family_names(registry, "node_nf_conntrack_stat_") == set()


def test_conntrack_module_not_loaded_fails_like_node_exporter(tmp_path):
    """node_exporter answers ErrNoData (success 0) when nf_conntrack is not loaded."""
    registry = registry_for(proc_copy(tmp_path, "loadavg"), "conntrack", "loadavg")
    assert success(registry, "conntrack") == 0
    assert success(registry, "loadavg") == 1


def test_conntrack_garbage_count_fails(tmp_path):
    options = proc_copy(tmp_path, "sys/net/netfilter/nf_conntrack_max")
    (tmp_path / "sys/net/netfilter/nf_conntrack_count").write_text("lots\n")
    assert success(registry_for(options, "conntrack"), "conntrack") == 0


# --- softnet -------------------------------------------------------------------------------


def test_softnet_hex_counters_per_cpu(snapshot):
    registry = registry_for(snapshot, "softnet")
    get = registry.get_sample_value
    assert get("node_softnet_processed_total", {"cpu": "0"}) == 0x000B8C2A
    assert get("node_softnet_processed_total", {"cpu": "1"}) == 0x0009E3F1
    assert get("node_softnet_dropped_total", {"cpu": "1"}) == 2
    assert get("node_softnet_times_squeezed_total", {"cpu": "0"}) == 3


def test_softnet_uses_the_kernels_cpu_index_when_given(tmp_path):
    """An offline CPU has no line; the 13th column names the CPU each line belongs to."""
    options = proc_copy(tmp_path)
    (tmp_path / "net").mkdir()
    cols = " ".join(["00000000"] * 9)
    (tmp_path / "net" / "softnet_stat").write_text(
        f"00000010 00000000 00000000 {cols} 00000000\n00000020 00000000 00000000 {cols} 00000003\n"
    )
    registry = registry_for(options, "softnet")
    assert registry.get_sample_value("node_softnet_processed_total", {"cpu": "3"}) == 0x20
    assert registry.get_sample_value("node_softnet_processed_total", {"cpu": "1"}) is None


def test_softnet_old_kernel_numbers_lines(tmp_path):
    options = proc_copy(tmp_path)
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "softnet_stat").write_text(
        "00000010 00000001 00000000 " + " ".join(["00000000"] * 8) + "\n"
    )
    registry = registry_for(options, "softnet")
    assert registry.get_sample_value("node_softnet_dropped_total", {"cpu": "0"}) == 1


def test_softnet_missing_or_short_line_fails(tmp_path):
    assert success(registry_for(proc_copy(tmp_path), "softnet"), "softnet") == 0
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "softnet_stat").write_text("00000010 00000001\n")
    assert success(registry_for(snapshot_options(procfs=str(tmp_path)), "softnet"), "softnet") == 0


# --- arp -----------------------------------------------------------------------------------


def test_arp_counts_entries_per_device(snapshot):
    registry = registry_for(snapshot, "arp")
    # Incomplete entries (flags 0x0) count too, as in node_exporter 1.5's /proc/net/arp reader.
    assert registry.get_sample_value("node_arp_entries", {"device": "eth0"}) == 3
    families = {f.name: f for f in ArpCollector(snapshot.procfs).collect()}
    assert families["node_arp_entries"].documentation == "ARP entries by device"


def test_arp_device_filters(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "arp").write_text(
        (PROC / "net" / "arp").read_text()
        + "172.17.0.2       0x1         0x2         02:42:ac:11:00:02     *        docker0\n"
    )
    everything = {f.name: f for f in ArpCollector(str(tmp_path)).collect()}
    assert {s.labels["device"] for s in everything["node_arp_entries"].samples} == {
        "eth0",
        "docker0",
    }
    only_eth = ArpCollector(str(tmp_path), DeviceFilter(exclude="^docker"))
    samples = next(iter(only_eth.collect())).samples
    assert [(s.labels["device"], s.value) for s in samples] == [("eth0", 3)]


def test_arp_device_flags_reach_the_collector(snapshot):
    settings = load_settings(["--collector.arp.device-include", "^wlan"], env={})
    options = snapshot_options(values=dict(settings.collector_options.values))
    registry = registry_for(options, "arp")
    assert registry.get_sample_value("node_arp_entries", {"device": "eth0"}) is None
    assert success(registry, "arp") == 1


def test_arp_missing_file_fails(tmp_path):
    assert success(registry_for(proc_copy(tmp_path), "arp"), "arp") == 0


# --- udp_queues ----------------------------------------------------------------------------


def test_udp_queues_sum_hex_queues_per_family(snapshot):
    registry = registry_for(snapshot, "udp_queues")
    get = registry.get_sample_value
    assert get("node_udp_queues", {"ip": "v4", "queue": "rx"}) == 0x340
    assert get("node_udp_queues", {"ip": "v4", "queue": "tx"}) == 0
    assert get("node_udp_queues", {"ip": "v6", "queue": "tx"}) == 0x200
    assert get("node_udp_queues", {"ip": "v6", "queue": "rx"}) == 0


def test_udp_queues_without_ipv6_reports_ipv4(tmp_path):
    registry = registry_for(proc_copy(tmp_path, "net/udp"), "udp_queues")
    assert success(registry, "udp_queues") == 1
    assert registry.get_sample_value("node_udp_queues", {"ip": "v4", "queue": "rx"}) == 0x340
    assert "v6" not in generate_latest(registry).decode()


def test_udp_queues_without_either_file_fails(tmp_path):
    assert success(registry_for(proc_copy(tmp_path), "udp_queues"), "udp_queues") == 0


def test_udp_queues_malformed_queue_fails(tmp_path):
    options = proc_copy(tmp_path, "net/udp6")
    (tmp_path / "net" / "udp").write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "  1: 00000000:0044 00000000:0000 07 zz:00\n"
    )
    assert success(registry_for(options, "udp_queues"), "udp_queues") == 0
