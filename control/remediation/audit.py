"""The audit log: every execution attempt, allowed or refused, with who, where, what and how."""

from __future__ import annotations

import json
import logging

from control.models import AuditEntry

log = logging.getLogger("control.remediation.audit")


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
        detail=(detail or "")[:2000] or None,
    )


def list_entries(
    server_id: str | None = None,
    source: str | None = None,
    result: str | None = None,
    actor: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """A page of audit entries, newest first, and how many match the filters."""
    query = AuditEntry.select()
    for column, value in (
        (AuditEntry.server_id, server_id),
        (AuditEntry.source, source),
        (AuditEntry.result, result),
        (AuditEntry.actor, actor),
    ):
        if value:
            query = query.where(column == value)
    total = query.count()
    return list(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset)), total
