"""Network device facts from /sys/class/net, as node_exporter 1.5's ``netclass`` collector.

Link speed, carrier, MTU, operstate and the like: what the "Network Traffic" and "Network
Device" panels of the community dashboards and the link alerts (``node_network_up``,
``node_network_speed_bytes``) read. Only the attributes node_exporter exports are read, each
once, with one ``os.open``/``os.read``. An attribute the driver cannot give right now (the
speed of a link that is down reads EINVAL) is left out, as node_exporter does; any other read
error fails the collector. Without /sys/class/net there is nothing to export and the
collector still succeeds.
"""

import os
from collections.abc import Iterator

from exporter_agent.collectors.sysfs import parse_int, read_optional
from exporter_agent.collectors.util import DeviceFilter
from exporter_agent.metrics import CounterMetricFamily, GaugeMetricFamily, Metric
from exporter_agent.options import Option, regex

DEFAULT_IGNORED_DEVICES = "^$"  # node_exporter's default: every device

# This collector's settings; the COLLECTORS table hands them to config's parser.
IGNORED_DEVICES = Option(
    dest="netclass_ignored_devices",
    flag="--collector.netclass.ignored-devices",
    env="HOMELAB_NETCLASS_IGNORED_DEVICES",
    default=DEFAULT_IGNORED_DEVICES,
    help="regex of network devices the netclass collector ignores",
    convert=regex,
    metavar="REGEX",
)
OPTIONS = (IGNORED_DEVICES,)

# sysfs attribute -> (metric suffix, is_counter, scale): node_exporter's "Network device
# property" series. speed is in Mbit/s; node_exporter exports bytes per second (times 125000),
# also for the -1 of an unknown speed.
NUMERIC = {
    "addr_assign_type": ("address_assign_type", False, 1),
    "carrier": ("carrier", False, 1),
    "carrier_changes": ("carrier_changes_total", True, 1),
    "carrier_up_count": ("carrier_up_changes_total", True, 1),
    "carrier_down_count": ("carrier_down_changes_total", True, 1),
    "dev_id": ("device_id", False, 1),
    "dormant": ("dormant", False, 1),
    "flags": ("flags", False, 1),
    "ifindex": ("iface_id", False, 1),
    "iflink": ("iface_link", False, 1),
    "link_mode": ("iface_link_mode", False, 1),
    "mtu": ("mtu_bytes", False, 1),
    "name_assign_type": ("name_assign_type", False, 1),
    "netdev_group": ("net_dev_group", False, 1),
    "speed": ("speed_bytes", False, 125_000),
    "tx_queue_len": ("transmit_queue_length", False, 1),
    "type": ("protocol_type", False, 1),
}
# The node_network_info labels after "device", and the attribute each comes from.
INFO = (
    ("address", "address"),
    ("broadcast", "broadcast"),
    ("duplex", "duplex"),
    ("ifalias", "ifalias"),
    ("operstate", "operstate"),
)


class NetclassCollector:
    """Exports ``node_network_up``, ``…_info``, ``…_speed_bytes``, ``…_mtu_bytes``, … by device."""

    def __init__(self, sysfs: str = "/sys", device_filter: DeviceFilter | None = None) -> None:
        self._class_dir = os.path.join(sysfs, "class", "net")
        self._filter = device_filter or DeviceFilter(exclude=DEFAULT_IGNORED_DEVICES)

    def devices(self) -> list[str]:
        """The reported interfaces, sorted: /sys/class/net's directories (not bonding_masters)."""
        try:
            entries = sorted(os.listdir(self._class_dir))
        except FileNotFoundError:
            return []
        return [
            name
            for name in entries
            if not self._filter.ignored(name) and os.path.isdir(os.path.join(self._class_dir, name))
        ]

    def collect(self) -> Iterator[Metric]:
        """Yield every family that has samples; raises OSError when an attribute cannot be read."""
        up = GaugeMetricFamily(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
            labels=("device",),
        )
        info = GaugeMetricFamily(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            labels=("device", *(label for label, _ in INFO)),
        )
        numeric = {
            attribute: (CounterMetricFamily if counter else GaugeMetricFamily)(
                f"node_network_{suffix}",
                f"Network device property: {suffix}",
                labels=("device",),
            )
            for attribute, (suffix, counter, _) in NUMERIC.items()
        }
        for device in self.devices():
            with _DeviceDirectory(os.path.join(self._class_dir, device)) as read:
                strings = {attr: read(attr) for _, attr in INFO}
                up.add_metric((device,), 1.0 if strings["operstate"] == "up" else 0.0)
                info.add_metric((device, *(strings[attr] for _, attr in INFO)), 1.0)
                for attribute, family in numeric.items():
                    value = parse_int(read(attribute))
                    if value is not None:
                        family.add_metric((device,), value * NUMERIC[attribute][2])
        for family in (up, info, *numeric.values()):
            if family.samples:
                yield family


class _DeviceDirectory:
    """Reads one device's attributes relative to its directory, opened once (22 reads each).

    A device that went away between the listing and the open is read by path as before, so
    it shows as it always did: every attribute unavailable.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._fd: int | None = None

    def __enter__(self) -> "_DeviceDirectory":
        try:
            self._fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._fd = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def __call__(self, attribute: str) -> str:
        """The attribute trimmed of whitespace as procfs does; "" when unavailable."""
        if self._fd is None:
            raw = read_optional(os.path.join(self._directory, attribute))
        else:
            raw = read_optional(attribute, self._fd)
        return "" if raw is None else raw.strip()
