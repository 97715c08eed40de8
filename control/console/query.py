"""Reading a page's query string: filters from fixed menus or patterns, and paging.

A value outside its menu or pattern is a 400 page naming the parameter, never a query with
it; an empty value (a form's "any" choice) is no filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from control.bounds import SERVER_ID
from control.errors import BadRequest

TAG = re.compile(r"^[a-z0-9_]{1,32}$", re.ASCII)  # as control.api.fields.TAG_PATTERN
ROLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$", re.ASCII)
ACTOR = re.compile(r"^[\x21-\x7e]{1,100}$", re.ASCII)
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$", re.ASCII)
MAX_OFFSET = 10_000_000


def choice(args: Mapping[str, str], name: str, allowed: Iterable[str]) -> str | None:
    """The value of `name` if it is one of `allowed`; None when absent or empty."""
    value = args.get(name) or None
    if value is not None and value not in set(allowed):
        raise BadRequest(f"Unknown {name} {value[:40]!r}: choose one from the menu.")
    return value


def matching(args: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str | None:
    """The value of `name` if it matches `pattern` in full; None when absent or empty."""
    value = args.get(name) or None
    if value is not None and not pattern.fullmatch(value):
        raise BadRequest(f"Invalid {name} {value[:40]!r}.")
    return value


def server_id(args: Mapping[str, str], name: str = "server") -> str | None:
    """A server id filter (`^[a-z0-9-]{1,100}$`)."""
    return matching(args, name, SERVER_ID)


def offset(args: Mapping[str, str]) -> int:
    """The `offset` of a paged list: a whole number, 0 when absent."""
    raw = args.get("offset") or "0"
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_OFFSET:
        raise BadRequest("Invalid offset: a whole number.")
    return int(raw)
