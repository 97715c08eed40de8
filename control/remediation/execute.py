"""Synchronous execution (seed 004): one whitelisted command, run now, its output returned.

The rules the API view used to hold: the server lookup, the caller's rate limit (only requests
that reach the whitelist count), the whitelist match (a refusal is a 400 here, not the queue's
403), the run itself (audited by the runner), and an event in the fleet's log like a queued
action's, so `/events` shows both. Every refusal (404, 429, 400, 422) is audited with what was
asked. A software change on a server with `update_enabled` false is refused like a command
outside the whitelist (400).
"""

from __future__ import annotations

from typing import TypedDict

from control.errors import CommandNotAllowed, CommandTimeout, ExecuteNotAllowed, SshError
from control.fleet import events, servers
from control.fleet.events import EventType
from control.keys import Principal
from control.remediation import audit
from control.remediation.actions import software_gate
from control.remediation.executor import CommandResult
from control.remediation.ratelimit import KeyRateLimiter
from control.remediation.runner import Remediation


class _AuditFields(TypedDict):
    """Who asked, as both the runner and the refusal audit it."""

    actor: str
    scope: str | None
    source: str


def execute_command(
    remediation: Remediation,
    limiter: KeyRateLimiter,
    caller: Principal,
    server_id: str,
    *,
    command: str | None = None,
    action_type: str | None = None,
    parameters: dict[str, str] | None = None,
) -> CommandResult:
    """Run `command` (a string equal to a whitelisted render) or `action_type` + `parameters`.

    NotFound, RateLimited, ExecuteNotAllowed (400), ValidationFailed, CommandTimeout and
    SshError as the contract says; a non-zero exit is a result, not an error.
    """
    who: _AuditFields = {
        "actor": caller.name,
        "scope": caller.scope,
        "source": audit.AuditSource.EXECUTE,
    }
    asked = (
        {"command": command}
        if command is not None
        else {"action_type": action_type, "parameters": parameters}
    )
    with audit.refusals(
        **who, server_id=server_id, action_type=action_type, asked={"server_id": server_id, **asked}
    ):
        server = servers.get_server(server_id)
        # After the lookup: a 404 (like a 401 or 403) never reached the whitelist, so it does
        # not count against the key.
        limiter.hit(caller.name, "execute")
        try:
            if command is not None:
                match = remediation.whitelist.match_command(command)
                action_type, argv = match.action_type, match.argv
            else:
                argv = remediation.whitelist.render(action_type or "", parameters)
            # The operator runs it now, so `approval = "always"` is moot; updates off is not.
            software_gate(server, remediation.whitelist.command_type(action_type or ""))
        except CommandNotAllowed as exc:
            raise ExecuteNotAllowed(exc.message) from None
    try:
        result = remediation.run(server, argv, **who, action_type=action_type)
    except (CommandTimeout, SshError) as exc:
        _record(server_id, action_type, caller, f"failed ({exc.message})", exit_code=None)
        raise
    outcome = "completed" if result.exit_code == 0 else f"failed (exit {result.exit_code})"
    _record(server_id, action_type, caller, outcome, exit_code=result.exit_code)
    return result


def _record(
    server_id: str, action_type: str | None, caller: Principal, outcome: str, exit_code: int | None
) -> None:
    """One event per synchronous execution, shaped like the queued actions' events."""
    ok = outcome == "completed"
    events.record(
        EventType.COMMAND_COMPLETED if ok else EventType.COMMAND_FAILED,
        f"command {action_type} on {server_id} by {caller.name} {outcome}",
        server_id=server_id,
        details={"action_type": action_type, "by": caller.name, "exit_code": exit_code},
    )
