"""Collector behaviour on the recorded snapshot and on broken or missing data sources."""

from __future__ import annotations

import subprocess
import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter_agent.collectors import COLLECTORS, build_collectors
from exporter_agent.collectors.filesystem import FilesystemCollector
from exporter_agent.collectors.hwmon import HwmonCollector
from exporter_agent.collectors.meminfo import parse_meminfo
from exporter_agent.collectors.os_release import parse_os_release
from exporter_agent.collectors.systemd import SystemdCollector
from exporter_agent.exporter import AgentCollector, build_registry
from tests.agent.conftest import SNAPSHOT, snapshot_options


def registry_for(options, names=None) -> CollectorRegistry:
    """A fresh registry running the named collectors (all by default) on ``options``."""
    names = names or [spec.name for spec in COLLECTORS]
    return build_registry(AgentCollector(build_collectors(names, options), "test"), False)


def meminfo_kb(field: str) -> int:
    for line in (SNAPSHOT / "proc" / "meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_memory_is_meminfo_kilobytes_times_1024(snapshot):
    registry = registry_for(snapshot, ["meminfo"])
    for field in ("MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached", "SwapTotal"):
        value = registry.get_sample_value(f"node_memory_{field}_bytes")
        assert value == meminfo_kb(field) * 1024


def test_meminfo_names_follow_node_exporter():
    parsed = parse_meminfo("Active(anon):  10 kB\nHugePages_Total:  3\n")
    assert parsed == {"Active_anon_bytes": 10240.0, "HugePages_Total": 3.0}


def test_cpu_labels_and_seconds_from_user_hz(snapshot):
    registry = registry_for(snapshot, ["cpu"])
    line = next(
        line
        for line in (SNAPSHOT / "proc" / "stat").read_text().splitlines()
        if line.startswith("cpu0 ")
    )
    user_ticks = int(line.split()[1])
    assert registry.get_sample_value(
        "node_cpu_seconds_total", {"cpu": "0", "mode": "user"}
    ) == pytest.approx(user_ticks / 100)
    modes = {
        s.labels["mode"]
        for m in registry.collect()
        if m.name == "node_cpu_seconds"
        for s in m.samples
    }
    assert modes == {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}


def test_filesystem_excludes_pseudo_filesystems_and_dedupes(snapshot):
    registry = registry_for(snapshot, ["filesystem"])
    mounts = {
        s.labels["mountpoint"]
        for m in registry.collect()
        if m.name == "node_filesystem_device_error"
        for s in m.samples
    }
    # proc, sysfs, devtmpfs, /dev/*, cgroup2, overlay, squashfs and /run/credentials are out;
    # the doubled / is reported once; the space in "media library" is unescaped.
    assert mounts == {"/", "/run", "/mnt/media library", "/srv/nfs"}
    assert (
        registry.get_sample_value(
            "node_filesystem_size_bytes",
            {"device": "/dev/vda", "fstype": "ext4", "mountpoint": "/"},
        )
        == 66052044 * 4096
    )
    assert (
        registry.get_sample_value(
            "node_filesystem_readonly",
            {"device": "/dev/sdb1", "fstype": "xfs", "mountpoint": "/mnt/media library"},
        )
        == 1
    )


def test_filesystem_statvfs_error_marks_device_error_without_sizes(snapshot):
    registry = registry_for(snapshot, ["filesystem"])
    labels = {"device": "nfs.lan:/export", "fstype": "nfs4", "mountpoint": "/srv/nfs"}
    assert registry.get_sample_value("node_filesystem_device_error", labels) == 1
    assert registry.get_sample_value("node_filesystem_size_bytes", labels) is None
    assert (
        registry.get_sample_value("homelab_agent_collector_success", {"collector": "filesystem"})
        == 1
    )


def test_filesystem_skips_a_mount_whose_statvfs_is_still_hanging(snapshot):
    """A hung NFS mount blocks one scrape at most; later scrapes report it as a device error."""
    release = threading.Event()
    entered = threading.Event()

    def statvfs(path):
        if path.endswith("/srv/nfs"):
            entered.set()
            release.wait()
            raise OSError(5, "EIO")
        raise OSError(2, "ENOENT")

    collector = FilesystemCollector(snapshot.procfs, "/", statvfs)
    stuck = threading.Thread(target=lambda: list(collector.collect()), daemon=True)
    stuck.start()
    entered.wait()
    try:
        families = {f.name: f for f in collector.collect()}
        errors = {
            s.labels["mountpoint"]: s.value
            for s in families["node_filesystem_device_error"].samples
        }
        assert errors["/srv/nfs"] == 1
    finally:
        release.set()
        stuck.join()


def test_hwmon_absent_without_sensors_and_still_successful(tmp_path, snapshot):
    options = snapshot_options(sysfs=str(tmp_path))
    registry = registry_for(options, ["hwmon"])
    text = generate_latest(registry).decode()
    assert "node_hwmon" not in text
    assert registry.get_sample_value("homelab_agent_collector_success", {"collector": "hwmon"}) == 1


def test_hwmon_reads_millidegrees_and_names_chips_like_node_exporter(snapshot):
    families = {f.name: f for f in HwmonCollector(snapshot.sysfs).collect()}
    temps = {
        (s.labels["chip"], s.labels["sensor"]): s.value
        for s in families["node_hwmon_temp_celsius"].samples
    }
    assert temps == {
        ("platform_coretemp_0", "temp1"): 45.0,
        ("platform_coretemp_0", "temp2"): 43.0,
        ("acpitz", "temp1"): 27.8,
    }


def test_systemd_absent_without_systemd_and_still_successful(snapshot):
    def must_not_run(args):
        raise AssertionError("systemctl must not run without systemd")

    options = snapshot_options(systemd_booted=lambda: False, systemctl=must_not_run)
    registry = registry_for(options, ["systemd"])
    assert "node_systemd" not in generate_latest(registry).decode()
    assert (
        registry.get_sample_value("homelab_agent_collector_success", {"collector": "systemd"}) == 1
    )


def test_systemd_without_listed_units_runs_nothing():
    collector = SystemdCollector(
        (), runner=lambda args: pytest.fail("ran systemctl"), booted=lambda: True
    )
    assert list(collector.collect()) == []


def test_systemd_asks_only_for_the_listed_units():
    calls = []

    def runner(args):
        calls.append(list(args))
        return "Id=nginx.service\nActiveState=active\nSubState=running\nType=forking\n"

    families = list(SystemdCollector(["nginx.service"], runner, lambda: True).collect())
    # SubState is asked for the heartbeat's services; the metric does not use it.
    assert calls == [["show", "--property=Id,ActiveState,SubState,Type", "--", "nginx.service"]]
    assert {tuple(s.labels) for s in families[0].samples} == {("name", "state", "type")}
    active = {s.labels["state"]: s.value for s in families[0].samples}
    assert active == {"activating": 0, "active": 1, "deactivating": 0, "failed": 0, "inactive": 0}


@pytest.mark.parametrize(
    "error",
    [
        OSError(13, "Permission denied"),
        ValueError("garbage"),
        subprocess.CalledProcessError(1, ["systemctl"]),
        subprocess.TimeoutExpired(["systemctl"], 5),
    ],
)
def test_failing_collector_is_skipped_and_reported_not_fatal(snapshot, error):
    class Broken:
        def collect(self):
            yield from ()
            raise error

    collectors = build_collectors(["loadavg"], snapshot)
    collectors["broken"] = Broken()
    registry = build_registry(AgentCollector(collectors, "test"), False)
    text = generate_latest(registry).decode()
    assert (
        registry.get_sample_value("homelab_agent_collector_success", {"collector": "broken"}) == 0
    )
    assert (
        registry.get_sample_value("homelab_agent_collector_success", {"collector": "loadavg"}) == 1
    )
    assert "node_load1 " in text


def test_partial_output_of_a_failing_collector_is_dropped(snapshot):
    from prometheus_client.core import GaugeMetricFamily

    class HalfBroken:
        def collect(self):
            yield GaugeMetricFamily("node_half", "Half.", value=1)
            raise OSError(5, "EIO")

    registry = build_registry(AgentCollector({"half": HalfBroken()}, "test"), False)
    assert "node_half" not in generate_latest(registry).decode()


def test_malformed_proc_file_fails_only_its_collector(tmp_path, snapshot):
    (tmp_path / "loadavg").write_text("not numbers at all\n")
    (tmp_path / "meminfo").write_text((SNAPSHOT / "proc" / "meminfo").read_text())
    registry = registry_for(snapshot_options(procfs=str(tmp_path)), ["loadavg", "meminfo"])
    assert (
        registry.get_sample_value("homelab_agent_collector_success", {"collector": "loadavg"}) == 0
    )
    assert (
        registry.get_sample_value("homelab_agent_collector_success", {"collector": "meminfo"}) == 1
    )


def test_netdev_excludes_loopback_by_default(snapshot):
    registry = registry_for(snapshot, ["netdev"])
    devices = {
        s.labels["device"]
        for m in registry.collect()
        if m.name == "node_network_receive_bytes"
        for s in m.samples
    }
    assert "lo" not in devices
    assert "eth0" in devices


def test_diskstats_excludes_partitions_and_loop_devices(snapshot):
    registry = registry_for(snapshot, ["diskstats"])
    devices = {
        s.labels["device"]
        for m in registry.collect()
        if m.name == "node_disk_read_bytes"
        for s in m.samples
    }
    assert devices == {"vda", "zram0"}


def test_os_release_quotes_and_escapes():
    parsed = parse_os_release('NAME="Foo \\"Linux\\""\nID=foo\nVERSION_ID=\'1.2\'\n# comment\n')
    assert parsed == {"NAME": 'Foo "Linux"', "ID": "foo", "VERSION_ID": "1.2"}


def test_no_created_series_anywhere(snapshot):
    text = generate_latest(registry_for(snapshot)).decode()
    assert "_created" not in text
