"""Query helpers every domain module shares: one lookup-or-404, one page, one count by value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import peewee as pw

from control.errors import NotFound

ModelT = TypeVar("ModelT", bound=pw.Model)


def get_or_404(model: type[ModelT], key: Any, label: str) -> ModelT:
    """The `model` row whose primary key is `key`, or NotFound naming it as `label`."""
    row = model.get_or_none(model._meta.primary_key == key)
    if row is None:
        raise NotFound(f"{label} not found")
    return row


def page(
    query: pw.ModelSelect[ModelT], order: Any, limit: int | None, offset: int = 0
) -> tuple[list[ModelT], int]:
    """One page of `query` in `order`, and how many rows match in all (`limit` None: all)."""
    total = query.count()
    ordered = query.order_by(order).offset(offset)
    if limit is not None:
        ordered = ordered.limit(limit)
    return list(ordered), total


def filtered(
    query: pw.ModelSelect[ModelT], conditions: Iterable[tuple[pw.Field[Any], Any]]
) -> pw.ModelSelect[ModelT]:
    """`query` narrowed by `column == value` for every pair whose value is not None."""
    for column, value in conditions:
        if value is not None:
            query = query.where(column == value)
    return query


def count_by(column: pw.Field[Any], values: Iterable[str]) -> dict[str, int]:
    """How many rows have each of `values` in `column`, zeros included, in one GROUP BY."""
    counts = dict.fromkeys(values, 0)
    model = column.model
    rows = model.select(column, pw.fn.COUNT(pw.SQL("*"))).group_by(column).tuples()
    for value, count in rows:
        counts[value] = count
    return counts
