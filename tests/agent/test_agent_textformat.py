"""The agent's text-format parser reads every file as prometheus_client's parser does.

prometheus_client (a dev dependency) is the reference, with legacy (ASCII) name validation,
which node_exporter 1.5's parser also applies: same families, names, HELP, types, samples and
values on valid files, and a refusal (ValueError) wherever the reference raises. The few
places the agent's parser differs on purpose have their own tests below.
"""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import validation
from prometheus_client.parser import text_string_to_metric_families

from exporter_agent.collectors.textfile import TextfileError, parse_textfile
from exporter_agent.collectors.textformat import parse_families
from exporter_agent.exposition import encode

VALID = [
    "",
    "\n\n",
    "# a comment\n# another one with # hashes\n",
    "plain 1\n",
    "plain 1 1700000000000\n",
    'with_labels{a="1",b="two"} 2.5\n',
    'spaces { a = "1" , b="2" , } 3\n',
    'esc{path="C:\\\\dir\\"q\\"\\nline"} 4\n',
    '{"quoted_name", a="x"} 5\n',
    '{__name__="named_by_label"} 6\n',
    "# HELP documented Some help with \\\\ and \\n escapes.\n# TYPE documented gauge\n"
    "documented 7\n",
    "# TYPE total_counter_total counter\ntotal_counter_total 8\n",
    "# TYPE bare_counter counter\nbare_counter 9\n",
    "# TYPE mixed counter\nmixed_total 10\n",
    "# HELP s A summary.\n# TYPE s summary\n"
    's{quantile="0.5"} 1\ns{quantile="0.9"} 2\ns_sum 3\ns_count 4\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n',
    "# TYPE u untyped\nu 1\n",
    "# TYPE i info\ni_info 1\n",
    "# TYPE st stateset\nst 1\n",
    '# HELP a First.\na 1\n# HELP b Second.\nb{x="1"} 2\nb{x="2"} 3\n',
    "# HELP no_doc\nno_doc 1\n",
    'untyped_a 1\nuntyped_a{x="y"} 2\n',
    "values 1e3\nvalues2 -Inf\nvalues3 +Inf\nvalues4 NaN\nvalues5 .5\n",
    "tabs\t1\t2\n",
    "several 1 2 3\n",
    "huge_int 1" + "0" * 30 + "\n",
    "  indented 1  \n",
    "crlf 1\r\ncrlf2 2\r\n",
    "# TYPE g gauge\n# HELP g Help after type.\ng 1\n",
    "# HELP dup Help.\n# HELP dup Again.\ndup 1\n",
    '# HELP "quoted_help" Quoted.\nquoted_help 1\n',
    "in 1\ninf\n",
    'utf8_value{v="héllo ☃"} 1\n',
]

HOSTILE = [
    "not a sample\n",
    "name_only\n",
    "bad-name 1\n",
    "1starts_with_digit 1\n",
    "novalue \n",
    'x{a="1" 1\n',
    "x{a=1} 1\n",
    'x{a="1"b="2"} 1\n',
    'x{a="1",,b="2"} 1\n',
    'x{a="1",a="2"} 1\n',
    'x{__reserved="1"} 1\n',
    'x{9bad="1"} 1\n',
    'x{a:b="1"} 1\n',
    'x{a="unterminated} 1\n',
    'x{a="1"extra} 1\n',
    'x{a="1", ="2"} 1\n',
    'x{a="1",  ="2"} 1\n',
    "x 1_000\n",
    "x one\n",
    "x 0x10\n",
    "x 1 two\n",
    "# TYPE x\nx 1\n",
    "# TYPE bad-name gauge\n",
    "# HELP bad-name Help.\n",
    "# TYPE x nonsense\nx 1\n",
    'x{__name__="y"} 1\n',
    '{a="1"} 1\n',
    '{"bad-name"} 1\n',
    '# TYPE "bad-name" gauge\n',
    'x{a="1"}\n',
    "x{} \n",
]


@pytest.fixture(autouse=True)
def legacy_names():
    """The reference with ASCII names only, as node_exporter 1.5 reads a textfile."""
    before = validation.get_legacy_validation()
    validation.enable_legacy_validation()
    yield
    if not before:
        validation.disable_legacy_validation()


def reference(text: str):
    """What prometheus_client makes of ``text``: comparable families, or the exception."""
    try:
        return [_comparable(family) for family in text_string_to_metric_families(text)]
    except Exception as exc:  # the reference also raises IndexError on some inputs
        return exc


def ours(text: str):
    try:
        return [_comparable(family) for family in parse_families(text)]
    except ValueError as exc:
        return exc


def _value(value) -> object:
    value = float(value)
    return "NaN" if math.isnan(value) else value


def _comparable(family) -> tuple:
    samples = [
        (s.name, s.labels, _value(s.value), None if s.timestamp is None else float(s.timestamp))
        for s in family.samples
    ]
    return family.name, family.documentation, family.type, samples


def assert_same(text: str) -> None:
    expected, actual = reference(text), ours(text)
    if isinstance(expected, Exception):
        assert isinstance(actual, ValueError), f"{text!r}: reference raised {expected!r}"
    else:
        assert actual == expected, text


@pytest.mark.parametrize("text", VALID)
def test_valid_files_parse_as_prometheus_client_parses_them(text):
    assert not isinstance(reference(text), Exception), "the corpus entry must be valid"
    assert_same(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_malformed_files_are_refused_where_prometheus_client_refuses_them(text):
    assert isinstance(reference(text), Exception), "the corpus entry must be refused"
    assert_same(text)


def test_mangled_files_get_the_same_answer_as_prometheus_clients():
    """Runs of the corpus's lines, reordered, with stray characters inserted or deleted.

    Seeded; about half of the results are still valid files.
    """
    rng = random.Random(16)
    lines = "".join(VALID).splitlines(keepends=True)
    alphabet = ' {}",=#\\\n\tax_:0.-+e'
    valid = 0
    for _ in range(4000):
        start = rng.randrange(len(lines))
        text = list("".join(lines[start : start + rng.randrange(1, 8)]))
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            position = rng.randrange(len(text) + 1)
            if rng.random() < 0.5 and text:
                del text[min(position, len(text) - 1)]
            else:
                text.insert(position, rng.choice(alphabet))
        mangled = "".join(text)
        if "\\n" in mangled and _has_quoted_name(mangled):
            continue  # a name ending in an escaped newline: refused on purpose, tested below
        assert_same(mangled)
        valid += not isinstance(reference(mangled), Exception)
    assert valid > 500, "the mangling must leave enough valid files to compare"


def _has_quoted_name(text: str) -> bool:
    return '{"' in text or '"=' in text or '# HELP "' in text or '# TYPE "' in text


def test_a_quoted_utf8_name_is_refused_as_node_exporter_refuses_it():
    validation.disable_legacy_validation()
    text = '{"my.metric", "a.b"="x"} 1\n'
    assert not isinstance(reference(text), Exception), "prometheus_client's UTF-8 mode reads it"
    with pytest.raises(ValueError):
        parse_families(text)
    with pytest.raises(TextfileError):
        parse_textfile(text, "utf8.prom")


def test_a_name_ending_in_an_escaped_newline_is_refused():
    # prometheus_client's `$` lets a trailing newline through, making an invalid exposition.
    for text in ('{"name\\n"} 1\n', 'x{"label\\n"="v"} 1\n'):
        assert not isinstance(reference(text), Exception)
        with pytest.raises(ValueError):
            parse_families(text)


def test_an_empty_label_name_is_a_parse_error_not_a_crash():
    text = 'x{a="1", ="2"} 1\n'
    assert isinstance(reference(text), IndexError), "prometheus_client crashes here"
    with pytest.raises(TextfileError, match="failed to parse"):
        parse_textfile(text, "empty.prom")


def test_an_integer_past_floats_range_exports_as_infinity():
    # prometheus_client keeps it an int, which fails the whole scrape when encoded.
    families = parse_textfile("huge 1" + "0" * 400 + "\n", "huge.prom")
    assert encode(families).endswith(b"huge +Inf\n")
