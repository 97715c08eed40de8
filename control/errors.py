"""One error tree for the whole control plane.

Domain code raises these; the API turns every one into `{"code", "message"}` with the status
below, and the CLI prints the message. Nothing here imports Flask.
"""

from __future__ import annotations

from typing import Any


class ControlError(Exception):
    """Root of every error control reports to a client."""

    status = 500
    code = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.headers = headers or {}


class BadRequest(ControlError):
    """The request could not be read (malformed JSON, bad encoding)."""

    status, code = 400, "BAD_REQUEST"


class Unauthorized(ControlError):
    """No API key, or one that matches no active key."""

    status, code = 401, "UNAUTHORIZED"


class Forbidden(ControlError):
    """A valid key whose scope does not allow this operation."""

    status, code = 403, "FORBIDDEN"


class NotFound(ControlError):
    """The addressed resource does not exist."""

    status, code = 404, "NOT_FOUND"


class Conflict(ControlError):
    """The request conflicts with current state (duplicate id, action not pending, …)."""

    status, code = 409, "CONFLICT"


class ValidationFailed(ControlError):
    """Field-level validation failed; `errors` maps each field to its messages."""

    status, code = 422, "VALIDATION_ERROR"


class CommandNotAllowed(ControlError):
    """A command or action type outside the whitelist (400 on execute, 403 on actions)."""

    status, code = 403, "COMMAND_NOT_ALLOWED"


class ExecuteNotAllowed(CommandNotAllowed):
    """A synchronous command outside the whitelist: 400, as the execute contract says."""

    status = 400


class RateLimited(ControlError):
    """Too many calls for this API key; `headers` carries Retry-After."""

    status, code = 429, "RATE_LIMITED"


class CommandTimeout(ControlError):
    """The remote command ran longer than its timeout and was stopped."""

    status, code = 408, "TIMEOUT"


class SshError(ControlError):
    """The host could not be reached, refused us, or presented an unknown host key."""

    status, code = 500, "SSH_ERROR"


class Unavailable(ControlError):
    """The database is unreachable, read-only or full."""

    status, code = 503, "UNAVAILABLE"


class ConfigError(Exception):
    """A setting is invalid; the message is one line naming the setting and the problem."""
