"""A JSON reader that refuses what Python's `json` module would let through.

Python accepts NaN and Infinity, floats that overflow to infinity, nesting deep enough to
exhaust the stack, and `\\ud800`-style escapes of lone UTF-16 surrogates; it raises on integers
beyond 4,300 digits. None of those is valid data for us, and some would reach the database as
garbage or turn into a 500; each is refused as 400. Long integers within that limit parse,
and the schemas range-check every number field (422).

A lone surrogate is half of a character: no UTF-8 text (so no PostgreSQL or SQLite column,
no JSON response) can hold it. Sent raw it is already "not valid UTF-8"; escaped, it is the
same non-text, refused the same way and on every body and field at once (I-JSON, RFC 7493).
"""

from __future__ import annotations

import json
import re
from typing import Any

# Python's own limit (int_max_str_digits). Shorter integers parse; every integer field is then
# range-checked by its schema (422), so none can overflow a database column.
MAX_INT_DIGITS = 4300
MAX_DEPTH = 32


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError("integer too large")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


# Only a `\uD800`-`\uDFFF` escape can put a surrogate in parsed JSON (UTF-8 cannot encode
# one), so bodies without such an escape, nearly all of them, skip the walk below.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate in any string or key of parsed JSON, without recursion."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found = _LONE_SURROGATE.search(item)
            if found:
                return found.group()
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _depth(text: str) -> int:
    """Deepest bracket nesting outside strings, without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads(raw: bytes | str) -> Any:
    """Parse JSON strictly; every refusal is a `json.JSONDecodeError` with a readable message."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("body is not valid UTF-8", "<bytes>", exc.start) from None
    if not text.strip():
        raise json.JSONDecodeError("empty body", "", 0)
    # Only scan when brackets could possibly nest that deep: keeps small bodies cheap.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise json.JSONDecodeError(f"nesting deeper than {MAX_DEPTH} levels", text, 0)
    try:
        parsed = json.loads(
            text, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
        )
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None
    if _SURROGATE_ESCAPE.search(text):
        lone = _lone_surrogate(parsed)
        if lone is not None:
            raise json.JSONDecodeError(
                f"lone surrogate \\u{ord(lone):04x} in a string (half a character, not text)",
                text,
                0,
            )
    return parsed
