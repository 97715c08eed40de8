"""Per-interface traffic counters from /proc/net/dev, as node_exporter's ``netdev`` collector."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import DeviceFilter, read_text
from exporter_agent.metrics import CounterMetricFamily, Metric
from exporter_agent.options import Option, regex

RECEIVE = ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")
TRANSMIT = ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed")
STATISTICS = tuple(f"receive_{name}" for name in RECEIVE) + tuple(
    f"transmit_{name}" for name in TRANSMIT
)
DEFAULT_DEVICE_EXCLUDE = "^lo$"

# This collector's settings; the COLLECTORS table hands them to config's parser.
DEVICE_EXCLUDE = Option(
    dest="netdev_device_exclude",
    flag="--collector.netdev.device-exclude",
    env="HOMELAB_NETDEV_DEVICE_EXCLUDE",
    default=DEFAULT_DEVICE_EXCLUDE,
    help="regex of network devices to ignore",
    convert=regex,
    metavar="REGEX",
)
OPTIONS = (DEVICE_EXCLUDE,)


def parse_net_dev(text: str) -> dict[str, list[int]]:
    """Map each interface to its 16 counters in /proc/net/dev column order."""
    devices: dict[str, list[int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.rpartition(":")
        if not sep:
            continue
        values = [int(value) for value in rest.split()]
        if len(values) != len(STATISTICS):
            raise ValueError(f"malformed /proc/net/dev line: {line!r}")
        devices[name.strip()] = values
    return devices


class NetdevCollector:
    """Exports ``node_network_{receive,transmit}_*_total{device}`` (bytes, packets, errs, …)."""

    def __init__(self, procfs: str = "/proc", device_filter: DeviceFilter | None = None) -> None:
        self._path = os.path.join(procfs, "net", "dev")
        self._filter = device_filter or DeviceFilter(exclude=DEFAULT_DEVICE_EXCLUDE)

    def collect(self) -> Iterator[Metric]:
        """Yield one counter family per statistic, one sample per reported interface."""
        families = [
            CounterMetricFamily(
                f"node_network_{stat}_total",
                f"Network device statistic {stat}.",
                labels=("device",),
            )
            for stat in STATISTICS
        ]
        for device, values in sorted(parse_net_dev(read_text(self._path)).items()):
            if self._filter.ignored(device):
                continue
            for family, value in zip(families, values, strict=True):
                family.add_metric((device,), value)
        yield from families
