"""Open file handles from /proc/sys/fs/file-nr, as node_exporter's ``filefd`` collector."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric


class FilefdCollector:
    """Exports ``node_filefd_allocated`` and ``node_filefd_maximum``."""

    def __init__(self, procfs: str = "/proc") -> None:
        self._path = os.path.join(procfs, "sys", "fs", "file-nr")

    def collect(self) -> Iterator[Metric]:
        """Yield both gauges; the file is "allocated unused maximum"."""
        fields = read_text(self._path).split()
        if len(fields) != 3:
            raise ValueError(f"malformed {self._path}: {fields!r}")
        allocated, _, maximum = (float(int(value)) for value in fields)
        yield GaugeMetricFamily(
            "node_filefd_allocated", "File descriptor statistics: allocated.", value=allocated
        )
        yield GaugeMetricFamily(
            "node_filefd_maximum", "File descriptor statistics: maximum.", value=maximum
        )
