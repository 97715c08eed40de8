"""ECC memory error counts from /sys/devices/system/edac, as node_exporter's ``edac`` collector.

Per memory controller ``mcN``: correctable and uncorrectable errors, and per chip-select row
``csrowN`` the same, with the errors the driver could not place on a row counted under
``csrow="unknown"``. A box without EDAC (no ECC memory, most VMs) has no controllers and
exports nothing; a controller whose counters cannot be read fails the collector.
"""

import os
from collections.abc import Iterator

from exporter_agent.collectors.sysfs import read_value
from exporter_agent.metrics import CounterMetricFamily, Metric

DIGITS = "0123456789"


def _numbered(directory: str, prefix: str) -> list[tuple[str, str]]:
    """``(number, path)`` of the entries named PREFIX<digits>, as node_exporter globs them."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        number = entry[len(prefix) :]
        # Go's glob PREFIX[0-9]* wants one digit after the prefix; the number is the digits.
        if entry.startswith(prefix) and number[:1] and number[0] in DIGITS:
            digits = number[: len(number) - len(number.lstrip(DIGITS))]
            found.append((digits, os.path.join(directory, entry)))
    return sorted(found, key=lambda item: int(item[0]))


def _count(directory: str, name: str) -> int:
    return int(read_value(os.path.join(directory, name)).strip())


class EdacCollector:
    """Exports ``node_edac_{correctable,uncorrectable}_errors_total{controller}`` and per csrow."""

    def __init__(self, sysfs: str = "/sys") -> None:
        self._mc_dir = os.path.join(sysfs, "devices", "system", "edac", "mc")

    def collect(self) -> Iterator[Metric]:
        """Yield the four counter families; nothing on a box without EDAC controllers."""
        controllers = _numbered(self._mc_dir, "mc")
        if not controllers:
            return
        ce = CounterMetricFamily(
            "node_edac_correctable_errors_total",
            "Total correctable memory errors.",
            labels=("controller",),
        )
        ue = CounterMetricFamily(
            "node_edac_uncorrectable_errors_total",
            "Total uncorrectable memory errors.",
            labels=("controller",),
        )
        row_ce = CounterMetricFamily(
            "node_edac_csrow_correctable_errors_total",
            "Total correctable memory errors for this csrow.",
            labels=("controller", "csrow"),
        )
        row_ue = CounterMetricFamily(
            "node_edac_csrow_uncorrectable_errors_total",
            "Total uncorrectable memory errors for this csrow.",
            labels=("controller", "csrow"),
        )
        for number, directory in controllers:
            ce.add_metric((number,), _count(directory, "ce_count"))
            row_ce.add_metric((number, "unknown"), _count(directory, "ce_noinfo_count"))
            ue.add_metric((number,), _count(directory, "ue_count"))
            row_ue.add_metric((number, "unknown"), _count(directory, "ue_noinfo_count"))
            for row, row_dir in _numbered(directory, "csrow"):
                row_ce.add_metric((number, row), _count(row_dir, "ce_count"))
                row_ue.add_metric((number, row), _count(row_dir, "ue_count"))
        yield from (ce, ue, row_ce, row_ue)
