"""Temperature sensors from /sys/class/hwmon, as node_exporter's ``hwmon`` collector.

Only temperatures are exported. A host without sensors (most VMs) yields no series at all:
an absent ``node_hwmon_temp_celsius`` means "no sensor", never "0 °C".
"""

import contextlib
import os
import re
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter_agent.collectors.util import read_stripped

_INVALID = re.compile(r"[^a-z0-9:_]")
_TEMP_FILE = re.compile(r"^(temp\d+)_(input|max|crit|min|label)$")
ELEMENT_METRIC = {
    "input": "node_hwmon_temp_celsius",
    "crit": "node_hwmon_temp_crit_celsius",
    "max": "node_hwmon_temp_max_celsius",
    "min": "node_hwmon_temp_min_celsius",
}
MILLI = 0.001


def clean_name(raw: str) -> str:
    """Reduce a sysfs name to node_exporter's chip label alphabet ``[a-z0-9:_]``."""
    return _INVALID.sub("_", raw.strip().lower()).strip("_")


def chip_name(hwmon_dir: str) -> str:
    """Derive node_exporter's stable ``chip`` label: from the device path, else the name file."""
    device = os.path.join(hwmon_dir, "device")
    if os.path.exists(device):
        real = os.path.realpath(device)
        parent, dev_name = os.path.split(real)
        dev_type = clean_name(os.path.basename(parent))
        dev_name = clean_name(dev_name)
        if dev_type and dev_name:
            return f"{dev_type}_{dev_name}"
        if dev_name:
            return dev_name
    try:
        name = clean_name(read_stripped(os.path.join(hwmon_dir, "name")))
    except OSError:
        name = ""
    return name or clean_name(os.path.basename(os.path.realpath(hwmon_dir)))


class HwmonCollector:
    """Exports ``node_hwmon_temp_celsius{chip,sensor}`` (+ max/crit/min, chip names, labels)."""

    def __init__(self, sysfs: str = "/sys") -> None:
        self._class_dir = os.path.join(sysfs, "class", "hwmon")

    def _chips(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self._class_dir))
        except FileNotFoundError:
            return []
        return [os.path.join(self._class_dir, entry) for entry in entries]

    def collect(self) -> Iterator[Metric]:
        """Yield temperature families for every chip; nothing when the host has no sensors."""
        families = {
            element: GaugeMetricFamily(
                name, f"Hardware monitor for temperature ({element})", labels=("chip", "sensor")
            )
            for element, name in ELEMENT_METRIC.items()
        }
        names = GaugeMetricFamily(
            "node_hwmon_chip_names",
            "Annotation metric for human-readable chip names",
            labels=("chip", "chip_name"),
        )
        labels = GaugeMetricFamily(
            "node_hwmon_sensor_label",
            "Label for given chip and sensor",
            labels=("chip", "sensor", "label"),
        )
        for directory in self._chips():
            self._collect_chip(directory, families, names, labels)
        for family in (*families.values(), names, labels):
            if family.samples:
                yield family

    def temperatures(self) -> list[float]:
        """Every readable ``temp*_input`` in °C (for the heartbeat's hottest reading)."""
        readings = []
        for directory in self._chips():
            files_dir, files = _sensor_files(directory)
            for filename in sorted(files):
                match = _TEMP_FILE.match(filename)
                if not match or match.group(2) != "input":
                    continue
                try:
                    readings.append(float(read_stripped(os.path.join(files_dir, filename))) * MILLI)
                except (OSError, ValueError):
                    continue  # a sleeping or faulty sensor; the others still count
        return readings

    def _collect_chip(self, directory, families, names, labels) -> None:
        files_dir, files = _sensor_files(directory)
        chip = chip_name(directory)
        with contextlib.suppress(OSError):
            names.add_metric((chip, clean_name(read_stripped(os.path.join(directory, "name")))), 1)
        for filename in sorted(files):
            match = _TEMP_FILE.match(filename)
            if not match:
                continue
            sensor, element = match.groups()
            try:
                raw = read_stripped(os.path.join(files_dir, filename))
            except OSError:
                # Sensors that are asleep or faulty answer reads with EIO/ENODATA.
                continue
            if element == "label":
                labels.add_metric((chip, sensor, raw), 1)
                continue
            try:
                value = float(raw) * MILLI
            except ValueError:
                continue
            families[element].add_metric((chip, sensor), value)


def _sensor_files(directory: str) -> tuple[str, list[str]]:
    """The directory holding a chip's sensor files, and their names."""
    files = os.listdir(directory)
    # Older kernels keep the sensor files in the device directory.
    if not any(_TEMP_FILE.match(f) for f in files) and "device" in files:
        files_dir = os.path.join(directory, "device")
        return files_dir, os.listdir(files_dir)
    return directory, files
