"""The audit log: every execution attempt, allowed or refused, with who, where, what and how.

A refused remediation request (`POST /actions`, execute) is an entry too: `allowed` false, a
`result` that says why (`refused`: outside the whitelist; `invalid`: a parameter its pattern
rejects; `not_found`: unknown server or alert; `rate_limited`), and a `detail` with the status,
the message and what was asked, escaped and truncated. A duplicate (409) is not a refusal: the
whitelist accepted it and the open action it duplicates is audited when it runs. Requests
without a valid key never reach here; they are counted in `homelab_auth_failures_total`.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from control.bounds import ACTION_TYPE, SERVER_ID
from control.db import write_transaction
from control.errors import CommandNotAllowed, ControlError, NotFound, RateLimited, ValidationFailed
from control.models import AuditEntry
from control.queries import filtered, page

log = logging.getLogger("control.remediation.audit")


class AuditSource(enum.StrEnum):
    """Where an execution attempt came from."""

    ACTION = "action"  # a queued action: refused when requested, or run by the dispatcher
    EXECUTE = "execute"  # the synchronous execute endpoint
    ENROLLMENT = "enrollment"  # an operator reset a server's enrollment (control.fleet.enrollment)


class AuditResult(enum.StrEnum):
    """How an execution attempt ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SSH_ERROR = "ssh_error"
    REFUSED = "refused"  # outside the whitelist (403 on actions, 400 on execute)
    INVALID = "invalid"  # a parameter the whitelist refuses, e.g. an injection attempt (422)
    NOT_FOUND = "not_found"  # unknown server or alert (404)
    RATE_LIMITED = "rate_limited"  # over the key's limit (429)


# Most specific first: ExecuteNotAllowed is a CommandNotAllowed.
REFUSALS: tuple[tuple[type[ControlError], AuditResult], ...] = (
    (CommandNotAllowed, AuditResult.REFUSED),
    (ValidationFailed, AuditResult.INVALID),
    (NotFound, AuditResult.NOT_FOUND),
    (RateLimited, AuditResult.RATE_LIMITED),
)
MAX_DETAIL = 2000
MAX_ASKED = 1000  # of the detail, for what the client asked


def record(
    *,
    actor: str,
    scope: str | None,
    source: str,
    allowed: bool,
    result: str,
    server_id: str | None = None,
    action_id: int | None = None,
    action_type: str | None = None,
    argv: list[str] | None = None,
    exit_code: int | None = None,
    duration_ms: int | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """Append one audit entry (and one log line; argv is logged, keys never are)."""
    log.info(
        "%s %s on %s by %s: %s",
        source,
        action_type or "command",
        server_id or "-",
        actor,
        result,
        extra={"audit": True, "server_id": server_id, "action_id": action_id},
    )
    with write_transaction():  # see events.record: queue on the writer lock like all writes
        return AuditEntry.create(
            actor=actor,
            scope=scope,
            source=source,
            allowed=allowed,
            result=result,
            server_id=server_id,
            action_id=action_id,
            action_type=action_type,
            argv=json.dumps(argv) if argv is not None else None,
            exit_code=exit_code,
            duration_ms=duration_ms,
            detail=_storable(detail or "")[:MAX_DETAIL] or None,
        )


def _storable(text: str) -> str:
    """`text` as any database stores it: NUL (PostgreSQL refuses it) and lone surrogates
    (not UTF-8) written as escapes; the detail may quote what a client sent."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_refusal(error: ControlError, asked: Mapping[str, Any]) -> str:
    """The detail of a refused request: status, code, message, field errors, what was asked.

    What was asked is JSON with every non-ASCII character escaped (so NUL and surrogates are
    plain text), cut to `MAX_ASKED` characters.
    """
    why = f"{error.status} {error.code}: {error.message}"
    if error.errors:
        problems = json.dumps(error.errors, ensure_ascii=True, sort_keys=True, default=str)
        why = f"{why} {problems}"
    shown = json.dumps(asked, ensure_ascii=True, separators=(",", ":"), default=str)
    return f"{_clip(why, MAX_DETAIL - MAX_ASKED - 10)}; asked: {_clip(shown, MAX_ASKED)}"


@contextlib.contextmanager
def refusals(
    *,
    actor: str,
    scope: str | None,
    source: str,
    server_id: str | None,
    action_type: str | None,
    asked: Mapping[str, Any],
) -> Iterator[None]:
    """Audit the request run inside if it is refused (see `REFUSALS`), then let the error go.

    Values that could not be stored in their column (a server id from a URL path is any
    string) are left out of it; the detail still shows them as asked.
    """
    try:
        yield
    except ControlError as error:
        result = next((r for kind, r in REFUSALS if isinstance(error, kind)), None)
        if result is None:
            raise
        with write_transaction():
            record(
                actor=actor,
                scope=scope,
                source=source,
                allowed=False,
                result=result,
                server_id=_fits(SERVER_ID, server_id),
                action_type=_fits(ACTION_TYPE, action_type),
                detail=describe_refusal(error, asked),
            )
        raise


def record_invalid_request(
    *, actor: str, scope: str | None, source: str, asked: Any, errors: Mapping[str, Any]
) -> None:
    """Audit a request refused by schema validation (a 422 before any domain rule ran).

    An action type of `restart;id` or a NUL in a command fails there, not in the whitelist:
    it is still an attempt to run something, so it is written down with what was asked.
    """
    fields = asked if isinstance(asked, Mapping) else {}
    server_id = fields.get("server_id")
    action_type = fields.get("action_type")
    error = ValidationFailed("Request validation failed", errors=dict(errors))
    record(
        actor=actor,
        scope=scope,
        source=source,
        allowed=False,
        result=AuditResult.INVALID,
        server_id=_fits(SERVER_ID, server_id if isinstance(server_id, str) else None),
        action_type=_fits(ACTION_TYPE, action_type if isinstance(action_type, str) else None),
        detail=describe_refusal(
            error, {"body": asked} if not isinstance(asked, Mapping) else asked
        ),
    )


def _fits(pattern: re.Pattern[str], value: str | None) -> str | None:
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


def list_entries(
    *,
    server_id: str | None = None,
    source: str | None = None,
    result: str | None = None,
    actor: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """A page of audit entries, newest first, and how many match the filters."""
    query = filtered(
        AuditEntry.select(),
        [
            (AuditEntry.server_id, server_id),
            (AuditEntry.source, source),
            (AuditEntry.result, result),
            (AuditEntry.actor, actor),
        ],
    )
    return page(query, AuditEntry.id.desc(), limit, offset)
