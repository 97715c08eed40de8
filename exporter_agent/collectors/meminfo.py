"""Every /proc/meminfo field, as node_exporter's ``meminfo`` collector exports it."""

import os
import re
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric

_PARENS = re.compile(r"\((.*)\)")
# The kernel's field names never change while it runs: node_exporter's key for each raw
# name ("Active(anon):") is worked out once.
_KEYS: dict[str, str] = {}


def _key(raw: str) -> str:
    key = _KEYS.get(raw)
    if key is None:
        key = raw[:-1]
        if "(" in key:
            key = _PARENS.sub(r"_\1", key)
        _KEYS[raw] = key
    return key


def parse_meminfo(text: str) -> dict[str, float]:
    """Map node_exporter's key (``Active_anon_bytes``) to its value, kB fields times 1024."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (2, 3) or not parts[0].endswith(":"):
            raise ValueError(f"malformed /proc/meminfo line: {line!r}")
        if len(parts) == 3:
            # node_exporter presumes the unit is kB.
            values[_key(parts[0]) + "_bytes"] = float(parts[1]) * 1024
        else:
            values[_key(parts[0])] = float(parts[1])
    return values


class MeminfoCollector:
    """Exports ``node_memory_<Field>_bytes`` gauges (``MemTotal``, ``MemAvailable``, …)."""

    def __init__(self, procfs: str = "/proc") -> None:
        self._path = os.path.join(procfs, "meminfo")
        self._names: dict[str, tuple[str, str]] = {}  # key -> (family name, HELP), built once

    def collect(self) -> Iterator[Metric]:
        """Yield one gauge per meminfo field, byte values identical to node_exporter's."""
        names = self._names
        for key, value in parse_meminfo(read_text(self._path)).items():
            name = names.get(key)
            if name is None:
                name = names[key] = (f"node_memory_{key}", f"Memory information field {key}.")
            yield GaugeMetricFamily(name[0], name[1], value=value)
