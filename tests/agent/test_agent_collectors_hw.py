"""netclass, bonding, edac, mdadm and hwmon on the recorded snapshot, and against node_exporter.

The snapshot's /sys/class/net holds a Debian box's lo, eth0 (1 Gb/s), a bond0 over eth1 (up,
10 Gb/s) and eth2 (cable out), ifb0 and a Raspberry Pi's wlan0 (not associated: no speed);
/proc/mdstat a raid5 rebuilding, a degraded raid1 with a failed and a spare disk, a raid0, a
raid1 being checked, a raid10 whose resync waits and an inactive array; the edac tree one ECC
controller; hwmon a Super I/O chip with fans, voltages, alarms and an open case. The last tests
run the real prometheus-node-exporter 1.5 on the same files and want the very same series.
"""

from __future__ import annotations

import resource
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter_agent.collectors import build_collectors
from exporter_agent.collectors.hwmon import HwmonCollector, split_sensor_file
from exporter_agent.collectors.mdadm import parse_mdstat
from exporter_agent.exporter import AddressSpaceLimitCollector, AgentCollector, build_registry
from exporter_agent.exposition import encode
from tests.agent.conftest import NODE_EXPORTER, SNAPSHOT, Proc, http_get, snapshot_options
from tests.helpers import free_port, require_binary

HW_COLLECTORS = ("bonding", "edac", "hwmon", "mdadm", "netclass")


def registry_for(options, names) -> CollectorRegistry:
    """A fresh registry running the named collectors on ``options``."""
    return build_registry(AgentCollector(build_collectors(names, options), "test"), False)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def success(registry: CollectorRegistry, collector: str) -> float | None:
    return value(registry, "homelab_agent_collector_success", collector=collector)


def copy_of_snapshot_sys(tmp_path: Path) -> Path:
    """A writable copy of the snapshot's /sys (symlinks kept, as the kernel lays them out)."""
    sysfs = tmp_path / "sys"
    shutil.copytree(SNAPSHOT / "sys", sysfs, symlinks=True)
    return sysfs


# --- netclass ------------------------------------------------------------------------------


def test_netclass_exports_link_speed_carrier_mtu_and_up(snapshot):
    registry = registry_for(snapshot, ["netclass"])
    assert value(registry, "node_network_speed_bytes", device="eth0") == 125_000_000
    assert value(registry, "node_network_speed_bytes", device="eth1") == 1_250_000_000
    # An unknown speed (-1, cable out) is exported as node_exporter 1.5 does: -125000.
    assert value(registry, "node_network_speed_bytes", device="eth2") == -125_000
    assert value(registry, "node_network_carrier", device="eth2") == 0
    assert value(registry, "node_network_up", device="bond0") == 1
    assert value(registry, "node_network_up", device="lo") == 0  # operstate "unknown"
    assert value(registry, "node_network_mtu_bytes", device="eth1") == 9000
    assert value(registry, "node_network_flags", device="eth0") == 0x1003
    assert value(registry, "node_network_carrier_changes_total", device="eth2") == 7
    assert value(registry, "node_network_transmit_queue_length", device="ifb0") == 32
    assert value(registry, "node_network_protocol_type", device="lo") == 772


def test_netclass_info_carries_address_duplex_operstate_and_alias(snapshot):
    registry = registry_for(snapshot, ["netclass"])
    info = {
        "device": "eth0",
        "address": "3c:7c:3f:1e:a2:10",
        "broadcast": "ff:ff:ff:ff:ff:ff",
        "duplex": "full",
        "ifalias": "uplink to switch port 7",
        "operstate": "up",
    }
    assert value(registry, "node_network_info", **info) == 1
    # The loopback has no duplex; bonding_masters (a file) is no device.
    lo = {**info, "device": "lo", "address": "00:00:00:00:00:00"}
    lo.update(broadcast="00:00:00:00:00:00", duplex="", ifalias="", operstate="unknown")
    assert value(registry, "node_network_info", **lo) == 1
    devices = {
        s.labels["device"]
        for family in registry.collect()
        if family.name == "node_network_up"
        for s in family.samples
    }
    assert devices == {"bond0", "eth0", "eth1", "eth2", "ifb0", "lo", "wlan0"}


def test_netclass_leaves_out_what_the_driver_cannot_give(snapshot):
    registry = registry_for(snapshot, ["netclass"])
    assert value(registry, "node_network_speed_bytes", device="wlan0") is None
    assert value(registry, "node_network_carrier", device="ifb0") is None
    assert value(registry, "node_network_name_assign_type", device="lo") is None
    assert value(registry, "node_network_mtu_bytes", device="wlan0") == 1500


def test_netclass_ignored_devices_regex():
    options = snapshot_options(values={"netclass_ignored_devices": "^(lo|ifb[0-9]+)$"})
    registry = registry_for(options, ["netclass"])
    assert value(registry, "node_network_up", device="lo") is None
    assert value(registry, "node_network_up", device="ifb0") is None
    assert value(registry, "node_network_up", device="eth0") == 1


def test_netclass_unreadable_attribute_fails_the_collector_not_the_scrape(tmp_path):
    sysfs = copy_of_snapshot_sys(tmp_path)
    mtu = sysfs / "devices" / "pci0000:00" / "0000:00:1f.6" / "net" / "eth0" / "mtu"
    mtu.unlink()
    mtu.mkdir()  # reading it fails with EISDIR: a failure, not an unavailable attribute
    registry = registry_for(snapshot_options(sysfs=str(sysfs)), ["netclass", "bonding"])
    assert success(registry, "netclass") == 0
    assert value(registry, "node_network_up", device="eth0") is None
    assert success(registry, "bonding") == 1
    assert value(registry, "node_bonding_slaves", master="bond0") == 2


def test_netclass_device_gone_between_listing_and_reading_shows_as_before(snapshot):
    """Each device's directory is opened once and its attributes read relative to it; a
    device removed after the listing (a veth of a stopped container) is read by path as
    before: still listed, down, every attribute unavailable, and the collector succeeds."""
    from exporter_agent.collectors.netclass import NetclassCollector

    collector = NetclassCollector(snapshot.sysfs)
    listed = collector.devices()
    collector.devices = lambda: [*listed, "veth9"]  # type: ignore[method-assign]
    families = {family.name: family for family in collector.collect()}
    up = {s.labels["device"]: s.value for s in families["node_network_up"].samples}
    assert up["veth9"] == 0 and up["eth0"] == 1
    gone = [
        s.labels for s in families["node_network_info"].samples if s.labels["device"] == "veth9"
    ]
    assert gone == [{"device": "veth9", "address": "", "broadcast": "", "duplex": "",
                     "ifalias": "", "operstate": ""}]  # fmt: skip
    mtu = {s.labels["device"] for s in families["node_network_mtu_bytes"].samples}
    assert "veth9" not in mtu and "eth0" in mtu


@pytest.mark.parametrize("collector", HW_COLLECTORS)
def test_a_box_without_the_source_exports_nothing_and_succeeds(tmp_path, collector):
    """No /sys/class/net, no bonding driver, no EDAC, no md driver, no sensors: no series."""
    options = snapshot_options(procfs=str(tmp_path), sysfs=str(tmp_path))
    registry = registry_for(options, [collector])
    families = [f.name for f in registry.collect() if f.samples]
    assert set(families) == {
        "homelab_agent_collector_duration_seconds",
        "homelab_agent_collector_success",
        "node_scrape_collector_duration_seconds",
        "node_scrape_collector_success",
        "homelab_agent_build_info",
    }
    assert success(registry, collector) == 1


# --- bonding -------------------------------------------------------------------------------


def test_bonding_counts_slaves_and_those_whose_mii_status_is_up(snapshot):
    registry = registry_for(snapshot, ["bonding"])
    assert value(registry, "node_bonding_slaves", master="bond0") == 2
    assert value(registry, "node_bonding_active", master="bond0") == 1


def test_bonding_master_without_its_slaves_file_fails(tmp_path):
    sysfs = copy_of_snapshot_sys(tmp_path)
    (sysfs / "devices" / "virtual" / "net" / "bond0" / "bonding" / "slaves").unlink()
    registry = registry_for(snapshot_options(sysfs=str(sysfs)), ["bonding"])
    assert success(registry, "bonding") == 0
    assert value(registry, "node_bonding_slaves", master="bond0") is None


# --- edac ----------------------------------------------------------------------------------


def test_edac_counts_errors_per_controller_and_csrow(snapshot):
    registry = registry_for(snapshot, ["edac"])
    assert value(registry, "node_edac_correctable_errors_total", controller="0") == 5
    assert value(registry, "node_edac_uncorrectable_errors_total", controller="0") == 0
    row = "node_edac_csrow_correctable_errors_total"
    assert value(registry, row, controller="0", csrow="0") == 3
    assert value(registry, row, controller="0", csrow="1") == 1
    # Errors the driver could not place on a row.
    assert value(registry, row, controller="0", csrow="unknown") == 1
    assert (
        value(registry, "node_edac_csrow_uncorrectable_errors_total", controller="0", csrow="1")
        == 0
    )


def test_edac_controller_without_a_counter_fails(tmp_path):
    sysfs = copy_of_snapshot_sys(tmp_path)
    (sysfs / "devices" / "system" / "edac" / "mc" / "mc0" / "ue_count").unlink()
    registry = registry_for(snapshot_options(sysfs=str(sysfs)), ["edac"])
    assert success(registry, "edac") == 0


# --- mdadm ---------------------------------------------------------------------------------


def test_mdadm_reports_state_disks_and_sync_progress(snapshot):
    registry = registry_for(snapshot, ["mdadm"])

    def states(device):
        return {
            state
            for state in ("active", "inactive", "recovering", "resync", "check")
            if value(registry, "node_md_state", device=device, state=state) == 1
        }

    assert {md: states(md) for md in ("md0", "md1", "md2", "md3", "md4", "md127")} == {
        "md0": {"active"},
        "md1": {"recovering"},
        "md2": {"active"},
        "md3": {"check"},
        "md4": {"resync"},
        "md127": {"inactive"},
    }
    # The degraded raid1: one of two disks active, one failed, one spare.
    assert value(registry, "node_md_disks_required", device="md0") == 2
    assert value(registry, "node_md_disks", device="md0", state="active") == 1
    assert value(registry, "node_md_disks", device="md0", state="failed") == 1
    assert value(registry, "node_md_disks", device="md0", state="spare") == 1
    # The rebuilding raid5: blocks synced from the recovery line.
    assert value(registry, "node_md_blocks", device="md1") == 7813771264
    assert value(registry, "node_md_blocks_synced", device="md1") == 914262528
    # raid0 has no [n/m]: its members are counted; a delayed resync has synced nothing.
    assert value(registry, "node_md_disks", device="md2", state="active") == 2
    assert value(registry, "node_md_blocks_synced", device="md4") == 0
    assert value(registry, "node_md_disks", device="md127", state="spare") == 1


def test_mdadm_unparsable_status_fails_the_collector_not_the_scrape(tmp_path):
    (tmp_path / "mdstat").write_text(
        "Personalities : [raid1]\nmd0 : active raid1 sda1[0] sdb1[1]\n      lots of blocks\n\n\n"
    )
    (tmp_path / "loadavg").write_text("0.10 0.20 0.30 1/100 42\n")
    registry = registry_for(snapshot_options(procfs=str(tmp_path)), ["mdadm", "loadavg"])
    assert success(registry, "mdadm") == 0
    assert value(registry, "node_scrape_collector_success", collector="mdadm") == 0
    assert value(registry, "node_load1") == 0.1


def test_mdadm_file_without_arrays_has_no_series():
    assert parse_mdstat("Personalities : \nunused devices: <none>\n") == []


# --- hwmon ---------------------------------------------------------------------------------


def test_hwmon_exports_fan_voltage_and_intrusion_alarms(snapshot):
    registry = registry_for(snapshot, ["hwmon"])
    chip = "platform_nct6775_656"
    assert value(registry, "node_hwmon_fan_rpm", chip=chip, sensor="fan1") == 1087
    assert value(registry, "node_hwmon_fan_alarm", chip=chip, sensor="fan2") == 1
    assert value(registry, "node_hwmon_fan_min_rpm", chip=chip, sensor="fan2") == 300
    assert value(registry, "node_hwmon_in_volts", chip=chip, sensor="in0") == 1.04
    assert value(registry, "node_hwmon_in_alarm", chip=chip, sensor="in1") == 1
    assert value(registry, "node_hwmon_intrusion_alarm", chip=chip, sensor="intrusion0") == 1
    assert value(registry, "node_hwmon_beep_enabled", chip=chip, sensor="beep_enable0") == 0
    assert value(registry, "node_hwmon_pwm", chip=chip, sensor="pwm1") == 128
    assert value(registry, "node_hwmon_sensor_label", chip=chip, sensor="fan2", label="CPUFAN")
    # node_exporter's name for coretemp's temp1_crit_alarm, kept for its dashboards.
    coretemp = "platform_coretemp_0"
    alarm = "node_hwmon_temp_crit_alarm_celsius"
    assert value(registry, alarm, chip=coretemp, sensor="temp1") == 0


def test_hwmon_temperatures_for_the_heartbeat_are_still_only_temp_inputs(snapshot):
    assert sorted(HwmonCollector(snapshot.sysfs).temperatures()) == [27.8, 43.0, 45.0]


@pytest.mark.parametrize(
    ("filename", "parts"),
    [
        ("temp1_input", ("temp", "1", "input")),
        ("temp1_crit_alarm", ("temp", "1", "crit_alarm")),
        ("pwm2_auto_point1_pwm", ("pwm", "2", "auto_point1_pwm")),
        ("temp01_input", ("temp", "1", "input")),
        ("fan3", ("fan", "3", "")),
        ("beep_enable", ("beep_enable", "0", "")),
        ("temp1_", None),
        ("temp1x", None),
        ("1_input", None),
    ],
)
def test_sensor_file_names_split_as_node_exporter_splits_them(filename, parts):
    assert split_sensor_file(filename) == parts


# --- node_exporter's scrape metadata -------------------------------------------------------


def test_scrape_metadata_also_under_node_exporters_names(tmp_path):
    (tmp_path / "mdstat").write_text("md0 : active raid1\n")  # too short: the parse fails
    (tmp_path / "loadavg").write_text("0.10 0.20 0.30 1/100 42\n")
    registry = registry_for(snapshot_options(procfs=str(tmp_path)), ["mdadm", "loadavg"])
    for collector, ok in (("mdadm", 0), ("loadavg", 1)):
        assert value(registry, "node_scrape_collector_success", collector=collector) == ok
        assert success(registry, collector) == ok
        duration = value(registry, "node_scrape_collector_duration_seconds", collector=collector)
        assert duration is not None
        assert duration >= 0


@pytest.mark.parametrize(
    ("limit", "exported"), [(resource.RLIM_INFINITY, 2.0**64 - 1), (1 << 30, float(1 << 30))]
)
def test_address_space_limit_as_node_exporters_process_metric(limit, exported):
    """The one process_* series Go's client has and prometheus-client lacks."""
    collector = AddressSpaceLimitCollector(getrlimit=lambda which: (limit, limit))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    assert registry.get_sample_value("process_virtual_memory_max_bytes") == exported


def test_the_agents_registry_exports_the_address_space_limit(snapshot):
    registry = build_registry(AgentCollector(build_collectors(["loadavg"], snapshot), "t"))
    assert registry.get_sample_value("process_virtual_memory_max_bytes") is not None


# --- the real node_exporter on the same files ----------------------------------------------


def comparable(text: str) -> dict:
    """{family: (type, help, sorted samples)} without either exporter's own metadata."""
    skip = ("node_scrape_", "go_", "process_", "promhttp_", "node_exporter_", "homelab_")
    return {
        f.name: (
            f.type,
            f.documentation,
            sorted((s.name, sorted(s.labels.items()), s.value) for s in f.samples),
        )
        for f in text_string_to_metric_families(text)
        if not f.name.startswith(skip)
    }


def node_exporter_series(tmp_path: Path, *args: str) -> dict:
    """Run the real node_exporter once with ``args`` and return ``comparable`` of its page."""
    binary = require_binary(NODE_EXPORTER, "prometheus-node-exporter")
    port = free_port()
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
            *args]  # fmt: skip
    proc = Proc(argv, port, tmp_path / "node_exporter.log")
    try:
        proc.wait_ready()
        status, _, body = http_get(proc.url + "/metrics")
    finally:
        proc.stop()
    assert status == 200
    return comparable(body.decode())


def agent_series(options, names) -> dict:
    return comparable(
        encode(AgentCollector(build_collectors(names, options), "t").collect()).decode()
    )


@pytest.mark.integration
def test_snapshot_gives_the_same_series_as_node_exporter(tmp_path, snapshot):
    theirs = node_exporter_series(
        tmp_path,
        *(f"--collector.{name}" for name in HW_COLLECTORS),
        f"--path.sysfs={snapshot.sysfs}",
        f"--path.procfs={snapshot.procfs}",
    )
    ours = agent_series(snapshot, HW_COLLECTORS)
    assert len(ours) >= 50
    assert ours == theirs


@pytest.mark.integration
def test_every_hwmon_sensor_type_gives_the_same_series_as_node_exporter(tmp_path):
    chip = tmp_path / "sys" / "devices" / "platform" / "odd.0" / "hwmon" / "hwmon0"
    chip.mkdir(parents=True)
    files = {
        "name": "Odd Chip!", "temp1": "41000", "temp01_input": "33000", "temp1_type": "4",
        "temp2_input": "not a number", "temp3_input": "-5000", "temp3_label": "",
        "temp4_crit_alarm": "1", "in7_input": "5000", "in7_lcrit_alarm": "0",
        "cpu0_vid": "1100", "vrm": "9.1", "curr1_input": "1500", "curr1_max": "3000",
        "power1_average": "12500000", "power1_accuracy": "2000", "power1_cap": "90000000",
        "power1_average_interval": "1000", "energy1_input": "123456789",
        "humidity1_input": "45000000", "fan1_input": "1180", "fan1_target": "1200",
        "fan1_fault": "0", "fan1": "7", "intrusion1_alarm": "0", "pwm2_auto_point1_pwm": "255",
        "freq1_input": "1500000000", "update_interval": "500", "beep_enable": "1",
    }  # fmt: skip
    for filename, content in files.items():
        (chip / filename).write_text(content + "\n")
    (chip / "device").symlink_to("../../../odd.0")
    (tmp_path / "sys" / "class" / "hwmon").mkdir(parents=True)
    (tmp_path / "sys" / "class" / "hwmon" / "hwmon0").symlink_to(
        "../../devices/platform/odd.0/hwmon/hwmon0"
    )
    theirs = node_exporter_series(tmp_path, "--collector.hwmon", f"--path.sysfs={tmp_path}/sys")
    ours = agent_series(snapshot_options(sysfs=str(tmp_path / "sys")), ["hwmon"])
    assert len(ours) >= 20
    assert ours == theirs


def test_hw_collectors_output_passes_the_text_format_round_trip(snapshot):
    """The lean encoder and prometheus-client agree on every new family."""
    agent = AgentCollector(build_collectors(HW_COLLECTORS, snapshot), "t", timer=lambda: 0.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(agent)
    assert encode(agent.collect()) == generate_latest(registry)
