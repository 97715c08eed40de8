"""Metric families: what a collector yields and what the encoder renders.

The same shape as prometheus_client's ``metrics_core`` (``name``, ``documentation``, ``type``,
``samples`` of ``(name, labels, value, timestamp)``, counters named without ``_total`` and
their samples with it), so prometheus_client's ``generate_latest`` and registries read these
families as their own; the tests use it as the reference. The agent does not import
prometheus_client at run time: it and what it imports (ssl, http.server, email) cost ~4 MB of
resident memory, a sixth of the agent's.

Unlike prometheus_client, a family does not validate its name: the collectors' names are
constants the tests check against ``promtool``, and the textfile parser validates what it reads.
"""

from collections.abc import Sequence
from typing import NamedTuple

# The types a family may have (OpenMetrics' names; the text format says "untyped" for unknown).
METRIC_TYPES = frozenset(
    ("counter", "gauge", "summary", "histogram", "gaugehistogram", "unknown", "info", "stateset")
)


class Sample(NamedTuple):
    """One series' value in a family; ``timestamp`` in seconds, None for "now"."""

    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None = None


# Builds a Sample without NamedTuple's Python-level __new__: add_metric runs ~300 times a scrape.
_new_sample = tuple.__new__


class Metric:
    """A metric family: a name, its HELP text, its type and its samples."""

    def __init__(self, name: str, documentation: str, typ: str) -> None:
        if typ == "untyped":
            typ = "unknown"
        if typ not in METRIC_TYPES:
            raise ValueError(f"invalid metric type: {typ!r}")
        self.name = name
        self.documentation = documentation
        self.type = typ
        self.samples: list[Sample] = []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Metric) and (
            self.name,
            self.documentation,
            self.type,
            self.samples,
        ) == (other.name, other.documentation, other.type, other.samples)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {self.documentation!r}, {self.type!r}, {self.samples!r})"


class _LabelledFamily(Metric):
    """A family whose samples share one tuple of label names, given values by ``add_metric``."""

    _suffix = ""
    _type = ""  # the text format's TYPE, set by each subclass

    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        name = name.removesuffix(self._suffix) if self._suffix else name
        super().__init__(name, documentation, self._type)
        if labels is not None and value is not None:
            raise ValueError("can only specify at most one of value and labels")
        self._labelnames = tuple(labels or ())
        self._sample_name = name + self._suffix
        if value is not None:
            self.add_metric((), value)

    def add_metric(
        self, labels: Sequence[str], value: float, timestamp: float | None = None
    ) -> None:
        """Add one series: its label values (in the family's label order) and its value."""
        self.samples.append(
            _new_sample(
                Sample,
                (
                    self._sample_name,
                    dict(zip(self._labelnames, labels, strict=False)),
                    value,
                    timestamp,
                ),
            )
        )


class GaugeMetricFamily(_LabelledFamily):
    """A gauge: ``value=`` for a family of one unlabelled series, or ``labels=`` and add_metric."""

    _type = "gauge"


class CounterMetricFamily(_LabelledFamily):
    """A counter: the family is named without ``_total``, its samples with it."""

    _suffix = "_total"
    _type = "counter"


class UnknownMetricFamily(_LabelledFamily):
    """An untyped family (the text format's ``untyped``), as node_exporter's netstat/vmstat."""

    _type = "unknown"
