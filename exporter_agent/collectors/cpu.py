"""CPU time per CPU and mode from /proc/stat, as node_exporter's ``cpu`` collector."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import CounterMetricFamily, Metric

# Kernel USER_HZ: /proc/stat counts in 1/100 s on every Linux architecture.
USER_HZ = 100.0
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
GUEST_MODES = ("user", "nice")


class CpuCollector:
    """Exports ``node_cpu_seconds_total{cpu,mode}`` and ``node_cpu_guest_seconds_total``."""

    def __init__(self, procfs: str = "/proc") -> None:
        self._path = os.path.join(procfs, "stat")

    def collect(self) -> Iterator[Metric]:
        """Yield one counter per CPU and mode; raises ValueError on a malformed /proc/stat."""
        seconds = CounterMetricFamily(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            labels=("cpu", "mode"),
        )
        guest = CounterMetricFamily(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            labels=("cpu", "mode"),
        )
        for line in read_text(self._path).splitlines():
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            fields = line.split()
            cpu = fields[0][3:]
            ticks = [int(value) for value in fields[1:11]]
            if len(ticks) < len(MODES) or not cpu.isdigit():
                raise ValueError(f"malformed /proc/stat line: {line!r}")
            for mode, value in zip(MODES, ticks, strict=False):
                seconds.add_metric((cpu, mode), value / USER_HZ)
            for mode, value in zip(GUEST_MODES, ticks[8:10], strict=False):
                guest.add_metric((cpu, mode), value / USER_HZ)
        yield seconds
        yield guest
