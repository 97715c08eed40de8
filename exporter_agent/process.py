"""The agent's own ``process_*`` metrics, read from ``/proc/self`` as prometheus_client's.

Same names, HELP, types and values as prometheus_client's ``ProcessCollector`` on Linux
(virtual and resident memory, start time, CPU seconds, open and maximum file descriptors),
which "Node Exporter Full" and the agent's dashboards graph; ``process_virtual_memory_max_bytes``
(Go's, not prometheus_client's) is ``exporter.AddressSpaceLimitCollector``.
"""

import contextlib
import os
import resource
from collections.abc import Iterator

from exporter_agent.metrics import CounterMetricFamily, GaugeMetricFamily, Metric


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


class ProcessCollector:
    """Exports the agent process's memory, CPU, start time and file descriptors.

    ``proc`` and ``pid`` name the process read (tests pass a fake /proc tree). A /proc that
    cannot be read at start (no ``btime``) exports nothing, as prometheus_client does; a part
    that fails later (stat, or limits and fd) leaves out only its families.
    """

    def __init__(self, proc: str = "/proc", pid: str = "self") -> None:
        self._dir = os.path.join(proc, pid)
        self._ticks = float(os.sysconf("SC_CLK_TCK"))
        self._pagesize = resource.getpagesize()
        self._btime = 0.0
        with contextlib.suppress(OSError, ValueError, IndexError):
            self._btime = self._boot_time(os.path.join(proc, "stat"))

    @staticmethod
    def _boot_time(path: str) -> float:
        for line in _read(path).splitlines():
            if line.startswith(b"btime "):
                return float(line.split()[1])
        return 0.0

    def collect(self) -> Iterator[Metric]:
        """Yield the process_* families (none when /proc was unreadable at start)."""
        if not self._btime:
            return
        try:
            # The command name in parentheses may hold spaces: fields start after the last ")".
            parts = _read(os.path.join(self._dir, "stat")).split(b")")[-1].split()
        except OSError:
            parts = None
        if parts is not None:
            yield GaugeMetricFamily(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                value=float(parts[20]),
            )
            yield GaugeMetricFamily(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                value=float(parts[21]) * self._pagesize,
            )
            yield GaugeMetricFamily(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                value=float(parts[19]) / self._ticks + self._btime,
            )
            yield CounterMetricFamily(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                value=float(parts[11]) / self._ticks + float(parts[12]) / self._ticks,
            )
        yield from self._fds()

    def _fds(self) -> Iterator[Metric]:
        try:
            limits = _read(os.path.join(self._dir, "limits"))
            open_fds = len(os.listdir(os.path.join(self._dir, "fd")))
        except OSError:
            return
        yield GaugeMetricFamily(
            "process_open_fds", "Number of open file descriptors.", value=open_fds
        )
        for line in limits.splitlines():
            if line.startswith(b"Max open file"):
                yield GaugeMetricFamily(
                    "process_max_fds",
                    "Maximum number of open file descriptors.",
                    value=float(line.split()[3]),
                )
                break
