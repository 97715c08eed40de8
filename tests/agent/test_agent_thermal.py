"""Temperature: node_thermal_zone_temp and the heartbeat's hottest reading, on sysfs-shaped trees.

Each tree is laid out as the kernel does it: /sys/class/{thermal,hwmon}/NAME are symlinks into
/sys/devices, zones hold type/temp/policy/mode, hwmon chips name/tempN_input.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter_agent.collectors import build_collectors
from exporter_agent.collectors.hwmon import HwmonCollector
from exporter_agent.collectors.thermal_zone import ThermalZoneCollector
from exporter_agent.device_health import DeviceHealth, hottest
from exporter_agent.exporter import AgentCollector, build_registry
from tests.agent.conftest import snapshot_options


def add_zone(sys: Path, number: int, zone_type: str, temp: str, mode: str = "enabled") -> Path:
    """A thermal zone as the kernel lays it out; returns its device directory."""
    device = sys / "devices" / "virtual" / "thermal" / f"thermal_zone{number}"
    device.mkdir(parents=True)
    (device / "type").write_text(zone_type + "\n")
    (device / "temp").write_text(temp + "\n")
    (device / "policy").write_text("step_wise\n")
    (device / "mode").write_text(mode + "\n")
    (sys / "class" / "thermal").mkdir(parents=True, exist_ok=True)
    os.symlink(
        f"../../devices/virtual/thermal/thermal_zone{number}",
        sys / "class" / "thermal" / f"thermal_zone{number}",
    )
    return device


def add_hwmon(sys: Path, number: int, name: str, files: dict[str, str]) -> Path:
    """An hwmon chip under /sys/devices/platform; returns its directory."""
    chip = sys / "devices" / "platform" / f"{name}.0" / "hwmon" / f"hwmon{number}"
    chip.mkdir(parents=True)
    (chip / "name").write_text(name + "\n")
    for filename, content in files.items():
        (chip / filename).write_text(content + "\n")
    (sys / "class" / "hwmon").mkdir(parents=True, exist_ok=True)
    os.symlink(
        f"../../devices/platform/{name}.0/hwmon/hwmon{number}",
        sys / "class" / "hwmon" / f"hwmon{number}",
    )
    return chip


@pytest.fixture
def pi(tmp_path) -> Path:
    """A Raspberry Pi 4: one thermal zone, cpu-thermal; its only hwmon chip has no temperature."""
    sys = tmp_path / "sys"
    add_zone(sys, 0, "cpu-thermal", "48312")
    add_hwmon(sys, 0, "rpi_volt", {"in0_lcrit_alarm": "0"})
    return sys


@pytest.fixture
def pc(tmp_path) -> Path:
    """A PC: coretemp sensors plus ACPI, package and wifi zones."""
    sys = tmp_path / "sys"
    add_hwmon(
        sys,
        1,
        "coretemp",
        {"temp1_input": "52000", "temp1_crit": "100000", "temp2_input": "49000"},
    )
    add_zone(sys, 0, "acpitz", "27800")
    add_zone(sys, 1, "x86_pkg_temp", "55000")
    add_zone(sys, 2, "iwlwifi_1", "41000")
    return sys


def zone_samples(sysfs: Path) -> dict[tuple[str, str], float]:
    families = list(ThermalZoneCollector(str(sysfs)).collect())
    assert [f.name for f in families] == ["node_thermal_zone_temp"]
    assert families[0].documentation == "Zone temperature in Celsius"
    return {(s.labels["zone"], s.labels["type"]): s.value for s in families[0].samples}


def device_temperature(sysfs: Path, names=("hwmon", "thermal_zone")) -> float | None:
    options = snapshot_options(sysfs=str(sysfs))
    return DeviceHealth.from_collectors(build_collectors(names, options)).read().get("temperature")


def test_a_pi_exports_its_one_zone_like_node_exporter(pi):
    assert zone_samples(pi) == {("0", "cpu-thermal"): 48.312}
    registry = build_registry(
        AgentCollector(build_collectors(["thermal_zone"], snapshot_options(sysfs=str(pi))), "t"),
        False,
    )
    text = generate_latest(registry).decode()
    assert "# TYPE node_thermal_zone_temp gauge" in text
    assert 'node_thermal_zone_temp{type="cpu-thermal",zone="0"} 48.312' in text


def test_a_pi_heartbeat_temperature_comes_from_its_thermal_zone(pi):
    assert HwmonCollector(str(pi)).temperatures() == []
    assert device_temperature(pi) == 48.3


def test_a_pc_exports_every_zone_in_zone_order(pc):
    assert list(zone_samples(pc)) == [("0", "acpitz"), ("1", "x86_pkg_temp"), ("2", "iwlwifi_1")]


def test_a_pc_heartbeat_sends_the_hottest_of_hwmon_and_zones(pc):
    assert sorted(HwmonCollector(str(pc)).temperatures()) == [49.0, 52.0]  # no crit/max
    assert device_temperature(pc) == 55.0
    assert device_temperature(pc, ["hwmon"]) == 52.0
    (pc / "devices" / "platform" / "coretemp.0" / "hwmon" / "hwmon1" / "temp2_input").write_text(
        "71460\n"
    )
    assert device_temperature(pc) == 71.5


def test_zones_sort_by_number_not_by_name(tmp_path):
    sys = tmp_path / "sys"
    for number in (10, 2, 1):
        add_zone(sys, number, f"zone{number}", str(number * 1000))
    assert list(zone_samples(sys)) == [("1", "zone1"), ("2", "zone2"), ("10", "zone10")]


def test_no_sensors_means_no_series_and_no_temperature(tmp_path):
    (tmp_path / "sys").mkdir()
    assert list(ThermalZoneCollector(str(tmp_path / "sys")).collect()) == []
    assert device_temperature(tmp_path / "sys") is None
    assert "temperature" not in DeviceHealth().read()


def test_disabled_unreadable_and_garbage_zones_are_left_out_the_rest_count(pc):
    zones = pc / "devices" / "virtual" / "thermal"
    (zones / "thermal_zone1" / "mode").write_text("disabled\n")  # the hottest one
    (zones / "thermal_zone2" / "temp").write_text("N/A\n")
    os.remove(zones / "thermal_zone0" / "temp")
    (zones / "thermal_zone0" / "temp").mkdir()  # read() fails with EISDIR, like EIO would
    add_zone(pc, 3, "underscored", "4_2000")  # int() would take it; sysfs never writes it
    add_zone(pc, 4, "blank", "")
    add_zone(pc, 5, "ok", "30000")
    assert zone_samples(pc) == {("5", "ok"): 30.0}
    assert device_temperature(pc, ["thermal_zone"]) == 30.0
    assert device_temperature(pc) == 52.0


def test_broken_hwmon_files_are_skipped(pc):
    chip = pc / "devices" / "platform" / "coretemp.0" / "hwmon" / "hwmon1"
    (chip / "temp1_input").write_text("garbage\n")
    (chip / "temp3_input").mkdir()
    assert HwmonCollector(str(pc)).temperatures() == [49.0]


@pytest.mark.parametrize(
    ("millidegrees", "expected"),
    [
        ("0", 0.0),  # in range: sent, not taken for "no sensor"
        ("-40000", -40.0),
        ("-50000", -50.0),
        ("200000", 200.0),
        ("-50001", None),
        ("200001", None),
        ("255000", None),  # a disconnected sensor's reading
        ("-273150", None),
        ("99999999999", None),
    ],
)
def test_readings_outside_minus_50_to_200_are_dropped_not_clamped(tmp_path, millidegrees, expected):
    sys = tmp_path / "sys"
    add_zone(sys, 0, "cpu-thermal", millidegrees)
    assert device_temperature(sys) == expected


def test_an_absurd_reading_does_not_hide_a_plausible_one(pc):
    add_zone(pc, 3, "broken", "511000")
    add_hwmon(pc, 2, "nct6775", {"temp1_input": "-128000", "temp2_input": "38000"})
    assert device_temperature(pc) == 55.0


def test_hottest_rounds_to_a_tenth_and_ignores_nan():
    assert hottest([41.04, 41.06]) == 41.1
    assert hottest([float("nan"), float("inf"), 30.0]) == 30.0
    assert hottest([]) is None


def test_an_unlistable_thermal_class_fails_the_collector_and_only_its_readings(tmp_path, caplog):
    sys = tmp_path / "sys"
    add_hwmon(sys, 1, "coretemp", {"temp1_input": "52000"})
    (sys / "class" / "thermal").write_text("not a directory\n")  # listdir: ENOTDIR
    collectors = build_collectors(["hwmon", "thermal_zone"], snapshot_options(sysfs=str(sys)))
    registry = build_registry(AgentCollector(collectors, "t"), False)
    success = registry.get_sample_value(
        "homelab_agent_collector_success", {"collector": "thermal_zone"}
    )
    assert success == 0
    assert DeviceHealth.from_collectors(collectors).read() == {"temperature": 52.0}
    assert "temperature (thermal_zone) left out of heartbeats" in caplog.text


def test_the_snapshot_has_thermal_zones(snapshot):
    samples = {
        (s.labels["zone"], s.labels["type"]): s.value
        for family in ThermalZoneCollector(snapshot.sysfs).collect()
        for s in family.samples
    }
    assert samples == {("0", "acpitz"): 27.8, ("1", "x86_pkg_temp"): 45.0}
