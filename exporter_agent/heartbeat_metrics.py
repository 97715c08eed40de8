"""The heartbeat's `metrics` object and `os_info`.

The figures come from a source answering psutil's calls: the agent's `ProcSource`
(heartbeat_source.py, /proc and statvfs), or in tests psutil itself or a recording.
"""

import logging
import os
import platform
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from exporter_agent.collectors.os_release import os_release_paths, read_os_release

log = logging.getLogger(__name__)

MIB = 1024 * 1024
GIB = 1024 * 1024 * 1024
# First cpu_percent sample: it needs two readings, so the first one blocks this long.
CPU_PRIME_SECONDS = 0.2


def default_server_id(hostname: str | None = None) -> str:
    """Hostname lowercased and reduced to ``[a-z0-9-]`` (dots and others become ``-``)."""
    name = (hostname or socket.gethostname()).lower()
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", name)).strip("-")
    return slug[:100].rstrip("-") or "localhost"


def os_info(
    uname: Callable[[], os.uname_result] = os.uname, rootfs: str = "/"
) -> dict[str, str | None]:
    """Return seed-001 ``os_info``: distribution, version, kernel and architecture."""
    try:
        release = read_os_release(os_release_paths(rootfs))
    except (OSError, ValueError):
        release = {}
    info = uname()
    return {
        "distribution": _text(release.get("NAME") or platform.system(), 100),
        "version": _text(release.get("VERSION") or release.get("VERSION_ID") or "", 100),
        "kernel": _text(info.release, 100),
        "architecture": _text(info.machine, 20),
    }


def _text(value: str, limit: int) -> str | None:
    """`value` cut to `limit` characters, with undecodable bytes (lone surrogates from
    os.uname or a file's odd encoding) replaced: control refuses a body holding surrogates."""
    cleaned = value.encode("utf-8", "replace").decode("utf-8")[:limit]
    return cleaned or None


class SystemSource(Protocol):
    """The psutil calls Summary makes (psutil itself is one; the agent uses ProcSource).

    A failing call raises OSError, ValueError or the source's own ``Error`` class, if it has one.
    """

    def cpu_percent(self, interval: float | None = None) -> float: ...

    def virtual_memory(self) -> Any: ...

    def disk_usage(self, path: str) -> Any: ...

    def net_io_counters(self, pernic: bool = False) -> Mapping[str, Any]: ...

    def getloadavg(self) -> Sequence[float]: ...

    def boot_time(self) -> float: ...


class Summary:
    """Builds the heartbeat ``metrics`` object from a source; a failing field is sent as null."""

    def __init__(
        self,
        source: SystemSource,
        disk_path: str = "/",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ps = source
        self._disk_path = disk_path
        self._clock = clock
        self._primed = False

    def _cpu_percent(self) -> float:
        if not self._primed:
            self._primed = True
            return float(self._ps.cpu_percent(interval=CPU_PRIME_SECONDS))
        return float(self._ps.cpu_percent(interval=None))

    def metrics(self) -> dict[str, float | int | None]:
        """Return the seed-001 metrics; fields whose source fails are None, never invented."""
        out: dict[str, float | int | None] = dict.fromkeys(
            (
                "cpu_percent",
                "memory_percent",
                "memory_total_mb",
                "memory_used_mb",
                "disk_percent",
                "disk_total_gb",
                "disk_used_gb",
                "network_rx_bytes",
                "network_tx_bytes",
                "load_1m",
                "load_5m",
                "load_15m",
                "uptime_seconds",
            )
        )
        errors = (OSError, ValueError, getattr(self._ps, "Error", OSError))
        try:
            out["cpu_percent"] = round(min(max(self._cpu_percent(), 0.0), 100.0), 1)
        except errors as exc:
            log.debug("cpu_percent unavailable: %s", exc)
        try:
            memory = self._ps.virtual_memory()
            used = memory.total - memory.available
            out["memory_percent"] = round(100.0 * used / memory.total, 1) if memory.total else 0.0
            out["memory_total_mb"] = memory.total // MIB
            out["memory_used_mb"] = used // MIB
        except errors as exc:
            log.debug("memory unavailable: %s", exc)
        try:
            disk = self._ps.disk_usage(self._disk_path)
            out["disk_percent"] = round(float(disk.percent), 1)
            out["disk_total_gb"] = round(disk.total / GIB, 2)
            out["disk_used_gb"] = round(disk.used / GIB, 2)
        except errors as exc:
            log.debug("disk usage unavailable: %s", exc)
        try:
            nics = self._ps.net_io_counters(pernic=True)
            real = [c for name, c in nics.items() if name != "lo"]
            out["network_rx_bytes"] = sum(c.bytes_recv for c in real)
            out["network_tx_bytes"] = sum(c.bytes_sent for c in real)
        except errors as exc:
            log.debug("network counters unavailable: %s", exc)
        try:
            load = self._ps.getloadavg()
            out["load_1m"], out["load_5m"], out["load_15m"] = (round(x, 2) for x in load)
        except errors as exc:
            log.debug("load average unavailable: %s", exc)
        try:
            out["uptime_seconds"] = max(int(self._clock() - self._ps.boot_time()), 0)
        except errors as exc:
            log.debug("uptime unavailable: %s", exc)
        return out
