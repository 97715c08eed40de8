"""Thermal zones from /sys/class/thermal, as node_exporter's ``thermal_zone`` collector.

A Raspberry Pi has no hwmon temperature sensor, only ``thermal_zone0`` (type ``cpu-thermal``),
so this is where its temperature comes from. Like node_exporter (procfs), a zone whose mode is
``disabled`` or whose files cannot be read is left out; unlike it, a zone whose ``temp`` is not
an integer is left out too instead of failing every zone, as the hwmon collector does with a
broken sensor. Cooling devices are not exported.
"""

import os
import re
from collections.abc import Iterator

from exporter_agent.collectors.util import read_stripped
from exporter_agent.metrics import GaugeMetricFamily, Metric

_ZONE_DIR = re.compile(r"thermal_zone([0-9]+)")
_MILLIDEGREES = re.compile(r"-?[0-9]{1,12}")


class ThermalZoneCollector:
    """Exports ``node_thermal_zone_temp{zone,type}`` in °C, one sample per readable zone."""

    def __init__(self, sysfs: str = "/sys") -> None:
        self._class_dir = os.path.join(sysfs, "class", "thermal")

    def zones(self) -> list[tuple[str, str, float]]:
        """Return ``(zone number, type, °C)`` of every readable enabled zone, by zone number.

        An absent /sys/class/thermal (most VMs) is no zone; one that cannot be listed raises
        OSError.
        """
        try:
            entries = os.listdir(self._class_dir)
        except FileNotFoundError:
            return []
        numbered = sorted(
            (int(match.group(1)), entry)
            for entry in entries
            if (match := _ZONE_DIR.fullmatch(entry))
        )
        zones = []
        for number, entry in numbered:
            reading = _read_zone(os.path.join(self._class_dir, entry))
            if reading is not None:
                zones.append((str(number), *reading))
        return zones

    def temperatures(self) -> list[float]:
        """Every zone's temperature in °C (for the heartbeat's hottest reading)."""
        return [celsius for _, _, celsius in self.zones()]

    def collect(self) -> Iterator[Metric]:
        """Yield the zone temperatures; nothing on a host without thermal zones."""
        family = GaugeMetricFamily(
            "node_thermal_zone_temp", "Zone temperature in Celsius", labels=("zone", "type")
        )
        for zone, zone_type, celsius in self.zones():
            family.add_metric((zone, zone_type), celsius)
        if family.samples:
            yield family


def _read_zone(directory: str) -> tuple[str, float] | None:
    """``(type, °C)`` of one zone, or None when it is disabled, unreadable or malformed."""
    try:
        if _optional(os.path.join(directory, "mode")) == "disabled":
            return None
        zone_type = read_stripped(os.path.join(directory, "type"))
        raw = read_stripped(os.path.join(directory, "temp"))
    except OSError:
        # A sensor that is asleep or gone answers EIO/ENODATA/EAGAIN; the others still count.
        return None
    if not _MILLIDEGREES.fullmatch(raw):
        return None
    # Divided, not multiplied by 0.001, so the value prints exactly as node_exporter's.
    return zone_type, int(raw) / 1000


def _optional(path: str) -> str:
    try:
        return read_stripped(path)
    except (FileNotFoundError, PermissionError):
        return ""
