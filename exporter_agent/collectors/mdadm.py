"""Linux software RAID from /proc/mdstat, as node_exporter's ``mdadm`` collector.

Parsed the way node_exporter 1.5's procfs library parses it, so the same file gives the same
series: the state word of the device line, the ``[n/m] [UU_]`` status (raid0 and linear arrays
count their members instead), ``(F)``/``(S)`` members, and the recovery, resync or check line
with its ``(synced/total)`` blocks. Without /proc/mdstat (no md driver loaded) there is no
array and nothing to export; node_exporter reports that as a failed collector, the agent as a
successful empty one, as for hwmon. A file it cannot parse fails the collector.
"""

import os
from collections.abc import Iterator
from typing import NamedTuple

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric

# node_md_state's state label, and the activity state of the parse that sets it to 1.
STATES = (
    ("active", "active"),
    ("inactive", "inactive"),
    ("recovering", "recovering"),
    ("resync", "resyncing"),
    ("check", "checking"),
)


class MdStat(NamedTuple):
    """One md device as node_exporter sees it."""

    name: str
    state: str
    disks_active: int
    disks_total: int
    disks_failed: int
    disks_spare: int
    blocks_total: int
    blocks_synced: int


def parse_mdstat(text: str) -> list[MdStat]:
    """Every md device in /proc/mdstat's ``text``; raises ValueError on a malformed device."""
    lines = text.split("\n")
    devices = []
    for i, line in enumerate(lines):
        if not line.strip() or line[0] == " " or line.startswith(("Personalities", "unused")):
            continue
        fields = line.split()
        if len(fields) < 3:
            raise ValueError(f"not enough fields in mdline (expected at least 3): {line!r}")
        name, state = fields[0], fields[2]
        if len(lines) <= i + 3:
            raise ValueError(f"too few lines for md device {name}")
        active, total, size = _status(line, lines[i + 1])
        sync_line = lines[i + 3] if "bitmap" in lines[i + 2] else lines[i + 2]
        synced = size
        if "recovery" in sync_line or "resync" in sync_line or "check" in sync_line:
            if "recovery" in sync_line:
                state = "recovering"
            elif "check" in sync_line:
                state = "checking"
            else:
                state = "resyncing"
            delayed = "PENDING" in sync_line or "DELAYED" in sync_line
            synced = 0 if delayed else _synced_blocks(sync_line)
        devices.append(
            MdStat(
                name=name,
                state=state,
                disks_active=active,
                disks_total=total,
                disks_failed=line.count("(F)"),
                disks_spare=line.count("(S)"),
                blocks_total=size,
                blocks_synced=synced,
            )
        )
    return devices


def _status(device_line: str, status_line: str) -> tuple[int, int, int]:
    """(active disks, required disks, blocks) from a device's first two lines."""
    fields = status_line.split()
    if not fields:
        raise ValueError(f"unexpected status line {status_line!r}")
    size = int(fields[0])
    if "raid0" in device_line or "linear" in device_line:
        # No [n/m] for these: every member, counted by its [slot], is required and active.
        members = device_line.count("[")
        return members, members, size
    if "inactive" in device_line:
        return 0, 0, size
    if "blocks" not in fields:
        raise ValueError(f"no block count in status line {status_line!r}")
    # The last "[required/active] [U_…]" pair, as procfs's greedy regex finds it.
    for index in range(len(fields) - 2, 0, -1):
        counts, up = fields[index], fields[index + 1]
        if _bracketed(counts) and _bracketed(up) and set(up[1:-1]) <= {"U", "_"}:
            required, _, active = counts[1:-1].partition("/")
            if required.isdecimal() and active.isdecimal():
                return int(active), int(required), size
    raise ValueError(f"no [n/m] [U_] status in {status_line!r}")


def _bracketed(token: str) -> bool:
    return len(token) > 2 and token[0] == "[" and token[-1] == "]"


def _synced_blocks(sync_line: str) -> int:
    """The ``synced`` of the first ``(synced/total)`` in a recovery/resync/check line."""
    start = sync_line.find("(")
    while start != -1:
        end = sync_line.find(")", start)
        synced, slash, total = sync_line[start + 1 : end].partition("/")
        if end != -1 and slash and synced.isdecimal() and total.isdecimal():
            return int(synced)
        start = sync_line.find("(", start + 1)
    raise ValueError(f"unexpected recovery line {sync_line!r}")


class MdadmCollector:
    """Exports ``node_md_state{device,state}``, ``node_md_disks{device,state}``, blocks, …"""

    def __init__(self, procfs: str = "/proc") -> None:
        self._path = os.path.join(procfs, "mdstat")

    def collect(self) -> Iterator[Metric]:
        """Yield the five families, one sample (per state) per md device."""
        try:
            text = read_text(self._path)
        except FileNotFoundError:
            return
        devices = parse_mdstat(text)
        if not devices:
            return
        required = GaugeMetricFamily(
            "node_md_disks_required", "Total number of disks of device.", labels=("device",)
        )
        disks = GaugeMetricFamily(
            "node_md_disks",
            "Number of active/failed/spare disks of device.",
            labels=("device", "state"),
        )
        state = GaugeMetricFamily(
            "node_md_state", "Indicates the state of md-device.", labels=("device", "state")
        )
        blocks = GaugeMetricFamily(
            "node_md_blocks", "Total number of blocks on device.", labels=("device",)
        )
        synced = GaugeMetricFamily(
            "node_md_blocks_synced", "Number of blocks synced on device.", labels=("device",)
        )
        for md in devices:
            required.add_metric((md.name,), md.disks_total)
            disks.add_metric((md.name, "active"), md.disks_active)
            disks.add_metric((md.name, "failed"), md.disks_failed)
            disks.add_metric((md.name, "spare"), md.disks_spare)
            for label, activity in STATES:
                state.add_metric((md.name, label), 1.0 if md.state == activity else 0.0)
            blocks.add_metric((md.name,), md.blocks_total)
            synced.add_metric((md.name,), md.blocks_synced)
        yield from (required, disks, state, blocks, synced)
