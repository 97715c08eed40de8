"""The collectors and the one table that lists them.

``COLLECTORS`` is the single place a collector is registered: it builds the collector from
the agent's settings and generates the ``--collector.NAME`` / ``--no-collector.NAME`` flags.
Names follow node_exporter's collectors so the same flags mean the same thing.
"""

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.core import Metric

from exporter_agent.collectors.clock import TimeCollector
from exporter_agent.collectors.cpu import CpuCollector
from exporter_agent.collectors.diskstats import DEFAULT_DEVICE_EXCLUDE as DISK_EXCLUDE
from exporter_agent.collectors.diskstats import DiskstatsCollector
from exporter_agent.collectors.filesystem import (
    DEFAULT_FS_TYPES_EXCLUDE,
    DEFAULT_MOUNT_POINTS_EXCLUDE,
    FilesystemCollector,
)
from exporter_agent.collectors.hwmon import HwmonCollector
from exporter_agent.collectors.loadavg import LoadavgCollector
from exporter_agent.collectors.meminfo import MeminfoCollector
from exporter_agent.collectors.netdev import DEFAULT_DEVICE_EXCLUDE as NET_EXCLUDE
from exporter_agent.collectors.netdev import NetdevCollector
from exporter_agent.collectors.os_release import OsCollector
from exporter_agent.collectors.stat import StatCollector
from exporter_agent.collectors.systemd import SystemdCollector, run_systemctl, systemd_booted
from exporter_agent.collectors.uname import UnameCollector
from exporter_agent.collectors.util import DeviceFilter


class Collector(Protocol):
    """Anything with a ``collect()`` that yields prometheus_client metric families."""

    def collect(self) -> Iterable[Metric]:
        """Yield this scrape's metric families; raise OSError/ValueError when the source fails."""


@dataclass(frozen=True)
class CollectorOptions:
    """Where collectors read from and what they filter.

    The paths and the callables (statvfs, uname, clock, systemctl) are the data sources; tests
    point them at a recorded snapshot.
    """

    procfs: str = "/proc"
    sysfs: str = "/sys"
    rootfs: str = "/"
    udev_data: str = "/run/udev/data"
    mount_points_exclude: str = DEFAULT_MOUNT_POINTS_EXCLUDE
    fs_types_exclude: str = DEFAULT_FS_TYPES_EXCLUDE
    diskstats_device_exclude: str = DISK_EXCLUDE
    netdev_device_exclude: str = NET_EXCLUDE
    systemd_units: tuple[str, ...] = field(default_factory=tuple)
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    uname: Callable[[], os.uname_result] = os.uname
    clock: Callable[[], float] = time.time
    localtime: Callable[[float], time.struct_time] = time.localtime
    systemctl: Callable[[Sequence[str]], str] = run_systemctl
    systemd_booted: Callable[[], bool] = systemd_booted


@dataclass(frozen=True)
class CollectorSpec:
    """One row of the table: a collector's name, default state, help and factory."""

    name: str
    enabled_by_default: bool
    help: str
    build: Callable[[CollectorOptions], Collector]


COLLECTORS: tuple[CollectorSpec, ...] = (
    CollectorSpec("cpu", True, "CPU seconds per CPU and mode", lambda o: CpuCollector(o.procfs)),
    CollectorSpec(
        "diskstats",
        True,
        "block device I/O",
        lambda o: DiskstatsCollector(
            o.procfs, o.udev_data, DeviceFilter(exclude=o.diskstats_device_exclude)
        ),
    ),
    CollectorSpec(
        "filesystem",
        True,
        "filesystem sizes and inodes",
        lambda o: FilesystemCollector(
            o.procfs,
            o.rootfs,
            o.statvfs,
            mount_points_exclude=o.mount_points_exclude,
            fs_types_exclude=o.fs_types_exclude,
        ),
    ),
    CollectorSpec("hwmon", True, "temperature sensors", lambda o: HwmonCollector(o.sysfs)),
    CollectorSpec("loadavg", True, "load averages", lambda o: LoadavgCollector(o.procfs)),
    CollectorSpec("meminfo", True, "/proc/meminfo fields", lambda o: MeminfoCollector(o.procfs)),
    CollectorSpec(
        "netdev",
        True,
        "network interface counters",
        lambda o: NetdevCollector(o.procfs, DeviceFilter(exclude=o.netdev_device_exclude)),
    ),
    CollectorSpec("os", True, "os-release information", lambda o: OsCollector(o.rootfs)),
    CollectorSpec(
        "stat", True, "boot time, forks, context switches", lambda o: StatCollector(o.procfs)
    ),
    CollectorSpec(
        "systemd",
        True,
        "state of the units listed with --collector.systemd.units",
        lambda o: SystemdCollector(o.systemd_units, o.systemctl, o.systemd_booted),
    ),
    CollectorSpec(
        "time",
        True,
        "system time and time zone",
        lambda o: TimeCollector(o.sysfs, o.clock, o.localtime),
    ),
    CollectorSpec(
        "uname", True, "uname(2) information", lambda o: UnameCollector(o.procfs, o.uname)
    ),
)


def build_collectors(enabled: Iterable[str], options: CollectorOptions) -> dict[str, Collector]:
    """Instantiate the enabled collectors, keyed by name, in table order."""
    wanted = set(enabled)
    return {spec.name: spec.build(options) for spec in COLLECTORS if spec.name in wanted}
