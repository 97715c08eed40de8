"""What every list endpoint shares: `limit`/`offset`, and the `{<plural>, total}` envelope.

The rule for every list: the items are under the last segment of the list's path
(`/servers` → `servers`, `/audit` → `audit`), beside `total` (how many match the filters in
all), `limit` and `offset` (as applied; `limit` is null where the default is the whole list).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from control.bounds import INT_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX


class PageQuerySchema(ma.Schema):
    """`limit` 1..100 (default 50) and `offset` ≥ 0."""

    limit = ma.fields.Integer(
        load_default=PAGE_LIMIT_DEFAULT, validate=ma.validate.Range(1, PAGE_LIMIT_MAX)
    )
    offset = ma.fields.Integer(load_default=0, validate=ma.validate.Range(0, INT_MAX))


class WholeListQuerySchema(ma.Schema):
    """`limit` (default: no limit, the whole list) and `offset` ≥ 0."""

    limit = ma.fields.Integer(load_default=None, validate=ma.validate.Range(1, INT_MAX))
    offset = ma.fields.Integer(load_default=0, validate=ma.validate.Range(0, INT_MAX))


def page(key: str, found: tuple[list[Any], int], query: dict[str, Any]) -> dict[str, Any]:
    """The list response body: `found`'s items under `key`, its total, the limit and offset."""
    items, total = found
    return {key: items, "total": total, "limit": query["limit"], "offset": query["offset"]}


def page_schema(key: str, item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """The schema of a list response: `key` (a list of `item`), total, limit and offset."""
    return ma.Schema.from_dict(
        {
            key: ma.fields.List(ma.fields.Nested(item)),
            "total": ma.fields.Integer(),
            "limit": ma.fields.Integer(allow_none=True),
            "offset": ma.fields.Integer(),
        },
        name=name,
    )
