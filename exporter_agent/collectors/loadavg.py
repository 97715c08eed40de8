"""Load averages from /proc/loadavg, as node_exporter's ``loadavg`` collector."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages of /proc/loadavg; ValueError when malformed."""
    fields = text.split()
    if len(fields) < 3:
        raise ValueError("malformed /proc/loadavg")
    return float(fields[0]), float(fields[1]), float(fields[2])


class LoadavgCollector:
    """Exports ``node_load1``, ``node_load5`` and ``node_load15``."""

    def __init__(self, procfs: str = "/proc") -> None:
        self._path = os.path.join(procfs, "loadavg")

    def collect(self) -> Iterator[Metric]:
        """Yield the three load averages; raises ValueError on a malformed file."""
        loads = parse_loadavg(read_text(self._path))
        for minutes, value in zip(("1", "5", "15"), loads, strict=True):
            yield GaugeMetricFamily(f"node_load{minutes}", f"{minutes}m load average.", value=value)
