"""The registry /metrics collects from: the collectors registered at start, in order."""

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from exporter_agent.metrics import Metric


class Collector(Protocol):
    """Anything with a ``collect()`` that yields metric families."""

    def collect(self) -> Iterable[Metric]:
        """Yield this scrape's metric families."""


class Registry:
    """The agent's collectors, collected in registration order on every scrape.

    prometheus_client's ``CollectorRegistry`` without what the agent does not use (describe,
    duplicate checks across collectors, target_info); ``generate_latest`` accepts it as is.
    Collectors are registered before serving starts, so ``collect`` needs no lock.
    """

    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        """Add ``collector``; it is collected after the ones registered before it."""
        self._collectors.append(collector)

    def collect(self) -> Iterator[Metric]:
        """Yield every registered collector's families."""
        for collector in tuple(self._collectors):
            yield from collector.collect()

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The value of the sample ``name{labels}`` in a fresh scrape, None when absent (tests)."""
        wanted = dict(labels or {})
        for family in self.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return sample.value
        return None
