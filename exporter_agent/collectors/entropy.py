"""Kernel entropy pool from /proc/sys/kernel/random, as node_exporter's ``entropy`` collector."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_stripped
from exporter_agent.metrics import GaugeMetricFamily, Metric


class EntropyCollector:
    """Exports ``node_entropy_available_bits`` and ``node_entropy_pool_size_bits``."""

    def __init__(self, procfs: str = "/proc") -> None:
        random = os.path.join(procfs, "sys", "kernel", "random")
        self._available = os.path.join(random, "entropy_avail")
        self._pool_size = os.path.join(random, "poolsize")

    def collect(self) -> Iterator[Metric]:
        """Yield both gauges; raises OSError/ValueError if either file is missing or garbage."""
        available = int(read_stripped(self._available))
        pool_size = int(read_stripped(self._pool_size))
        yield GaugeMetricFamily(
            "node_entropy_available_bits", "Bits of available entropy.", value=available
        )
        yield GaugeMetricFamily(
            "node_entropy_pool_size_bits", "Bits of entropy pool.", value=pool_size
        )
