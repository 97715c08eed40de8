"""Turns every failure into `{"code", "message"}` JSON: never HTML, never a traceback."""

from __future__ import annotations

import logging

import marshmallow as ma
import peewee
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from control import db
from control.errors import ControlError, Unavailable
from control.remediation import audit
from control.remediation.audit import AuditSource

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "BAD_REQUEST",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "UNAVAILABLE",
}

DATABASE_DOWN = (peewee.OperationalError, peewee.InterfaceError)
# PostgreSQL's SQLSTATE for a write refused by a read-only database (a standby, or
# default_transaction_read_only): psycopg2 raises it as an InternalError.
READ_ONLY_SQL_TRANSACTION = "25006"


class ErrorSchema(ma.Schema):
    """The error body every 4xx/5xx response carries (documented in OpenAPI)."""

    code = ma.fields.String(required=True, metadata={"example": "NOT_FOUND"})
    message = ma.fields.String(required=True)
    errors = ma.fields.Dict(metadata={"description": "field → messages, on 422 only"})


def error_response(status: int, code: str, message: str, errors=None, headers=None):
    """Build the JSON error response."""
    body = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten_webargs(messages: dict) -> dict:
    """webargs nests errors by location ({"json": {...}}); clients want field → messages."""
    flat: dict = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def handle_http_exception(error: HTTPException):
    """Werkzeug/flask-smorest HTTP errors (404, 405, 413, webargs 422, …)."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers = dict(error.get_headers()) if status == 405 else {}
    headers.pop("Content-Type", None)
    headers.update(data.get("headers") or {})
    if status == 422:
        errors = _flatten_webargs(data.get("messages") or data.get("errors") or {})
        _audit_invalid_execution_request(errors)
        return error_response(
            422, "VALIDATION_ERROR", "Request validation failed", errors=errors, headers=headers
        )
    code = HTTP_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    message = data.get("message") or error.description or error.name
    return error_response(status, code, message, headers=headers)


# The requests that ask to run something: a 422 on them is audited like a whitelist refusal.
AUDITED_ON_422 = {
    "actions.Actions": AuditSource.ACTION,
    "commands.ExecuteCommand": AuditSource.EXECUTE,
}


def _audit_invalid_execution_request(errors: dict) -> None:
    """Write a schema-refused action or execute request to the audit log."""
    source = AUDITED_ON_422.get(request.endpoint or "")
    principal = g.get("principal")
    if source is None or request.method != "POST" or principal is None:
        return
    asked = request.get_json(silent=True)
    if isinstance(asked, dict) and request.view_args and "server_id" in request.view_args:
        asked = {"server_id": request.view_args["server_id"], **asked}
    try:
        audit.record_invalid_request(
            actor=principal.name, scope=principal.scope, source=source, asked=asked, errors=errors
        )
    except DATABASE_DOWN as exc:  # the client still gets its 422; the log keeps the trace
        log.error("could not audit a refused %s request: %s", source, exc)


def handle_control_error(error: ControlError):
    """Our own error tree: the class carries status and code."""
    return error_response(
        error.status, error.code, error.message, errors=error.errors, headers=error.headers
    )


def handle_database_error(error: Exception):
    """The database is unreachable, locked beyond the timeout, read-only or full."""
    log.error("database unavailable: %s", error)
    # A dead PostgreSQL connection, a SQLite one opened read-only or hit by a full disk: the
    # thread's next request opens a fresh one, so each thread recovers on its own.
    db.drop_broken_connection(error)
    return handle_control_error(Unavailable("Database unavailable, try again shortly"))


def handle_internal_database_error(error: peewee.InternalError):
    """A write refused by a read-only PostgreSQL is the database being unavailable, not a bug."""
    if getattr(getattr(error, "orig", None), "pgcode", None) == READ_ONLY_SQL_TRANSACTION:
        return handle_database_error(error)
    return handle_unexpected(error)


def handle_unexpected(error: Exception):
    """Anything else: logged with its traceback server-side, a bare 500 for the client."""
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    log.exception("unhandled error")
    return error_response(500, "INTERNAL_ERROR", "Internal server error")


def init_app(app: Flask) -> None:
    """Register the handlers (after flask-smorest's, which they replace)."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ControlError, handle_control_error)
    for exc_type in DATABASE_DOWN:
        app.register_error_handler(exc_type, handle_database_error)
    app.register_error_handler(peewee.InternalError, handle_internal_database_error)
    app.register_error_handler(Exception, handle_unexpected)
