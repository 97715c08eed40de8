"""System time, time zone and clocksource, as node_exporter's ``time`` collector."""

import glob
import os
import time
from collections.abc import Callable, Iterator

from exporter_agent.collectors.util import read_stripped
from exporter_agent.metrics import GaugeMetricFamily, Metric

CLOCKSOURCE_DIR = "devices/system/clocksource"


class TimeCollector:
    """Exports ``node_time_seconds``, ``node_time_zone_offset_seconds`` and clocksource info."""

    def __init__(
        self,
        sysfs: str = "/sys",
        clock: Callable[[], float] = time.time,
        localtime: Callable[[float], time.struct_time] = time.localtime,
    ) -> None:
        self._clocksources = os.path.join(sysfs, CLOCKSOURCE_DIR, "clocksource*")
        self._clock = clock
        self._localtime = localtime

    def collect(self) -> Iterator[Metric]:
        """Yield the current time, the local zone's offset and the kernel's clocksources."""
        now = self._clock()
        yield GaugeMetricFamily(
            "node_time_seconds", "System time in seconds since epoch (1970).", value=now
        )
        local = self._localtime(now)
        zone = GaugeMetricFamily(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            labels=("time_zone",),
        )
        zone.add_metric((local.tm_zone,), float(local.tm_gmtoff))
        yield zone
        yield from self._clocksource_families()

    def _clocksource_families(self) -> Iterator[Metric]:
        available = GaugeMetricFamily(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            labels=("clocksource", "device"),
        )
        current = GaugeMetricFamily(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            labels=("clocksource", "device"),
        )
        for path in sorted(glob.glob(self._clocksources)):
            device = os.path.basename(path)[len("clocksource") :]
            try:
                names = read_stripped(os.path.join(path, "available_clocksource")).split()
                chosen = read_stripped(os.path.join(path, "current_clocksource"))
            except OSError:
                continue
            for name in names:
                available.add_metric((name, device), 1)
            current.add_metric((chosen, device), 1)
        if available.samples:
            yield available
            yield current
