"""Per-CPU packet processing counts from /proc/net/softnet_stat, as node_exporter's ``softnet``."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import CounterMetricFamily, Metric

# Columns (hex): 0 processed, 1 dropped, 2 time_squeezed, ..., 12 CPU index (kernel 5.10+).
CPU_INDEX_COLUMN = 12


class SoftnetCollector:
    """Exports ``node_softnet_{processed,dropped,times_squeezed}_total{cpu}``."""

    def __init__(self, procfs: str = "/proc") -> None:
        self._path = os.path.join(procfs, "net", "softnet_stat")

    def collect(self) -> Iterator[Metric]:
        """Yield the three counters; the CPU is the kernel's index, else the line number."""
        processed = CounterMetricFamily(
            "node_softnet_processed_total", "Number of processed packets", labels=("cpu",)
        )
        dropped = CounterMetricFamily(
            "node_softnet_dropped_total", "Number of dropped packets", labels=("cpu",)
        )
        squeezed = CounterMetricFamily(
            "node_softnet_times_squeezed_total",
            "Number of times processing packets ran out of quota",
            labels=("cpu",),
        )
        for number, line in enumerate(read_text(self._path).splitlines()):
            columns = line.split()
            if len(columns) < 11:  # every kernel since 2.6 writes at least 11 columns
                raise ValueError(f"malformed softnet_stat line: {line!r}")
            # Offline CPUs have no line, so the line number is only right without the index.
            cpu = str(
                int(columns[CPU_INDEX_COLUMN], 16) if len(columns) > CPU_INDEX_COLUMN else number
            )
            processed.add_metric((cpu,), int(columns[0], 16))
            dropped.add_metric((cpu,), int(columns[1], 16))
            squeezed.add_metric((cpu,), int(columns[2], 16))
        yield processed
        yield dropped
        yield squeezed
