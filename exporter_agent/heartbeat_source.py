"""The heartbeat summary's figures from /proc and statvfs, computed as psutil 7 does on Linux.

`Summary` (heartbeat_metrics.py) asks its source the six psutil calls it needs; `ProcSource`
answers them from the files the collectors read, with their parsers and ``--path.procfs``,
so the agent runs without psutil (~0.5 MB of RSS and a compiled dependency). Each answer
follows psutil's Linux code, which the tests compare on fixture trees and on the live box:

- CPU: the first /proc/stat line in USER_HZ seconds; busy = all modes but idle and iowait,
  over all modes less guest and guest_nice (counted in user and nice already); a mode going
  backwards counts 0; rounded to 0.1.
- memory: MemAvailable, or the kernel's estimate from MemFree, the file LRU lists,
  SReclaimable and the zones' low watermarks when it is missing or 0 (as `free` does); a
  figure above MemTotal (a container's distorted meminfo) is replaced by MemFree.
- disk: statvfs in ``f_frsize`` units; used = blocks - bfree, percent of used + bavail.
- network: /proc/net/dev bytes per interface; a counter that goes backwards (it wrapped, or
  the interface was reset) has its last value carried on top, as psutil's ``nowrap``.
"""

import os
import time
from collections.abc import Callable
from typing import NamedTuple

from exporter_agent.collectors.cpu import USER_HZ
from exporter_agent.collectors.loadavg import parse_loadavg
from exporter_agent.collectors.meminfo import parse_meminfo
from exporter_agent.collectors.netdev import parse_net_dev
from exporter_agent.collectors.util import read_text

# /proc/stat's cpu columns, in order; psutil's names.
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest",
             "guest_nice")  # fmt: skip
IDLE, IOWAIT, GUEST, GUEST_NICE = 3, 4, 8, 9
# parse_net_dev's columns for received and sent bytes.
RX_BYTES, TX_BYTES = 0, 8


class Memory(NamedTuple):
    """Total and available memory in bytes (psutil's ``virtual_memory()`` fields Summary reads)."""

    total: int
    available: int


class DiskUsage(NamedTuple):
    """A filesystem's size, used and user-available bytes, and its used percent (psutil's)."""

    total: int
    used: int
    free: int
    percent: float


class NicCounters(NamedTuple):
    """Bytes sent and received by one interface since it came up (psutil's field names)."""

    bytes_sent: int
    bytes_recv: int


def cpu_times(stat_text: str) -> list[float]:
    """The system-wide CPU seconds per mode (CPU_MODES; missing ones 0) of /proc/stat's text."""
    fields = stat_text.partition("\n")[0].split()
    if len(fields) < IOWAIT + 2 or fields[0] != "cpu":
        raise ValueError("malformed /proc/stat: no cpu line first")
    times = [float(value) / USER_HZ for value in fields[1 : len(CPU_MODES) + 1]]
    return times + [0.0] * (len(CPU_MODES) - len(times))


def busy_percent(before: list[float], after: list[float]) -> float:
    """The busy share of the CPU time between two `cpu_times`, as psutil's ``cpu_percent``."""
    deltas = [max(0, new - old) for old, new in zip(before, after, strict=True)]
    # Same operations in the same order as psutil, so the rounding agrees to the last digit.
    total = sum(deltas)
    total -= deltas[GUEST]
    total -= deltas[GUEST_NICE]
    busy = total - deltas[IDLE]
    busy -= deltas[IOWAIT]
    try:
        return round(busy / total * 100, 1)
    except ZeroDivisionError:
        return 0.0


def available_memory(meminfo: dict[str, float], zoneinfo: Callable[[], str], page_size: int) -> int:
    """MemAvailable as psutil reads it from `parse_meminfo`'s keys (see the module docstring).

    `zoneinfo` returns /proc/zoneinfo's text; it is read only for the estimate.
    """
    total, free = int(meminfo["MemTotal_bytes"]), int(meminfo["MemFree_bytes"])
    available = int(meminfo.get("MemAvailable_bytes", 0))
    if available == 0:
        available = _estimate_available(meminfo, zoneinfo, page_size)
    if available < 0:
        return 0
    return free if available > total else available


def _estimate_available(meminfo: dict[str, float], zoneinfo: Callable[[], str],
                        page_size: int) -> int:  # fmt: skip
    """The kernel's MemAvailable formula (commit 34e431b0ae39), as psutil and `free` apply it."""
    free = int(meminfo["MemFree_bytes"])
    fallback = free + int(meminfo.get("Cached_bytes", 0))
    try:
        active_file = int(meminfo["Active_file_bytes"])
        inactive_file = int(meminfo["Inactive_file_bytes"])
        reclaimable = int(meminfo["SReclaimable_bytes"])
        zones = zoneinfo()
    except (KeyError, OSError):
        return fallback
    low = sum(int(line.split()[1]) for line in zones.splitlines() if line.strip().startswith("low"))
    low *= page_size
    available: float = free - low
    pagecache: float = active_file + inactive_file
    pagecache -= min(pagecache / 2, low)
    available += pagecache
    available += reclaimable - min(reclaimable / 2.0, low)
    return int(available)


class ProcSource:
    """Answers Summary's psutil calls from ``procfs`` and ``statvfs`` (see the module docstring).

    Keeps the last CPU reading and network counters between calls, as psutil keeps them per
    thread: one heartbeat thread calls it.
    """

    def __init__(
        self,
        procfs: str = "/proc",
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
        page_size: int = os.sysconf("SC_PAGE_SIZE"),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._procfs = procfs
        self._statvfs = statvfs
        self._page_size = page_size
        self._sleep = sleep
        self._last_cpu: list[float] | None = None
        self._last_nics: dict[str, tuple[int, int]] | None = None
        self._carried: dict[str, list[int]] = {}

    def _read(self, *parts: str) -> str:
        return read_text(os.path.join(self._procfs, *parts))

    def cpu_percent(self, interval: float | None = None) -> float:
        """Busy percent over ``interval`` seconds (blocking) or since the last call (None)."""
        if interval is not None and interval > 0:
            before = cpu_times(self._read("stat"))
            self._sleep(interval)
        else:
            before = self._last_cpu or cpu_times(self._read("stat"))
        self._last_cpu = cpu_times(self._read("stat"))
        return busy_percent(before, self._last_cpu)

    def virtual_memory(self) -> Memory:
        """Total and available memory (bytes); ValueError when MemTotal or MemFree is missing."""
        meminfo = parse_meminfo(self._read("meminfo"))
        try:
            return Memory(
                int(meminfo["MemTotal_bytes"]),
                available_memory(meminfo, lambda: self._read("zoneinfo"), self._page_size),
            )
        except KeyError as exc:
            raise ValueError(f"/proc/meminfo has no {exc.args[0]}") from exc

    def disk_usage(self, path: str) -> DiskUsage:
        """Size and use of the filesystem holding ``path``."""
        st = self._statvfs(path)
        total = st.f_blocks * st.f_frsize
        used = total - st.f_bfree * st.f_frsize
        free = st.f_bavail * st.f_frsize
        try:
            percent = round(float(used) / (used + free) * 100, 1)
        except ZeroDivisionError:
            percent = 0.0
        return DiskUsage(total, used, free, percent)

    def net_io_counters(self, pernic: bool = True) -> dict[str, NicCounters]:
        """Bytes sent and received per interface (``pernic`` must be True, as Summary asks)."""
        if not pernic:
            raise ValueError("only per-interface counters are read")
        raw = {
            name: (values[RX_BYTES], values[TX_BYTES])
            for name, values in parse_net_dev(self._read("net", "dev")).items()
        }
        last, self._last_nics = self._last_nics, raw
        if last is None:
            return {name: NicCounters(tx, rx) for name, (rx, tx) in raw.items()}
        for gone in self._carried.keys() - raw.keys():
            del self._carried[gone]
        counters = {}
        for name, now in raw.items():
            before = last.get(name)
            if before is None:  # a new interface starts from its own counters
                counters[name] = NicCounters(now[1], now[0])
                continue
            carried = self._carried.setdefault(name, [0, 0])
            for i in (0, 1):
                if now[i] < before[i]:
                    carried[i] += before[i]
            counters[name] = NicCounters(now[1] + carried[1], now[0] + carried[0])
        return counters

    def getloadavg(self) -> tuple[float, float, float]:
        """The 1, 5 and 15 minute load averages."""
        return parse_loadavg(self._read("loadavg"))

    def boot_time(self) -> float:
        """Boot time in Unix seconds (/proc/stat's ``btime``)."""
        for line in self._read("stat").splitlines():
            if line.startswith("btime"):
                return float(line.split()[1])
        raise ValueError("/proc/stat has no btime line")
