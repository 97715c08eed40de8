"""A parser of the Prometheus text format (0.0.4) for ``*.prom`` files.

It reads a file exactly as prometheus_client 0.26's ``text_string_to_metric_families`` does
with legacy (ASCII) name validation, quirks included, so the textfile collector exports what
it exported when it used that parser: HELP and TYPE start a family, a sample whose name the
current family does not allow is a family of its own, counters are named without ``_total``,
a value's extra fields are ignored but the last one becomes a timestamp (which the collector
then refuses). ``tests/agent/test_agent_textformat.py`` compares the two on valid and hostile
files. Two differences, on purpose: names are matched whole (``re.fullmatch``: a quoted name
ending in an escaped newline is refused, not exported as an exposition Prometheus rejects),
and quoted UTF-8 metric and label names are refused, as node_exporter 1.5 refuses them.

Any malformed input raises ValueError; the textfile collector then skips the whole file.
"""

import re

from exporter_agent.metrics import Metric, Sample

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_WHITESPACE = " \t\n\r\x0b\x0c"
_ESCAPES = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
_HELP_ESCAPE = re.compile(r"\\[\\n]")
_VALUE_ESCAPE = re.compile(r'\\[\\n"]')
# The sample names a family of each type takes, as suffixes of its name.
_ALLOWED_SUFFIXES = {"summary": ("_count", "_sum", ""), "histogram": ("_count", "_sum", "_bucket")}


def _unescape(match: re.Match[str]) -> str:
    return _ESCAPES[match.group(0)]


def _valid_metric_name(name: str) -> bool:
    return _METRIC_NAME.fullmatch(name) is not None


def _escaped(text: str, pos: int) -> bool:
    """Whether the character at ``pos`` follows an odd number of backslashes."""
    count = 0
    while pos > count and text[pos - 1 - count] == "\\":
        count += 1
    return count % 2 == 1


def _next_unquoted(text: str, chars: str, start: int = 0) -> int:
    """The position of the first of ``chars`` at or after ``start`` outside quotes, or -1."""
    in_quotes = False
    for pos in range(start, len(text)):
        char = text[pos]
        if char == '"' and not _escaped(text, pos):
            in_quotes = not in_quotes
        if not in_quotes and char in chars:
            return pos
    return -1


def _split_comment(text: str) -> list[str]:
    """Split a ``#`` line on unquoted whitespace into at most four tokens (the last the rest)."""
    tokens = [""]
    pos = 0
    while pos < len(text):
        split = _next_unquoted(text, _WHITESPACE, pos)
        if split == -1:
            tokens[-1] = text[pos:]
            break
        if split == pos:  # runs of whitespace
            pos += 1
            continue
        if len(tokens) > 3:
            tokens[-1] = text[pos:]
            break
        tokens[-1] = text[pos:split]
        pos = split + 1
        tokens.append("")
    return tokens


def _unquote(text: str) -> tuple[str, bool]:
    """``text`` stripped, without its quotes and escapes; and whether it was quoted."""
    if not text:
        return text, False
    quoted = False
    text = text.strip()
    if not text:  # prometheus_client raises IndexError here, which would fail the scrape
        return text, False
    if text[0] == '"':
        if len(text) == 1 or text[-1] != '"':
            raise ValueError("missing close quote")
        text, quoted = text[1:-1], True
    if "\\" in text:
        text = _VALUE_ESCAPE.sub(_unescape, text)
    return text, quoted


def _next_term(text: str) -> tuple[str, str, str]:
    """The next ``name="value"`` term: its name, its value text and the rest of ``text``.

    A term without ``=`` is the metric name (``{"name", label="v"}``): named ``__name__``.
    """
    if text[0] == ",":
        text = text[1:]
        if not text:
            return "", "", ""
        if text[0] == ",":
            raise ValueError("multiple commas")
    split = _next_unquoted(text, "=,}")
    if split >= 0 and text[split] == "=":
        name, text = text[:split], text[split + 1 :]
        split = _next_unquoted(text, ",}")
    else:
        name = "__name__"
    if split == -1:
        split = len(text)
    return name, text[:split].strip(), text[split:].strip()


def _parse_labels(text: str) -> dict[str, str]:
    """The labels between a sample's braces; raises ValueError("Invalid labels: ...")."""
    labels: dict[str, str] = {}
    rest = text.strip()
    try:
        while rest:
            name_term, value_term, rest = _next_term(rest)
            if not value_term:
                continue
            name, _ = _unquote(name_term)
            if not _LABEL_NAME.fullmatch(name) and name != "__name__":
                raise ValueError(f"invalid label name {name!r}")
            if name.startswith("__") and name != "__name__":
                raise ValueError(f"reserved label name {name!r}")
            if value_term[0] != '"':
                raise ValueError("label value without quotes")
            # The value's closing quote (the first unescaped one) must end the term.
            pos = 1
            while pos < len(value_term):
                pos = value_term.index('"', pos)
                if not _escaped(value_term, pos):
                    break
                pos += 1
            if pos + 1 != len(value_term):
                raise ValueError("unexpected text after quote")
            if name in labels:
                raise ValueError(f"duplicate label name {name!r}")
            labels[name] = _unquote(value_term)[0]
        return labels
    except ValueError:
        raise ValueError("Invalid labels: " + text) from None


def _parse_number(text: str) -> float:
    # prometheus_client tries int() first: an integer past float's range then fails the
    # scrape with OverflowError when encoded. float() reads the same texts, huge ones as inf.
    if text != text.strip() or "_" in text:
        raise ValueError(f"invalid value: {text!r}")
    return float(text)


def _parse_value_and_timestamp(text: str) -> tuple[float, float | None]:
    """The value, and the last of the fields after it as a timestamp in seconds."""
    text = text.lstrip()
    separator = " " if " " in text else "\t"
    fields = [field.strip() for field in text.split(separator) if field.strip()]
    if not fields:
        return float(text), None  # raises: nothing but whitespace
    value = _parse_number(fields[0])
    timestamp = _parse_number(fields[-1]) / 1000 if len(fields) > 1 else None
    return value, timestamp


def _parse_sample(text: str) -> Sample:
    label_start = _next_unquoted(text, "{")
    if label_start == -1 or " # " in text[:label_start]:
        name_end = _next_unquoted(text, " \t")
        name = text[:name_end].strip()
        if not _valid_metric_name(name):
            raise ValueError(f"invalid metric name: {text!r}")
        return Sample(name, {}, *_parse_value_and_timestamp(text[name_end + 1 :]))
    name = text[:label_start].strip()
    label_end = _next_unquoted(text[label_start:], "}") + label_start
    labels = _parse_labels(text[label_start + 1 : label_end])
    if not name:
        if "__name__" not in labels:
            raise ValueError(f"sample without a metric name: {text!r}")
        name = labels.pop("__name__")
    elif "__name__" in labels:
        raise ValueError(f"metric name specified more than once: {text!r}")
    return Sample(name, labels, *_parse_value_and_timestamp(text[label_end + 1 :]))


def _family(name: str, documentation: str, typ: str, samples: list[Sample]) -> Metric:
    """A family as prometheus_client's parser builds it: counters lose ``_total``."""
    if typ == "counter":
        if name.endswith("_total"):
            name = name[:-6]
        else:
            samples = [sample._replace(name=sample.name + "_total") for sample in samples]
    if not _valid_metric_name(name):
        raise ValueError(f"invalid metric name {name!r}")
    family = Metric(name, documentation, typ)
    family.samples = samples
    return family


def parse_families(text: str) -> list[Metric]:
    """Every family of ``text`` in file order; raises ValueError on malformed input."""
    families: list[Metric] = []
    name, documentation, typ = "", "", "untyped"
    samples: list[Sample] = []
    allowed: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("#"):
            parts = _split_comment(line)
            if len(parts) < 2:
                continue
            candidate = ""
            if len(parts) > 2:
                if parts[1] not in ("TYPE", "HELP"):
                    continue  # a comment
                candidate, quoted = _unquote(parts[2])
                if not quoted and not _valid_metric_name(candidate):
                    raise ValueError(f"invalid metric name in {line!r}")
            if parts[1] == "HELP":
                if candidate != name:
                    if name:
                        families.append(_family(name, documentation, typ, samples))
                    name, typ, samples, allowed = candidate, "untyped", [], [candidate]
                documentation = _HELP_ESCAPE.sub(_unescape, parts[3]) if len(parts) == 4 else ""
            elif parts[1] == "TYPE":
                if len(parts) < 4:
                    raise ValueError(f"TYPE without a type: {line!r}")
                if candidate != name:
                    if name:
                        families.append(_family(name, documentation, typ, samples))
                    name, documentation, samples = candidate, "", []
                typ = parts[3]
                allowed = [name + suffix for suffix in _ALLOWED_SUFFIXES.get(typ, ("",))]
        elif line:
            sample = _parse_sample(line)
            if sample.name in allowed:
                samples.append(sample)
                continue
            if name:
                families.append(_family(name, documentation, typ, samples))
            name, documentation, typ, samples, allowed = "", "", "untyped", [], []
            families.append(_family(sample.name, "", "untyped", [sample]))
    if name:
        families.append(_family(name, documentation, typ, samples))
    return families
