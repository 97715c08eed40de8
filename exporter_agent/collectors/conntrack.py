"""Connection tracking table use, as node_exporter's ``conntrack`` collector.

Reads /proc/sys/net/netfilter/nf_conntrack_{count,max} and, when present, the per-CPU
statistics in /proc/net/stat/nf_conntrack (hex, summed over CPUs as node_exporter does).
Without the nf_conntrack module the sysctls are missing and the collector fails, which is
node_exporter's ``success 0`` too.
"""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_stripped, read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric

# Column of /proc/net/stat/nf_conntrack -> (metric name suffix, help).
STATS = {
    "found": ("found", "Number of searched entries which were successful."),
    "invalid": ("invalid", "Number of packets seen which can not be tracked."),
    "ignore": (
        "ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    "insert": ("insert", "Number of entries inserted into the list."),
    "insert_failed": (
        "insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    "drop": ("drop", "Number of packets dropped due to conntrack failure."),
    "early_drop": (
        "early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size "
        "was reached.",
    ),
    "search_restart": (
        "search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
}


def parse_conntrack_stat(text: str) -> dict[str, int]:
    """Sum each column of /proc/net/stat/nf_conntrack over the per-CPU lines, by header name."""
    lines = text.splitlines()
    if not lines:
        raise ValueError("empty nf_conntrack statistics")
    header = lines[0].split()
    totals = dict.fromkeys(header, 0)
    for line in lines[1:]:
        values = line.split()
        if len(values) != len(header):
            raise ValueError(f"malformed nf_conntrack statistics line: {line!r}")
        for name, value in zip(header, values, strict=True):
            totals[name] += int(value, 16)
    return totals


class ConntrackCollector:
    """Exports ``node_nf_conntrack_entries``, ``…_entries_limit`` and ``…_stat_*``."""

    def __init__(self, procfs: str = "/proc") -> None:
        netfilter = os.path.join(procfs, "sys", "net", "netfilter")
        self._count = os.path.join(netfilter, "nf_conntrack_count")
        self._max = os.path.join(netfilter, "nf_conntrack_max")
        self._stat = os.path.join(procfs, "net", "stat", "nf_conntrack")

    def collect(self) -> Iterator[Metric]:
        """Yield the table size and limit, then the summed statistics if the kernel has them."""
        yield GaugeMetricFamily(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            value=int(read_stripped(self._count)),
        )
        yield GaugeMetricFamily(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            value=int(read_stripped(self._max)),
        )
        try:
            totals = parse_conntrack_stat(read_text(self._stat))
        except FileNotFoundError:
            return
        for column, (suffix, help_text) in STATS.items():
            if column in totals:
                yield GaugeMetricFamily(
                    f"node_nf_conntrack_stat_{suffix}", help_text, value=totals[column]
                )
