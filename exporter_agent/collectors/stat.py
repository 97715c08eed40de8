"""Kernel counters from /proc/stat (boot time, forks, …), as node_exporter's ``stat`` collector."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import CounterMetricFamily, GaugeMetricFamily, Metric

# /proc/stat key -> (metric name, help, is_counter)
FIELDS = {
    "intr": ("node_intr_total", "Total number of interrupts serviced.", True),
    "ctxt": ("node_context_switches_total", "Total number of context switches.", True),
    "btime": ("node_boot_time_seconds", "Node boot time, in unixtime.", False),
    "processes": ("node_forks_total", "Total number of forks.", True),
    "procs_running": ("node_procs_running", "Number of processes in runnable state.", False),
    "procs_blocked": (
        "node_procs_blocked",
        "Number of processes blocked waiting for I/O to complete.",
        False,
    ),
}


class StatCollector:
    """Exports ``node_boot_time_seconds``, ``node_context_switches_total`` and friends."""

    def __init__(self, procfs: str = "/proc") -> None:
        self._path = os.path.join(procfs, "stat")

    def collect(self) -> Iterator[Metric]:
        """Yield one family per known /proc/stat key, in node_exporter's order."""
        values = {}
        for line in read_text(self._path).splitlines():
            key, _, rest = line.partition(" ")
            if key in FIELDS:
                values[key] = float(rest.split()[0])
        for key, (name, help_text, is_counter) in FIELDS.items():
            if key not in values:
                continue
            family = CounterMetricFamily if is_counter else GaugeMetricFamily
            yield family(name, help_text, value=values[key])
