"""Console errors as pages: the status, a sentence saying what went wrong, a way back.

The API's handlers answer JSON; these take over for requests the console's Blueprint routed.
Never a traceback: unexpected errors are logged with theirs and shown as one line.
"""

from __future__ import annotations

import logging

import peewee
from flask import Blueprint, g, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from control.db import drop_broken_connection
from control.errors import ControlError

log = logging.getLogger(__name__)

CSRF_MESSAGE = (
    "This form has expired or did not come from this console. "
    "Go back, reload the page and try again."
)
DATABASE_DOWN = (peewee.OperationalError, peewee.InterfaceError)


def error_page(status: int, message: str, headers: dict[str, str] | None = None):
    """An error page that needs nothing from the database (it may be what failed)."""
    body = render_template(
        "console/error.html",
        status=status,
        message=message,
        user=g.get("console_user"),
        may_write=False,
        pending_count=0,
    )
    return body, status, headers or {}


def register(bp: Blueprint) -> None:
    """Install the console's error pages on `bp`."""

    @bp.errorhandler(ControlError)
    def _control_error(error: ControlError):
        return error_page(error.status, error.message, error.headers)

    @bp.errorhandler(CSRFError)
    def _csrf(error: CSRFError):
        return error_page(400, CSRF_MESSAGE)

    @bp.errorhandler(HTTPException)
    def _http(error: HTTPException):
        return error_page(error.code or 500, error.description or error.name)

    @bp.errorhandler(peewee.OperationalError)
    @bp.errorhandler(peewee.InterfaceError)
    def _database(error: Exception):
        log.error("database unavailable: %s", error)
        drop_broken_connection(error)
        return error_page(503, "The database is unavailable; try again shortly.")

    @bp.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled console error")
        return error_page(500, "Something went wrong on our side; it has been logged.")
