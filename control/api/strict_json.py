"""A JSON reader that refuses what Python's `json` module would let through.

Python accepts NaN and Infinity, floats that overflow to infinity, nesting deep enough to
exhaust the stack, and `\\ud800`-style escapes of lone UTF-16 surrogates; it raises on integers
beyond 4,300 digits. None of those is valid data for us, and some would reach the database as
garbage or turn into a 500; each is refused as 400. Long integers within that limit parse,
and the schemas range-check every number field (422).

A lone surrogate is half of a character: no UTF-8 text (so no PostgreSQL or SQLite column,
no JSON response) can hold it. Sent raw it is already "not valid UTF-8"; escaped, it is the
same non-text, refused the same way and on every body and field at once (I-JSON, RFC 7493).

Every body is parsed by msgspec (C), which refuses all of the above itself except nesting
deeper than MAX_DEPTH, checked on the bytes (`deeper_than`). A body msgspec refuses is parsed
again by the reference reader below (`json` with hooks), only to say why in the same words as
ever; were the two ever to disagree, the reference reader's answer stands.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

# Python's own limit (int_max_str_digits), and msgspec's. Shorter integers parse; every
# integer field is then range-checked by its schema (422), so none can overflow a column.
MAX_INT_DIGITS = 4300
MAX_DEPTH = 32

_decode = msgspec.json.Decoder().decode


def loads(raw: bytes | str) -> Any:
    """Parse JSON strictly; every refusal is a `json.JSONDecodeError` with a readable message."""
    try:
        value = _decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return reference_loads(raw)
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if deeper_than(data, MAX_DEPTH):
        raise json.JSONDecodeError(f"nesting deeper than {MAX_DEPTH} levels", _text(data), 0)
    return value


# --- nesting depth, on the bytes of a valid JSON text -----------------------------------------

# Everything but brackets and quotes is deleted; `{}` are then counted as `[]`.
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'[]{}"'))
_BRACKETS = bytes.maketrans(b"{}", b"[]")


def deeper_than(data: bytes, limit: int) -> bool:
    """Whether the valid JSON text `data` nests objects and arrays more than `limit` deep.

    In C, not per character in Python: escapes go first (`\\\\` pairs, then `\\"`; in
    valid JSON a backslash appears only inside strings and always starts an escape), so the
    quotes left delimit strings; everything but quotes and brackets is deleted; the parts
    between quote pairs (brackets inside strings) are dropped; then each pass of
    `replace("[]", "")` removes exactly one level of the innermost nesting.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = data.translate(None, _NOT_STRUCTURE)
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    skeleton = skeleton.translate(_BRACKETS)
    for _ in range(limit):
        if not skeleton:
            return False
        skeleton = skeleton.replace(b"[]", b"")
    return bool(skeleton)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# --- the reference reader: Python's json with hooks, for the words of a refusal ---------------


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
# one), so bodies without such an escape skip the walk below.
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


def reference_loads(raw: bytes | str) -> Any:
    """`loads` by Python's `json` module with hooks: slower, and the source of every message."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("body is not valid UTF-8", "<bytes>", exc.start) from None
    if not text.strip():
        raise json.JSONDecodeError("empty body", "", 0)
    # Python's json recurses per level: an absurdly deep body must not reach it. (On a text
    # that is no JSON the count is approximate; json then refuses it, or recurses too deep.)
    data = text.encode("utf-8", "surrogatepass")
    if deeper_than(data, MAX_DEPTH):
        raise json.JSONDecodeError(f"nesting deeper than {MAX_DEPTH} levels", text, 0)
    try:
        parsed = json.loads(
            text, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
        )
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError(f"nesting deeper than {MAX_DEPTH} levels", text, 0) from None
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
