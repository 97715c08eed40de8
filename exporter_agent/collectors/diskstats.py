"""Block device I/O counters from /proc/diskstats, as node_exporter's ``diskstats`` collector."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import DeviceFilter, read_text
from exporter_agent.metrics import CounterMetricFamily, GaugeMetricFamily, Metric
from exporter_agent.options import Option, regex

# node_exporter reports bytes from 512-byte sectors whatever the device's sector size.
SECTOR_BYTES = 512.0
MS = 0.001
DEFAULT_DEVICE_EXCLUDE = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"

# This collector's settings; the COLLECTORS table hands them to config's parser.
UDEV_DATA = Option(
    dest="udev_data",
    flag="--path.udev.data",
    env="HOMELAB_PATH_UDEV_DATA",
    default="/run/udev/data",
    help="udev database, for node_disk_info labels",
    metavar="PATH",
)
DEVICE_EXCLUDE = Option(
    dest="diskstats_device_exclude",
    flag="--collector.diskstats.device-exclude",
    env="HOMELAB_DISKSTATS_DEVICE_EXCLUDE",
    default=DEFAULT_DEVICE_EXCLUDE,
    help="regex of block devices to ignore",
    convert=regex,
    metavar="REGEX",
)
OPTIONS = (UDEV_DATA, DEVICE_EXCLUDE)

# (column after the device name, metric name, help, scale, is_counter); columns per
# Documentation/admin-guide/iostats.rst. Columns 11+ exist only on newer kernels.
COLUMNS = (
    (0, "reads_completed_total", "The total number of reads completed successfully.", 1, True),
    (1, "reads_merged_total", "The total number of reads merged.", 1, True),
    (2, "read_bytes_total", "The total number of bytes read successfully.", SECTOR_BYTES, True),
    (3, "read_time_seconds_total", "The total number of seconds spent by all reads.", MS, True),
    (4, "writes_completed_total", "The total number of writes completed successfully.", 1, True),
    (5, "writes_merged_total", "The number of writes merged.", 1, True),
    (
        6,
        "written_bytes_total",
        "The total number of bytes written successfully.",
        SECTOR_BYTES,
        True,
    ),
    (
        7,
        "write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        MS,
        True,
    ),
    (8, "io_now", "The number of I/Os currently in progress.", 1, False),
    (9, "io_time_seconds_total", "Total seconds spent doing I/Os.", MS, True),
    (
        10,
        "io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        MS,
        True,
    ),
    (
        11,
        "discards_completed_total",
        "The total number of discards completed successfully.",
        1,
        True,
    ),
    (12, "discards_merged_total", "The total number of discards merged.", 1, True),
    (
        13,
        "discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        1,
        True,
    ),
    (
        14,
        "discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        MS,
        True,
    ),
    (
        15,
        "flush_requests_total",
        "The total number of flush requests completed successfully",
        1,
        True,
    ),
    (
        16,
        "flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        MS,
        True,
    ),
)
INFO_LABELS = ("device", "major", "minor", "path", "wwn", "model", "serial", "revision")
# udev property feeding each node_disk_info label.
UDEV_KEYS = {
    "path": "ID_PATH",
    "wwn": "ID_WWN",
    "model": "ID_MODEL",
    "serial": "ID_SERIAL_SHORT",
    "revision": "ID_REVISION",
}


def read_udev_properties(path: str) -> dict[str, str]:
    """Return the ``E:KEY=value`` properties of one udev database entry ({} when absent)."""
    try:
        text = read_text(path)
    except OSError:
        return {}
    properties = {}
    for line in text.splitlines():
        if line.startswith("E:"):
            key, _, value = line[2:].partition("=")
            properties[key] = value
    return properties


class DiskstatsCollector:
    """Exports ``node_disk_read_bytes_total{device}``, ``…_written_bytes_total``, ``…_io_time…``."""

    def __init__(
        self,
        procfs: str = "/proc",
        udev_data: str = "/run/udev/data",
        device_filter: DeviceFilter | None = None,
    ) -> None:
        self._path = os.path.join(procfs, "diskstats")
        self._udev_data = udev_data
        self._filter = device_filter or DeviceFilter(exclude=DEFAULT_DEVICE_EXCLUDE)

    def collect(self) -> Iterator[Metric]:
        """Yield node_disk_info and one family per diskstats column the kernel provides."""
        info = GaugeMetricFamily(
            "node_disk_info", "Info of /sys/block/<block_device>.", labels=INFO_LABELS
        )
        families = [
            (CounterMetricFamily if counter else GaugeMetricFamily)(
                f"node_disk_{name}", help_text, labels=("device",)
            )
            for _, name, help_text, _, counter in COLUMNS
        ]
        for line in read_text(self._path).splitlines():
            fields = line.split()
            if len(fields) < 14:
                raise ValueError(f"malformed /proc/diskstats line: {line!r}")
            major, minor, device = fields[:3]
            if self._filter.ignored(device):
                continue
            values = [float(value) for value in fields[3:]]
            udev = read_udev_properties(os.path.join(self._udev_data, f"b{major}:{minor}"))
            info.add_metric(
                (
                    device,
                    major,
                    minor,
                    *(udev.get(UDEV_KEYS[label], "") for label in INFO_LABELS[3:]),
                ),
                1,
            )
            for family, (column, _, _, scale, _) in zip(families, COLUMNS, strict=True):
                if column < len(values):
                    family.add_metric((device,), values[column] * scale)
        yield info
        for family in families:
            if family.samples:
                yield family
