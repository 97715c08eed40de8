"""A lean encoder for the Prometheus text format (0.0.4), byte-identical to prometheus_client's.

prometheus_client's `generate_latest` validates and escapes every metric name on every sample
line, which is most of the agent's per-scrape cost. Our metric and label names are fixed, valid
identifiers, so this encoder escapes only what can vary (label values and HELP text).
`tests/agent/test_agent_exposition.py` checks the output against `generate_latest`.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# How the text format names a family whose OpenMetrics type differs.
_TEXT_TYPES = {"stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_DROPPED_SUFFIXES = ("_created", "_gsum", "_gcount")  # OpenMetrics-only samples


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample_line(name: str, labels: dict[str, str], value: float, timestamp) -> str:
    if labels:
        pairs = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(labels.items()))
        name = f"{name}{{{pairs}}}"
    if timestamp is None:
        return f"{name} {floatToGoString(value)}\n"
    return f"{name} {floatToGoString(value)} {int(float(timestamp) * 1000):d}\n"


def encode(families: Iterable[Metric]) -> bytes:
    """Render metric families as the text exposition format."""
    out: list[str] = []
    for family in families:
        name, kind = family.name, family.type
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name, kind = name + "_info", "gauge"
        kind = _TEXT_TYPES.get(kind, kind)
        help_text = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        dropped = tuple(family.name + suffix for suffix in _DROPPED_SUFFIXES)
        out.extend(
            _sample_line(s.name, s.labels, s.value, s.timestamp)
            for s in family.samples
            if s.name not in dropped
        )
    return "".join(out).encode("utf-8")
