"""Every /proc/meminfo field, as node_exporter's ``meminfo`` collector exports it."""

import os
import re
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter_agent.collectors.util import read_text

_PARENS = re.compile(r"\((.*)\)")


def parse_meminfo(text: str) -> dict[str, float]:
    """Map node_exporter's key (``Active_anon_bytes``) to its value, kB fields times 1024."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (2, 3) or not parts[0].endswith(":"):
            raise ValueError(f"malformed /proc/meminfo line: {line!r}")
        key = parts[0][:-1]
        if "(" in key:
            key = _PARENS.sub(r"_\1", key)
        value = float(parts[1])
        if len(parts) == 3:
            # node_exporter presumes the unit is kB.
            value *= 1024
            key += "_bytes"
        values[key] = value
    return values


class MeminfoCollector:
    """Exports ``node_memory_<Field>_bytes`` gauges (``MemTotal``, ``MemAvailable``, …)."""

    def __init__(self, procfs: str = "/proc") -> None:
        self._path = os.path.join(procfs, "meminfo")

    def collect(self) -> Iterator[Metric]:
        """Yield one gauge per meminfo field, byte values identical to node_exporter's."""
        for key, value in parse_meminfo(read_text(self._path)).items():
            yield GaugeMetricFamily(
                f"node_memory_{key}", f"Memory information field {key}.", value=value
            )
