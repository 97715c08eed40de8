"""The collectors and the one table that lists them.

``COLLECTORS`` is the single place a collector is registered: it builds the collector from
the agent's settings, generates the ``--collector.NAME`` / ``--no-collector.NAME`` flags and
carries the collector's own options (declared as ``OPTIONS`` in its module), which config adds
to the parser. Names follow node_exporter's collectors so the same flags mean the same thing.
"""

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from exporter_agent.collectors import (
    arp,
    containers,
    diskstats,
    filesystem,
    netclass,
    netdev,
    netstat,
    packages,
    systemd,
    textfile,
    timex,
    vmstat,
)
from exporter_agent.collectors.bonding import BondingCollector
from exporter_agent.collectors.clock import TimeCollector
from exporter_agent.collectors.conntrack import ConntrackCollector
from exporter_agent.collectors.cpu import CpuCollector
from exporter_agent.collectors.edac import EdacCollector
from exporter_agent.collectors.entropy import EntropyCollector
from exporter_agent.collectors.filefd import FilefdCollector
from exporter_agent.collectors.hwmon import HwmonCollector
from exporter_agent.collectors.loadavg import LoadavgCollector
from exporter_agent.collectors.mdadm import MdadmCollector
from exporter_agent.collectors.meminfo import MeminfoCollector
from exporter_agent.collectors.os_release import OsCollector
from exporter_agent.collectors.pressure import PressureCollector
from exporter_agent.collectors.sockstat import SockstatCollector
from exporter_agent.collectors.softnet import SoftnetCollector
from exporter_agent.collectors.stat import StatCollector
from exporter_agent.collectors.thermal_zone import ThermalZoneCollector
from exporter_agent.collectors.udp_queues import UdpQueuesCollector
from exporter_agent.collectors.uname import UnameCollector
from exporter_agent.collectors.util import DeviceFilter
from exporter_agent.metrics import Metric
from exporter_agent.options import Option


class Collector(Protocol):
    """Anything with a ``collect()`` that yields metric families (``exporter_agent.metrics``)."""

    def collect(self) -> Iterable[Metric]:
        """Yield this scrape's metric families; raise OSError/ValueError when the source fails."""


class CollectorOptions(NamedTuple):
    """Where collectors read from, what each collector's own options say, and the data sources.

    ``values`` maps a collector option's ``dest`` to its value; a missing one takes the
    option's default. The paths and the callables (statvfs, uname, clock, systemctl) are the
    data sources; tests point them at a recorded snapshot.
    """

    procfs: str = "/proc"
    sysfs: str = "/sys"
    rootfs: str = "/"
    values: Mapping[str, Any] = MappingProxyType({})
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    uname: Callable[[], os.uname_result] = os.uname
    clock: Callable[[], float] = time.time
    localtime: Callable[[float], time.struct_time] = time.localtime
    systemctl: Callable[[Sequence[str]], str] = systemd.run_systemctl
    systemd_booted: Callable[[], bool] = systemd.systemd_booted
    # The engine sockets looked for when --collector.containers.socket is not set.
    container_sockets: tuple[str, ...] = containers.DEFAULT_SOCKETS
    # The PATH apt-get/dnf are looked up on and run with; None: the agent's own PATH.
    packages_path: str | None = None
    # adjtimex(2) for the timex collector, and the page size sockstat turns pages into bytes with.
    adjtimex: Callable[[], tuple[int, timex.Timex]] = timex.adjtimex
    page_size: int = os.sysconf("SC_PAGE_SIZE")

    def value(self, option: Option) -> Any:
        """Return the value of a collector's ``option``: the configured one, else its default."""
        return self.values.get(option.dest, option.default)


class CollectorSpec(NamedTuple):
    """One row of the table: a collector's name, default state, help, factory and options."""

    name: str
    enabled_by_default: bool
    help: str
    build: Callable[[CollectorOptions], Collector]
    options: tuple[Option, ...] = ()


COLLECTORS: tuple[CollectorSpec, ...] = (
    CollectorSpec(
        "arp",
        True,
        "ARP table entries per interface",
        lambda o: arp.ArpCollector(
            o.procfs,
            DeviceFilter(include=o.value(arp.DEVICE_INCLUDE), exclude=o.value(arp.DEVICE_EXCLUDE)),
        ),
        arp.OPTIONS,
    ),
    CollectorSpec(
        "bonding",
        True,
        "slaves and active slaves of bonded interfaces (absent without bonds)",
        lambda o: BondingCollector(o.sysfs),
    ),
    CollectorSpec(
        "containers",
        True,
        "Docker/Podman containers: state, health, exit code, restarts (absent without a socket)",
        lambda o: containers.ContainersCollector(
            o.value(containers.SOCKET), candidates=o.container_sockets
        ),
        containers.OPTIONS,
    ),
    CollectorSpec(
        "conntrack",
        True,
        "connection tracking table use and statistics (fails without nf_conntrack loaded)",
        lambda o: ConntrackCollector(o.procfs),
    ),
    CollectorSpec("cpu", True, "CPU seconds per CPU and mode", lambda o: CpuCollector(o.procfs)),
    CollectorSpec(
        "diskstats",
        True,
        "block device I/O",
        lambda o: diskstats.DiskstatsCollector(
            o.procfs,
            o.value(diskstats.UDEV_DATA),
            DeviceFilter(exclude=o.value(diskstats.DEVICE_EXCLUDE)),
        ),
        diskstats.OPTIONS,
    ),
    CollectorSpec(
        "edac",
        True,
        "ECC memory errors per controller and csrow (absent without EDAC)",
        lambda o: EdacCollector(o.sysfs),
    ),
    CollectorSpec(
        "entropy", True, "available kernel entropy", lambda o: EntropyCollector(o.procfs)
    ),
    CollectorSpec(
        "filefd", True, "allocated and maximum file handles", lambda o: FilefdCollector(o.procfs)
    ),
    CollectorSpec(
        "filesystem",
        True,
        "filesystem sizes and inodes",
        lambda o: filesystem.FilesystemCollector(
            o.procfs,
            o.rootfs,
            o.statvfs,
            mount_points_exclude=o.value(filesystem.MOUNT_POINTS_EXCLUDE),
            fs_types_exclude=o.value(filesystem.FS_TYPES_EXCLUDE),
        ),
        filesystem.OPTIONS,
    ),
    CollectorSpec(
        "hwmon",
        True,
        "hardware sensors: temperatures, fans, voltages, power and their alarms",
        lambda o: HwmonCollector(o.sysfs),
    ),
    CollectorSpec("loadavg", True, "load averages", lambda o: LoadavgCollector(o.procfs)),
    CollectorSpec(
        "mdadm",
        True,
        "software RAID state, disks and sync progress (absent without /proc/mdstat)",
        lambda o: MdadmCollector(o.procfs),
    ),
    CollectorSpec("meminfo", True, "/proc/meminfo fields", lambda o: MeminfoCollector(o.procfs)),
    CollectorSpec(
        "netclass",
        True,
        "network device facts: link up, speed, carrier, MTU, info",
        lambda o: netclass.NetclassCollector(
            o.sysfs, DeviceFilter(exclude=o.value(netclass.IGNORED_DEVICES))
        ),
        netclass.OPTIONS,
    ),
    CollectorSpec(
        "netdev",
        True,
        "network interface counters",
        lambda o: netdev.NetdevCollector(
            o.procfs, DeviceFilter(exclude=o.value(netdev.DEVICE_EXCLUDE))
        ),
        netdev.OPTIONS,
    ),
    CollectorSpec(
        "netstat",
        True,
        "TCP/UDP/IP/ICMP protocol counters selected by --collector.netstat.fields",
        lambda o: netstat.NetstatCollector(o.procfs, o.value(netstat.FIELDS)),
        netstat.OPTIONS,
    ),
    CollectorSpec("os", True, "os-release information", lambda o: OsCollector(o.rootfs)),
    CollectorSpec(
        "packages",
        True,
        "pending apt/dnf upgrades and reboot-required, checked hourly in the background",
        lambda o: packages.PackagesCollector(
            o.rootfs, packages.CommandRunner(o.packages_path), clock=o.clock
        ),
    ),
    CollectorSpec(
        "pressure",
        True,
        "pressure stall information (PSI) for cpu, io, memory and irq",
        lambda o: PressureCollector(o.procfs),
    ),
    CollectorSpec(
        "sockstat",
        True,
        "sockets in use per protocol",
        lambda o: SockstatCollector(o.procfs, o.page_size),
    ),
    CollectorSpec(
        "softnet", True, "per-CPU packet processing", lambda o: SoftnetCollector(o.procfs)
    ),
    CollectorSpec(
        "stat", True, "boot time, forks, context switches", lambda o: StatCollector(o.procfs)
    ),
    CollectorSpec(
        "systemd",
        True,
        "state of the units listed with --collector.systemd.units",
        lambda o: systemd.SystemdCollector(o.value(systemd.UNITS), o.systemctl, o.systemd_booted),
        systemd.OPTIONS,
    ),
    CollectorSpec(
        "textfile",
        True,
        "metrics from *.prom files in --collector.textfile.directory",
        lambda o: textfile.TextfileCollector(o.value(textfile.DIRECTORY)),
        textfile.OPTIONS,
    ),
    CollectorSpec(
        "thermal_zone",
        True,
        "thermal zone temperatures (a Raspberry Pi's only sensor)",
        lambda o: ThermalZoneCollector(o.sysfs),
    ),
    CollectorSpec(
        "time",
        True,
        "system time and time zone",
        lambda o: TimeCollector(o.sysfs, o.clock, o.localtime),
    ),
    CollectorSpec(
        "timex",
        True,
        "kernel clock synchronisation state and offset (adjtimex)",
        lambda o: timex.TimexCollector(o.adjtimex),
    ),
    CollectorSpec(
        "udp_queues",
        True,
        "bytes queued on UDP sockets",
        lambda o: UdpQueuesCollector(o.procfs),
    ),
    CollectorSpec(
        "uname", True, "uname(2) information", lambda o: UnameCollector(o.procfs, o.uname)
    ),
    CollectorSpec(
        "vmstat",
        True,
        "/proc/vmstat fields selected by --collector.vmstat.fields (paging, faults, OOM kills)",
        lambda o: vmstat.VmstatCollector(o.procfs, o.value(vmstat.FIELDS)),
        vmstat.OPTIONS,
    ),
)


def collector_options() -> tuple[Option, ...]:
    """Every collector's own options, in table order (config adds them to the parser)."""
    return tuple(option for spec in COLLECTORS for option in spec.options)


def build_collectors(enabled: Iterable[str], options: CollectorOptions) -> dict[str, Collector]:
    """Instantiate the enabled collectors, keyed by name, in table order."""
    wanted = set(enabled)
    return {spec.name: spec.build(options) for spec in COLLECTORS if spec.name in wanted}
