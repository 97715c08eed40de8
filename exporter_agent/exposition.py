"""A lean encoder for the Prometheus text format (0.0.4), byte-identical to prometheus_client's.

prometheus_client's `generate_latest` validates and escapes every metric name on every sample
line, which is most of the agent's per-scrape cost. Our metric and label names are fixed, valid
identifiers, so this encoder escapes only what can vary (label values and HELP text).
`tests/agent/test_agent_exposition.py` checks the output against `generate_latest`.
"""

from __future__ import annotations

from collections.abc import Iterable

from exporter_agent.metrics import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# How the text format names a family whose OpenMetrics type differs.
_TEXT_TYPES = {"stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_DROPPED_SUFFIXES = ("_created", "_gsum", "_gcount")  # OpenMetrics-only samples
# Family headers seen so far, by (name, type, HELP): the same few hundred every scrape. Bounded
# so textfile families that come and go cannot grow it without end.
_HEADERS: dict[tuple[str, str, str], tuple[str, tuple[str, ...]]] = {}
_MAX_HEADERS = 4096
# How Go (and prometheus_client's floatToGoString) writes the values repr writes as these.
_GO_SPECIALS = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def _escape_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def go_float(value: float) -> str:
    """``floatToGoString(value)``, with the common case (a finite float) done in one ``repr``.

    Same output for every input: infinities, NaN and positive values past 1e6 (Go's exponent
    form) are rewritten exactly as prometheus_client does.
    """
    if type(value) is not float:
        value = float(value)
    text = repr(value)
    if text[-1] in "fn":  # inf, -inf, nan
        return _GO_SPECIALS[text]
    dot = text.find(".")
    if dot > 6 and value > 0:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _header(family: Metric) -> tuple[str, tuple[str, ...]]:
    """The HELP and TYPE lines of `family` and the sample names the text format leaves out."""
    key = (family.name, family.type, family.documentation)
    cached = _HEADERS.get(key)
    if cached is not None:
        return cached
    name, kind = family.name, family.type
    if kind == "counter":
        name += "_total"
    elif kind == "info":
        name, kind = name + "_info", "gauge"
    kind = _TEXT_TYPES.get(kind, kind)
    help_text = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
    dropped = tuple(family.name + suffix for suffix in _DROPPED_SUFFIXES)
    cached = (f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n", dropped)
    if len(_HEADERS) >= _MAX_HEADERS:
        _HEADERS.clear()
    _HEADERS[key] = cached
    return cached


def encode(families: Iterable[Metric]) -> bytes:
    """Render metric families as the text exposition format.

    One pass, no call per sample but the value's formatting: this is half of what a scrape
    costs in Python once the collectors have read their files.
    """
    out: list[str] = []
    append = out.append
    escape, number = _escape_value, go_float
    for family in families:
        header, dropped = _header(family)
        append(header)
        for sample in family.samples:
            name, labels, value, timestamp = sample[0], sample[1], sample[2], sample[3]
            if name in dropped:
                continue
            if labels:
                if len(labels) == 1:
                    ((key, text),) = labels.items()
                    name = f'{name}{{{key}="{escape(text)}"}}'
                else:
                    pairs = ",".join(
                        [f'{key}="{escape(text)}"' for key, text in sorted(labels.items())]
                    )
                    name = f"{name}{{{pairs}}}"
            if timestamp is None:
                append(f"{name} {number(value)}\n")
            else:
                append(f"{name} {number(value)} {int(float(timestamp) * 1000):d}\n")
    return "".join(out).encode("utf-8")
