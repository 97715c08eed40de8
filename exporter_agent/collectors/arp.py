"""ARP table size per interface from /proc/net/arp, as node_exporter's ``arp`` collector."""

import os
from collections import Counter
from collections.abc import Iterator

from exporter_agent.collectors.util import DeviceFilter, read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric
from exporter_agent.options import Option, regex

DEVICE_INCLUDE = Option(
    dest="arp_device_include",
    flag="--collector.arp.device-include",
    env="HOMELAB_ARP_DEVICE_INCLUDE",
    default=None,
    help="regex of ARP devices to report (all when unset)",
    convert=regex,
    metavar="REGEX",
)
DEVICE_EXCLUDE = Option(
    dest="arp_device_exclude",
    flag="--collector.arp.device-exclude",
    env="HOMELAB_ARP_DEVICE_EXCLUDE",
    default=None,
    help="regex of ARP devices to ignore",
    convert=regex,
    metavar="REGEX",
)
OPTIONS = (DEVICE_INCLUDE, DEVICE_EXCLUDE)


class ArpCollector:
    """Exports ``node_arp_entries{device}``: every line of the table counts, like node_exporter."""

    def __init__(self, procfs: str = "/proc", device_filter: DeviceFilter | None = None) -> None:
        self._path = os.path.join(procfs, "net", "arp")
        self._filter = device_filter or DeviceFilter()

    def collect(self) -> Iterator[Metric]:
        """Yield one gauge family with a sample per reported device."""
        counts: Counter[str] = Counter()
        for line in read_text(self._path).splitlines()[1:]:
            columns = line.split()
            if columns:
                counts[columns[-1]] += 1
        family = GaugeMetricFamily("node_arp_entries", "ARP entries by device", labels=("device",))
        for device, count in sorted(counts.items()):
            if not self._filter.ignored(device):
                family.add_metric((device,), count)
        yield family
