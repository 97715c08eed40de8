"""The audit log: every execution attempt, allowed or refused, with who, where, what and how."""

from __future__ import annotations

import enum
import json
import logging

from control.models import AuditEntry
from control.queries import filtered, page

log = logging.getLogger("control.remediation.audit")


class AuditSource(enum.StrEnum):
    """Where an execution attempt came from."""

    ACTION = "action"  # the dispatcher running a queued action
    EXECUTE = "execute"  # the synchronous execute endpoint
    ENROLLMENT = "enrollment"  # an operator reset a server's enrollment (control.fleet.enrollment)


class AuditResult(enum.StrEnum):
    """How an execution attempt ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SSH_ERROR = "ssh_error"
    REFUSED = "refused"


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
        # The detail may quote what a client sent; PostgreSQL refuses NUL in text.
        detail=(detail or "").replace("\x00", "\ufffd")[:2000] or None,
    )


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
