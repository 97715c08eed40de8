"""limit/offset pagination shared by the list endpoints."""

from __future__ import annotations

import marshmallow as ma


class PageQuerySchema(ma.Schema):
    """`limit` 1..100 (default 50) and `offset` ≥ 0."""

    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(1, 100))
    offset = ma.fields.Integer(load_default=0, validate=ma.validate.Range(0, 2**31 - 1))


def page(items: list, total: int, query: dict, key: str) -> dict:
    """The list response body: the items under `key`, plus total, limit and offset."""
    return {key: items, "total": total, "limit": query["limit"], "offset": query["offset"]}


def page_schema(key: str, item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """The schema of a list response: `key` (a list of `item`), total, limit and offset."""
    return ma.Schema.from_dict(
        {
            key: ma.fields.List(ma.fields.Nested(item)),
            "total": ma.fields.Integer(),
            "limit": ma.fields.Integer(),
            "offset": ma.fields.Integer(),
        },
        name=name,
    )
