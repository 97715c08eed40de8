"""The action queue's rules: creation through the approval gate, approval, rejection, claiming.

Two gates beside the whitelist: an action is approved at once only when its server is not
paused and its type does not say `approval = "always"` (reboot, upgrade_packages); and a type
that changes software is refused outright on a server whose `update_enabled` is false (here,
on execute, and for alert rules alike: they all come through `software_gate`).

Every state change is one conditional UPDATE (`… WHERE status = <expected>`), so concurrent
approvals, two dispatchers or a retried request can never move an action twice.

Over 300 lines: every transition of one state machine (create, approve, reject, claim,
finish, interrupt) with its refusal audit; split, the transitions would lose sight of each
other's conditional UPDATEs.
"""

from __future__ import annotations

import json
from typing import Any

import peewee as pw

from control.db import db, write_transaction
from control.errors import CommandNotAllowed, Conflict
from control.fleet import events
from control.fleet.events import EventType
from control.keys import Principal
from control.models import OPEN_ACTION_STATUSES, Action, ActionStatus, Alert, Server, utcnow
from control.queries import count_by, filtered, get_or_404, page
from control.remediation import audit
from control.remediation.ratelimit import KeyRateLimiter
from control.remediation.wakeup import announce_approved
from control.remediation.whitelist import Approval, CommandType, Whitelist, to_shell

INTERRUPTED = "interrupted: control stopped while the command was running"


def canonical_parameters(parameters: dict[str, Any] | None) -> str:
    """The stored form of parameters: sorted, compact JSON, so equal inputs compare equal."""
    return json.dumps(parameters or {}, sort_keys=True, separators=(",", ":"))


def get_action(action_id: int) -> Action:
    """One action, or NotFound."""
    return get_or_404(Action, action_id, f"Action {action_id}")


def list_actions(
    *,
    status: str | None = None,
    server_id: str | None = None,
    action_type: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> tuple[list[Action], int]:
    """A page of actions, newest first, and how many match the filters."""
    query = filtered(
        Action.select(),
        [
            (Action.status, status),
            (Action.server_id, server_id),
            (Action.action_type, action_type),
        ],
    )
    return page(query, Action.id.desc(), limit, offset)


def list_server_actions(server_id: str, **filters: Any) -> tuple[list[Action], int]:
    """Like `list_actions` for one server; NotFound when there is no such server."""
    get_or_404(Server, server_id, f"Server '{server_id}'")
    return list_actions(server_id=server_id, **filters)


def software_gate(server: Server, command_type: CommandType) -> None:
    """CommandNotAllowed when `command_type` changes software and `server` has updates off."""
    if command_type.changes_software and not server.update_enabled:
        raise CommandNotAllowed(
            f"action type {command_type.name} changes software and server '{server.id}' has "
            "update_enabled false"
        )


def find_open_action(server_id: str, action_type: str, parameters: str) -> Action | None:
    """The open action with these stored (canonical) parameters, if there is one."""
    action: Action | None = (
        Action.select()
        .where(
            (Action.server_id == server_id)
            & (Action.action_type == action_type)
            & (Action.parameters == parameters)
            & Action.status.in_(OPEN_ACTION_STATUSES)
        )
        .first()
    )
    return action


def create_action(
    whitelist: Whitelist,
    *,
    server_id: str,
    action_type: str,
    parameters: dict[str, Any] | None,
    created_by: str,
    alert_id: int | None = None,
    caller: Principal | None = None,
    limiter: KeyRateLimiter | None = None,
) -> Action:
    """Queue an action: approved by "auto" unless the server is paused, then pending.

    NotFound for an unknown server or alert, CommandNotAllowed for a type outside the
    whitelist, ValidationFailed for a bad parameter, Conflict when the same action is already
    open. With a `caller` (a client's request, not an alert rule) RateLimited when the caller's
    key is over `limiter`'s budget, and every refusal but the Conflict is audited; an alert
    rule's refusals are kept on the alert instead.
    """
    if caller is None:
        return _create(whitelist, server_id, action_type, parameters, created_by, alert_id)
    asked = {
        "server_id": server_id,
        "action_type": action_type,
        "parameters": parameters,
        "alert_id": alert_id,
    }
    with audit.refusals(
        actor=caller.name,
        scope=caller.scope,
        source=audit.AuditSource.ACTION,
        server_id=server_id,
        action_type=action_type,
        asked=asked,
    ):
        return _create(
            whitelist, server_id, action_type, parameters, created_by, alert_id, limiter, caller
        )


def _create(
    whitelist: Whitelist,
    server_id: str,
    action_type: str,
    parameters: dict[str, Any] | None,
    created_by: str,
    alert_id: int | None,
    limiter: KeyRateLimiter | None = None,
    caller: Principal | None = None,
) -> Action:
    """`create_action`'s work: lookups, the caller's rate limit, the whitelist, the insert."""
    get_or_404(Server, server_id, f"Server '{server_id}'")
    if alert_id is not None:
        get_or_404(Alert, alert_id, f"Alert {alert_id}")
    if limiter is not None and caller is not None:
        # Only now: a 404 (like a 401 or 403) never reached the whitelist and does not count.
        limiter.hit(caller.name, "actions")
    argv = whitelist.render(action_type, parameters)
    command_type = whitelist.command_type(action_type)
    stored = canonical_parameters(parameters)
    now = utcnow()
    with write_transaction():
        server = get_or_404(Server, server_id, f"Server '{server_id}'")
        software_gate(server, command_type)  # read in this transaction: no race with a PUT
        always = command_type.approval == Approval.ALWAYS
        approved = not server.is_paused and not always
        try:
            with db.atomic():  # savepoint: the unique index decides duplicates, race-free
                action = Action.create(
                    server_id=server_id,
                    action_type=action_type,
                    parameters=stored,
                    command=to_shell(argv),
                    status=ActionStatus.APPROVED if approved else ActionStatus.PENDING,
                    alert_id=alert_id,
                    created_by=created_by,
                    created_at=now,
                    approved_by="auto" if approved else None,
                    approved_at=now if approved else None,
                )
        except pw.IntegrityError:
            raise Conflict(_duplicate_message(server_id, action_type, stored)) from None
        if approved:
            gate = "auto-approved"
        elif server.is_paused:
            gate = "waiting for approval (server paused)"
        else:
            gate = f"waiting for approval ({action_type} always needs approval)"
        events.record(
            EventType.ACTION_CREATED,
            f"action {action.id} {action_type} on {server_id} queued, {gate}",
            server_id=server_id,
            details={"action_id": action.id, "by": created_by, "status": action.status},
        )
    if approved:
        announce_approved()
    return action


def _duplicate_message(server_id: str, action_type: str, stored: str) -> str:
    existing = find_open_action(server_id, action_type, stored)
    which = f" (action {existing.id}, {existing.status})" if existing else ""
    return f"An open {action_type} action for server '{server_id}' already exists{which}"


def _transition(
    action_id: int, expected: str, changes: dict[pw.Field[Any], Any], verb: str
) -> Action:
    """Apply `changes` only if the action is in `expected`; NotFound or Conflict otherwise."""
    with write_transaction():
        moved = (
            Action.update(changes)
            .where((Action.id == action_id) & (Action.status == expected))
            .execute()
        )
        action = get_action(action_id)
        if not moved:
            raise Conflict(f"Action {action_id} is {action.status}, only {expected} can be {verb}")
    return action


def approve_action(action_id: int, approved_by: str, whitelist: Whitelist) -> Action:
    """Approve a pending action; the dispatcher picks it up at once.

    Conflict for a software change on a server whose updates were turned off while it waited
    (it can still be rejected).
    """
    _check_still_allowed(action_id, whitelist)
    action = _transition(
        action_id,
        ActionStatus.PENDING,
        {
            Action.status: ActionStatus.APPROVED,
            Action.approved_by: approved_by,
            Action.approved_at: utcnow(),
        },
        "approved",
    )
    events.record(
        EventType.ACTION_APPROVED,
        f"action {action_id} approved by {approved_by}",
        server_id=action.server_id,
        details={"action_id": action_id},
    )
    announce_approved()
    return action


def _check_still_allowed(action_id: int, whitelist: Whitelist) -> None:
    """Conflict when a pending action became a software change its server now refuses."""
    action = get_action(action_id)
    server = Server.get_or_none(Server.id == action.server_id)
    command_type = whitelist.types.get(action.action_type)
    if server is None or command_type is None or action.status != ActionStatus.PENDING:
        return  # the transition (or the dispatcher's render) says what is wrong
    try:
        software_gate(server, command_type)
    except CommandNotAllowed as exc:
        raise Conflict(f"Action {action_id} cannot be approved: {exc.message}") from None


def reject_action(action_id: int, rejected_by: str, reason: str) -> Action:
    """Reject a pending action with a reason; it will never run."""
    action = _transition(
        action_id,
        ActionStatus.PENDING,
        {
            Action.status: ActionStatus.REJECTED,
            Action.rejected_by: rejected_by,
            Action.rejected_at: utcnow(),
            Action.rejection_reason: reason,
        },
        "rejected",
    )
    events.record(
        EventType.ACTION_REJECTED,
        f"action {action_id} rejected by {rejected_by}",
        server_id=action.server_id,
        details={"action_id": action_id, "reason": reason},
    )
    return action


def approved_action_ids(limit: int) -> list[int]:
    """The oldest approved actions, for the dispatcher to try to claim."""
    query = (
        Action.select(Action.id)
        .where(Action.status == ActionStatus.APPROVED)
        .order_by(Action.id)
        .limit(limit)
    )
    return [row.id for row in query]


def claim_action(action_id: int, holder: str) -> bool:
    """Move an approved action to executing for `holder`; False if someone else got it first."""
    with write_transaction():
        claimed = (
            Action.update(status=ActionStatus.EXECUTING, executed_at=utcnow(), claimed_by=holder)
            .where((Action.id == action_id) & (Action.status == ActionStatus.APPROVED))
            .execute()
        )
        if claimed:
            action = Action.get_by_id(action_id)
            events.record(
                EventType.ACTION_STARTED,
                f"action {action_id} started",
                server_id=action.server_id,
                details={"action_id": action_id},
            )
    return bool(claimed)


def finish_action(
    action_id: int,
    exit_code: int | None,
    stdout: str | None = None,
    stderr: str | None = None,
    failure_reason: str | None = None,
) -> Action:
    """Record the outcome of an executing action: completed on exit 0, failed otherwise."""
    ok = exit_code == 0 and failure_reason is None
    status = ActionStatus.COMPLETED if ok else ActionStatus.FAILED
    with write_transaction():
        Action.update(
            status=status,
            completed_at=utcnow(),
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            failure_reason=failure_reason,
        ).where((Action.id == action_id) & (Action.status == ActionStatus.EXECUTING)).execute()
        action = Action.get_by_id(action_id)
        outcome = "completed" if ok else f"failed ({failure_reason or f'exit {exit_code}'})"
        events.record(
            EventType.ACTION_COMPLETED if ok else EventType.ACTION_FAILED,
            f"action {action_id} {outcome}",
            server_id=action.server_id,
            details={"action_id": action_id, "exit_code": exit_code},
        )
    return action


def interrupt_orphans(holder: str) -> list[int]:
    """Fail every action left executing by another (dead) dispatcher; never run them again."""
    now = utcnow()
    with write_transaction():
        rows = (
            Action.update(status=ActionStatus.FAILED, completed_at=now, failure_reason=INTERRUPTED)
            .where(
                (Action.status == ActionStatus.EXECUTING)
                & ((Action.claimed_by != holder) | Action.claimed_by.is_null())
            )
            .returning(Action.id, Action.server_id)
            .execute()
        )
        orphans = [(row.id, row.server_id) for row in rows]
        events.record_many(
            [
                {
                    "type": EventType.ACTION_FAILED,
                    "server_id": server_id,
                    "created_at": now,
                    "message": f"action {action_id} failed ({INTERRUPTED})",
                    "details": {"action_id": action_id},
                }
                for action_id, server_id in orphans
            ]
        )
    return sorted(action_id for action_id, _ in orphans)


def count_by_status() -> dict[str, int]:
    """How many actions are in each status (zeros included), for /metrics."""
    return count_by(Action.status, ActionStatus)
