"""Pressure stall information from /proc/pressure/*, as node_exporter's ``pressure`` collector.

The kernel gives cumulative stall time in microseconds on a ``some`` line (at least one task
stalled) and a ``full`` line (all non-idle tasks stalled); node_exporter exports the totals in
seconds: cpu some; io and memory some and full; irq full (kernel 6.1+, node_exporter 1.8+).
"""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import CounterMetricFamily, Metric

# (resource, line) -> (metric name, help), in node_exporter's order.
SERIES = {
    ("cpu", "some"): (
        "node_pressure_cpu_waiting_seconds_total",
        "Total time in seconds that processes have waited for CPU time",
    ),
    ("io", "some"): (
        "node_pressure_io_waiting_seconds_total",
        "Total time in seconds that processes have waited due to IO congestion",
    ),
    ("io", "full"): (
        "node_pressure_io_stalled_seconds_total",
        "Total time in seconds no process could make progress due to IO congestion",
    ),
    ("memory", "some"): (
        "node_pressure_memory_waiting_seconds_total",
        "Total time in seconds that processes have waited for memory",
    ),
    ("memory", "full"): (
        "node_pressure_memory_stalled_seconds_total",
        "Total time in seconds no process could make progress due to memory congestion",
    ),
    ("irq", "full"): (
        "node_pressure_irq_stalled_seconds_total",
        "Total time in seconds no process could make progress due to IRQ congestion",
    ),
}
RESOURCES = ("cpu", "io", "memory", "irq")


def parse_psi(text: str) -> dict[str, float]:
    """Map ``some``/``full`` to its ``total=`` in microseconds."""
    totals = {}
    for line in text.splitlines():
        kind, *pairs = line.split()
        for pair in pairs:
            if pair.startswith("total="):
                totals[kind] = float(pair[6:])
                break
        else:
            raise ValueError(f"no total in pressure line: {line!r}")
    return totals


class PressureCollector:
    """Exports the ``node_pressure_*_seconds_total`` counters for every resource the kernel has.

    A missing resource file is skipped (irq before 6.1); none at all (no CONFIG_PSI) fails
    the collector, as node_exporter's ``ErrNoData`` does. ``psi=0`` makes reads fail with
    EOPNOTSUPP, an OSError, which also fails it.
    """

    def __init__(self, procfs: str = "/proc") -> None:
        self._dir = os.path.join(procfs, "pressure")

    def collect(self) -> Iterator[Metric]:
        """Yield one counter per exported (resource, line) present."""
        found: list[Metric] = []
        for resource in RESOURCES:
            try:
                totals = parse_psi(read_text(os.path.join(self._dir, resource)))
            except FileNotFoundError:
                continue
            for (res, kind), (name, help_text) in SERIES.items():
                if res == resource and kind in totals:
                    found.append(CounterMetricFamily(name, help_text, value=totals[kind] / 1e6))
        if not found:
            raise FileNotFoundError(f"no pressure information under {self._dir}")
        yield from found
