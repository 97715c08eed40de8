"""A server's recent metrics history from its stored heartbeats, in even time buckets.

A day of minute heartbeats is 1,440 samples per series; a chart a phone can draw needs a few
hundred points. Each bucket holds the mean of the samples received in it, or None when none
came (the box was offline), so a chart shows the gap instead of a straight line across it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from control.models import MetricsSample, utcnow

SERIES = ("cpu_percent", "memory_percent", "disk_percent", "temperature")


@dataclass(frozen=True)
class History:
    """Bucketed series over [start, end): one list per metric in SERIES, None for no data."""

    start: dt.datetime
    end: dt.datetime
    buckets: int
    series: dict[str, list[float | None]]
    samples: int  # heartbeats the window held

    def values(self, name: str) -> list[float]:
        """The buckets of one series that hold data."""
        return [value for value in self.series[name] if value is not None]


def history(
    server_id: str,
    *,
    hours: int = 24,
    buckets: int = 288,
    now: dt.datetime | None = None,
) -> History:
    """The last `hours` of `server_id`'s samples (by control's receive time) in `buckets` means.

    One indexed range read on (server, received_at) of only the charted columns.
    """
    end = now or utcnow()
    start = end - dt.timedelta(hours=hours)
    width = (end - start) / buckets
    columns = [getattr(MetricsSample, name) for name in SERIES]
    rows = (
        MetricsSample.select(MetricsSample.received_at, *columns)
        .where(
            (MetricsSample.server == server_id)
            & (MetricsSample.received_at >= start)
            & (MetricsSample.received_at < end)
        )
        .order_by(MetricsSample.received_at)
        .tuples()
    )
    sums = [[0.0] * buckets for _ in SERIES]
    counts = [[0] * buckets for _ in SERIES]
    samples = 0
    # .tuples() yields plain rows; peewee's stubs keep the row type as the model.
    for received_at, *values in cast(Iterable[tuple[Any, ...]], rows):
        samples += 1
        index = min(int((received_at - start) / width), buckets - 1)
        for which, value in enumerate(values):
            if value is not None:
                sums[which][index] += value
                counts[which][index] += 1
    series = {
        name: [s / n if n else None for s, n in zip(sums[i], counts[i], strict=True)]
        for i, name in enumerate(SERIES)
    }
    return History(start, end, buckets, series, samples)
