"""What every console page shares: the render call, flashed results, and the template filters.

Filters turn values into text only (times, percentages); whatever a box or a client sent is
left to Jinja's autoescaping, and no template marks such data `|safe`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, flash, redirect, render_template, request
from werkzeug.wrappers import Response

from control.console.session import current_user, safe_next
from control.errors import ControlError
from control.models import utcnow
from control.remediation import approvals

DASH = "\N{EN DASH}"
T = TypeVar("T")


def render_page(template: str, **values: Any) -> str:
    """Render `console/<template>` with the signed-in user, what they may do, and the nav."""
    user = current_user()
    return render_template(
        f"console/{template}",
        user=user,
        may_write=bool(user and user.may("write")),
        pending_count=approvals.count_pending() if user else 0,
        **values,
    )


def flash_notice(message: str) -> None:
    """A result to show on the next page (the R of POST-redirect-GET)."""
    flash(message, "notice")


def flash_error(message: str) -> None:
    """A refusal to show on the next page, in words, never a trace."""
    flash(message, "error")


def back_to(default: str) -> Response:
    """Redirect (303, so the browser GETs) to the form's `back` page when it is a console
    page, else to `default`."""
    target = request.form.get("back")
    return redirect(safe_next(target) if target else default, 303)


def act(back: str, change: Callable[[], T], done: Callable[[T], str]) -> Response:
    """Make one change through the domain and go back to a page saying what came of it.

    A refusal (not found, not allowed, invalid, conflict, rate limited) is shown on that page
    in the domain's own words, with each invalid field named; it never becomes a 500.
    """
    try:
        result = change()
    except ControlError as error:
        flash_error(describe(error))
    else:
        flash_notice(done(result))
    return back_to(back)


def describe(error: ControlError) -> str:
    """An error's message and its field errors (`parameters.name: Must match …`) as one line."""
    details = [
        f"{name}: {' '.join(str(m) for m in messages) if isinstance(messages, list) else messages}"
        for name, messages in sorted((error.errors or {}).items())
    ]
    return " ".join([error.message.rstrip(".") + "." if details else error.message, *details])


def ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """How long ago a naive-UTC time was, in the largest whole unit ("5 min ago")."""
    if value is None:
        return "never"
    seconds = int(((now or utcnow()) - value).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def utc(value: dt.datetime | None) -> str:
    """A naive-UTC time as `YYYY-MM-DD HH:MM:SS UTC`."""
    return DASH if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: dt.datetime | None) -> str:
    """A naive-UTC time for a `<time datetime=…>` attribute."""
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def percent(value: float | None) -> str:
    """A percentage with no decimals, or a dash when there is none."""
    return DASH if value is None else f"{value:.0f} %"


def number(value: float | None, digits: int = 1, unit: str = "") -> str:
    """A number with `digits` decimals and an optional unit, or a dash."""
    if value is None:
        return DASH
    text = f"{value:.{digits}f}"
    return f"{text} {unit}" if unit else text


def init_app(app: Flask) -> None:
    """Make the filters available to the console's templates."""
    app.jinja_env.filters.update(ago=ago, utc=utc, iso=iso, percent=percent, number=number)
