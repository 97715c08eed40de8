"""Hardware sensors from /sys/class/hwmon, as node_exporter 1.5's ``hwmon`` collector.

Every sensor type node_exporter knows (temperatures, voltages, fans, currents, power, energy,
humidity, intrusion, pwm) with its element names, units and quirks kept, so dashboards and
alerts written for node_exporter match: ``temp1_crit_alarm`` is exported as
``node_hwmon_temp_crit_alarm_celsius`` (scaled by 0.001), ``fan1_alarm`` as
``node_hwmon_fan_alarm``, ``beep_enable`` under the sensor name ``beep_enable0``. Sensor files
are read from the chip directory and from its ``device`` directory, each file once; a file
that cannot be read or is not a number is left out. A host without sensors (most VMs) yields
no series at all: an absent ``node_hwmon_temp_celsius`` means "no sensor", never "0 °C".
"""

import contextlib
import os
import re
from collections.abc import Callable, Iterator

from exporter_agent.collectors.sysfs import read_value
from exporter_agent.collectors.util import read_stripped
from exporter_agent.metrics import CounterMetricFamily, GaugeMetricFamily, Metric

_INVALID = re.compile(r"[^a-z0-9:_]")
SENSOR_TYPES = frozenset(
    ("vrm", "beep_enable", "update_interval", "in", "cpu", "fan", "pwm", "temp", "curr",
     "power", "energy", "humidity", "intrusion")
)  # fmt: skip
MILLI = 0.001
DIGITS = "0123456789"
Family = GaugeMetricFamily | CounterMetricFamily


def _milli(value: float) -> float:
    return value * MILLI  # multiplied, as node_exporter does, so values print identically


def _micro(value: float) -> float:
    return value / 1_000_000.0


def _same(value: float) -> float:
    return value


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


def split_sensor_file(filename: str) -> tuple[str, str, str] | None:
    """``(type, number, property)`` of a sensor file name as node_exporter splits it.

    ``temp1_crit_alarm`` → ``("temp", "1", "crit_alarm")``; ``beep_enable`` → ``("beep_enable",
    "0", "")``; None for a name that is not ``<type><digits>[_<property>]``. The number is
    normalised (``temp01`` is ``temp1``), as node_exporter's ``strconv.Atoi`` does.
    """
    length = len(filename)
    start = 0
    while start < length and filename[start] not in DIGITS:
        start += 1
    if start == 0:
        return None
    end = start
    while end < length and filename[end] in DIGITS:
        end += 1
    number = str(int(filename[start:end])) if end > start else "0"
    if end == length:
        return filename[:start], number, ""
    if filename[end] == "_" and end + 1 < length:
        return filename[:start], number, filename[end + 1 :]
    return None


def element_metric(
    kind: str, element: str, has_bare: bool
) -> tuple[str, str, Callable[[float], float], bool]:
    """``(name, help, unit conversion, is_counter)`` of sensor type ``kind``'s ``element``.

    ``has_bare`` says whether the sensor also has a file without a property (``temp1``),
    which then takes the plain name and ``input`` gets ``_input``.
    """
    name = f"node_hwmon_{kind}"
    if element == "input":
        name += "_input" if has_bare else ""
    elif element:
        name += "_" + clean_name(element)
    if element in ("fault", "alarm"):
        return name, f"Hardware sensor {element} status ({kind})", _same, False
    if element == "beep":
        return name + "_enabled", "Hardware monitor sensor has beeping enabled", _same, False
    if kind in ("in", "cpu"):
        return name + "_volts", f"Hardware monitor for voltage ({element})", _milli, False
    if kind == "temp" and element != "type":
        help_text = f"Hardware monitor for temperature ({element or 'input'})"
        return name + "_celsius", help_text, _milli, False
    if kind == "curr":
        return name + "_amps", f"Hardware monitor for current ({element})", _milli, False
    if kind == "energy":
        help_text = f"Hardware monitor for joules used so far ({element})"
        return name + "_joule_total", help_text, _micro, True
    if kind == "power" and element == "accuracy":
        return name, "Hardware monitor power meter accuracy, as a ratio", _micro, False
    if kind == "power" and element in ("average_interval", "average_interval_min",
                                       "average_interval_max"):  # fmt: skip
        help_text = f"Hardware monitor power usage update interval ({element})"
        return name + "_seconds", help_text, _milli, False
    if kind == "power":
        help_text = f"Hardware monitor for power usage in watts ({element})"
        return name + "_watt", help_text, _micro, False
    if kind == "humidity":
        help_text = (
            "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the "
            f"humidity as a percentage) ({element})"
        )
        return name, help_text, _micro, False
    if kind == "fan" and element in ("input", "min", "max", "target"):
        help_text = f"Hardware monitor for fan revolutions per minute ({element})"
        return name + "_rpm", help_text, _same, False
    return name, f"Hardware monitor {kind} element {element}", _same, False


# Sensor types whose single value is their bare file: (metric, help, unit conversion).
SINGLE_VALUE: dict[str, tuple[str, str, Callable[[float], float]]] = {
    "vrm": ("node_hwmon_voltage_regulator_version", "Hardware voltage regulator", _same),
    "update_interval": (
        "node_hwmon_update_interval_seconds",
        "Hardware monitor update interval",
        _milli,
    ),
}


class HwmonCollector:
    """Exports ``node_hwmon_temp_celsius{chip,sensor}``, fans, voltages, alarms, chip names, …"""

    def __init__(self, sysfs: str = "/sys") -> None:
        self._class_dir = os.path.join(sysfs, "class", "hwmon")

    def _chips(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self._class_dir))
        except FileNotFoundError:
            return []
        paths = (os.path.join(self._class_dir, entry) for entry in entries)
        return [path for path in paths if os.path.isdir(path)]

    def collect(self) -> Iterator[Metric]:
        """Yield every sensor family with samples; nothing when the host has no sensors."""
        families: dict[str, Family] = {}
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
            chip = chip_name(directory)
            with contextlib.suppress(OSError):
                chip_type = clean_name(read_stripped(os.path.join(directory, "name")))
                if chip_type:
                    names.add_metric((chip, chip_type), 1)
            for (kind, sensor), data in sorted(_sensor_data(directory).items()):
                if "label" in data:
                    labels.add_metric((chip, sensor, data["label"]), 1)
                _add_sensor(families, (chip, sensor), kind, data)
        for family in (names, *families.values(), labels):
            if family.samples:
                yield family

    def temperatures(self) -> list[float]:
        """Every readable ``temp*_input`` in °C (for the heartbeat's hottest reading)."""
        readings = []
        for directory in self._chips():
            for filename, path in _sensor_files(directory):
                if not (filename.startswith("temp") and filename.endswith("_input")):
                    continue
                try:
                    readings.append(float(read_value(path)) * MILLI)
                except (OSError, ValueError):
                    continue  # a sleeping or faulty sensor; the others still count
        return readings


def _sensor_files(directory: str) -> list[tuple[str, str]]:
    """``(name, path)`` of a chip's files: its own, then its ``device`` directory's.

    Older kernels keep the sensor files in the device directory; node_exporter reads both.
    """
    files = [(name, os.path.join(directory, name)) for name in sorted(os.listdir(directory))]
    device = os.path.join(directory, "device")
    if os.path.isdir(device):
        files += [(name, os.path.join(device, name)) for name in sorted(os.listdir(device))]
    return files


def _sensor_data(directory: str) -> dict[tuple[str, str], dict[str, str]]:
    """Map each (type, sensor) (``temp``, ``temp1``) to its readable properties
    (``{"input": "45000", …}``)."""
    data: dict[tuple[str, str], dict[str, str]] = {}
    for filename, path in _sensor_files(directory):
        parts = split_sensor_file(filename)
        if parts is None or parts[0] not in SENSOR_TYPES:
            continue
        kind, number, prop = parts
        try:
            value = read_value(path)
        except OSError:
            # Sensors that are asleep or faulty answer reads with EIO/ENODATA/EAGAIN.
            continue
        data.setdefault((kind, kind + number), {})[prop] = value
    return data


def _add_sensor(
    families: dict[str, Family], labels: tuple[str, str], kind: str, data: dict[str, str]
) -> None:
    """Add one sensor's samples to ``families`` (created on first use, keyed by name)."""
    if kind == "beep_enable":
        value = 1.0 if data.get("") == "1" else 0.0
        _family(families, "node_hwmon_beep_enabled", "Hardware beep enabled", False).add_metric(
            labels, value
        )
        return
    if kind in SINGLE_VALUE:
        name, help_text, convert = SINGLE_VALUE[kind]
        parsed = _number(data.get(""))
        if parsed is not None:
            _family(families, name, help_text, False).add_metric(labels, convert(parsed))
        return
    for element, raw in data.items():
        if element == "label":
            continue
        parsed = _number(raw)
        if parsed is None:
            continue
        name, help_text, convert, counter = element_metric(kind, element, "" in data)
        _family(families, name, help_text, counter).add_metric(labels, convert(parsed))


def _family(families: dict[str, Family], name: str, help_text: str, counter: bool) -> Family:
    if name not in families:
        kind = CounterMetricFamily if counter else GaugeMetricFamily
        families[name] = kind(name, help_text, labels=("chip", "sensor"))
    return families[name]


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None
