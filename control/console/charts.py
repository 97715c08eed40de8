"""The server page's 24 h charts: bucketed history turned into inline-SVG path data.

Drawn on the server (no chart library, no script): each series is one `<path>` in a fixed
viewBox the page stretches to its width. Gaps in the data (no heartbeat in a bucket) break
the line. Only numbers reach the SVG, so nothing a box sent can become markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from control.fleet.history import History

WIDTH, HEIGHT = 600, 100

# name → (label, unit); percentages share a 0-100 scale, temperature gets its own.
LABELS = {
    "cpu_percent": ("CPU", "%"),
    "memory_percent": ("Memory", "%"),
    "disk_percent": ("Disk", "%"),
    "temperature": ("Temperature", "°C"),
}


@dataclass(frozen=True)
class Chart:
    """One series ready for the template: its path, scale and a summary in words."""

    name: str
    label: str
    unit: str
    path: str
    top: float  # the value at the top edge
    low: float | None
    high: float | None
    mean: float | None
    latest: float | None

    @property
    def empty(self) -> bool:
        """Whether the window held no value of this series."""
        return self.latest is None

    @property
    def summary(self) -> str:
        """What the chart shows, for screen readers and for a reader without the picture."""
        if self.empty:
            return f"{self.label}: no data in the last 24 hours"
        return (
            f"{self.label} over the last 24 hours: low {self.low:.0f}{self.unit}, "
            f"mean {self.mean:.0f}{self.unit}, high {self.high:.0f}{self.unit}, "
            f"latest {self.latest:.0f}{self.unit}"
        )


def charts(history: History) -> list[Chart]:
    """One chart per series of `history`, in LABELS order."""
    return [chart(history, name) for name in LABELS]


def chart(history: History, name: str) -> Chart:
    """The chart of one series."""
    label, unit = LABELS[name]
    values = history.series[name]
    present = history.values(name)
    top = 100.0
    if unit != "%" and present:
        top = max(100.0, math.ceil(max(present) / 10) * 10)
    return Chart(
        name=name,
        label=label,
        unit=unit,
        path=path(values, top),
        top=top,
        low=min(present) if present else None,
        high=max(present) if present else None,
        mean=sum(present) / len(present) if present else None,
        latest=present[-1] if present else None,
    )


def path(values: list[float | None], top: float) -> str:
    """SVG path data for `values` across WIDTH, 0..`top` bottom to top; None breaks the line."""
    if len(values) < 2:
        return ""
    step = WIDTH / (len(values) - 1)
    commands: list[str] = []
    drawing = False
    for index, value in enumerate(values):
        if value is None:
            drawing = False
            continue
        x = index * step
        y = HEIGHT - min(max(value, 0.0), top) / top * HEIGHT
        if drawing:
            commands.append(f"L{x:.1f} {y:.1f}")
        else:
            # A lone bucket still shows: a short stroke instead of an invisible point.
            commands.append(f"M{x:.1f} {y:.1f}h0.5")
            drawing = True
    return "".join(commands)
