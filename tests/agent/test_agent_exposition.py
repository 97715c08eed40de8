"""The agent's own text encoder must produce exactly what prometheus_client would."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)

from exporter_agent.exposition import encode


class Families:
    """A minimal registry: prometheus_client only needs `collect()`."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def test_encoder_matches_prometheus_client_on_awkward_input():
    gauge = GaugeMetricFamily(
        "node_thing", 'Help with \\ and\nnewline "quotes".', labels=["device", "mode"]
    )
    gauge.add_metric(["sda", 'we"ird\\path\nx'], 1.5)
    gauge.add_metric(["é-ünïcode", "b"], float("inf"))
    gauge.add_metric(["nan", "c"], float("nan"))
    gauge.add_metric(["big", "d"], 123456789012.0)
    gauge.add_metric(["tiny", "e"], 1e-9, timestamp=1700000000.123)
    counter = CounterMetricFamily("node_events", "Events.", labels=["z", "a"])
    counter.add_metric(["1", "2"], 42)
    info = InfoMetricFamily("node_build", "Build.", value={"version": "1.0"})
    histogram = HistogramMetricFamily(
        "node_latency_seconds", "Latency.", buckets=[("0.1", 1), ("+Inf", 3)], sum_value=0.7
    )
    plain = GaugeMetricFamily("node_load1", "Load.", value=0.25)
    families = [gauge, counter, info, histogram, plain]
    assert encode(families) == generate_latest(Families(families))


def test_encoder_matches_prometheus_client_on_the_live_agent(tmp_path):
    from exporter_agent import config
    from exporter_agent.__main__ import AgentCollector, build_collectors, build_registry

    settings = config.load_settings([], {})
    registry = build_registry(
        AgentCollector(build_collectors(settings.collectors, settings.collector_options), "t")
    )
    families = list(registry.collect())
    assert encode(families) == generate_latest(Families(families))


def test_value_formatting_matches_prometheus_clients_for_every_kind_of_number():
    """go_float is floatToGoString with a fast path: the same text for any value a collector
    can give (ints, bools, floats of every magnitude and sign, infinities, NaN)."""
    import random

    from prometheus_client.utils import floatToGoString

    from exporter_agent.exposition import go_float

    rng = random.Random(15)
    values = [0, 1, -1, True, False, 0.0, -0.0, 1e6, 999999.0, 1e7, 1234567.0, 12345678.5,
              -1234567.0, 1e15, 1e16, 1e17, 2**53, 2**64, 1e-9, 5e-324, 1.7976931348623157e308,
              float("inf"), float("-inf"), float("nan"), 0.1 + 0.2, 123456789012.0]  # fmt: skip
    values += [rng.uniform(-1e12, 1e12) for _ in range(2000)]
    values += [rng.randrange(0, 2**63) for _ in range(2000)]
    values += [10 ** rng.uniform(-12, 20) for _ in range(2000)]
    assert [go_float(v) for v in values] == [floatToGoString(v) for v in values]
