"""Running whitelisted commands on servers: the whitelist, the SSH executor and the audit log.

One `Remediation` per process, shared by the synchronous execute endpoint and the dispatcher.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from control.config import Settings
from control.errors import CommandTimeout, SshError
from control.models import Server
from control.remediation import audit
from control.remediation.audit import AuditResult
from control.remediation.executor import CommandResult, SshExecutor
from control.remediation.whitelist import Whitelist, load_whitelist

Observer = Callable[[str, str, float], None]  # (action_type, source, seconds)


def ssh_target(server: Server, default_user: str) -> tuple[str, int, str]:
    """Where to reach a server: the `ip_address` the operator set, else its pinned SSH address.

    The pinned address is the host name the operator gave, or, for a server its heartbeat
    registered, the address that first heartbeat came from. Never a name or address a later
    heartbeat reports: a box would otherwise choose where commands (and SSH credentials) go.
    """
    host = server.ip_address or server.ssh_address or server.hostname
    return host, server.ssh_port or 22, server.ssh_user or default_user


class Remediation:
    """Executes argv on servers over SSH and writes every attempt to the audit log."""

    def __init__(self, settings: Settings, observe: Observer | None = None):
        self.settings = settings
        self.whitelist: Whitelist = load_whitelist(settings.commands_file or None)
        self.executor = SshExecutor(
            key_file=settings.ssh_key_file or None,
            known_hosts=settings.ssh_known_hosts or None,
            connect_timeout=settings.ssh_connect_timeout,
            command_timeout=settings.command_timeout,
            default_user=settings.ssh_user,
            idle_timeout=settings.ssh_idle,
        )
        self._observe = observe or (lambda *_: None)

    def run(
        self,
        server: Server,
        argv: list[str],
        *,
        actor: str,
        scope: str | None,
        source: str,
        action_type: str | None,
        action_id: int | None = None,
    ) -> CommandResult:
        """Run `argv` on `server`, audit the outcome, re-raise CommandTimeout / SshError."""
        host, port, user = ssh_target(server, self.settings.ssh_user)
        entry = {
            "actor": actor,
            "scope": scope,
            "source": source,
            "server_id": server.id,
            "action_id": action_id,
            "action_type": action_type,
            "argv": argv,
        }
        started = time.perf_counter()
        try:
            result = self.executor.run(host, port, user, argv, timeout=self._timeout(action_type))
        except CommandTimeout as exc:
            self._finish(entry, started, AuditResult.TIMEOUT, detail=exc.message)
            raise
        except SshError as exc:
            self._finish(entry, started, AuditResult.SSH_ERROR, detail=exc.message)
            raise
        self._finish(
            entry,
            started,
            AuditResult.COMPLETED if result.exit_code == 0 else AuditResult.FAILED,
            exit_code=result.exit_code,
            duration_ms=result.duration_ms,
        )
        return result

    def _timeout(self, action_type: str | None) -> float | None:
        """The type's own timeout (e.g. upgrade_packages' 30 minutes), else the default."""
        if action_type is None or action_type not in self.whitelist:
            return None
        return self.whitelist.command_type(action_type).timeout

    def _finish(self, entry: dict[str, Any], started: float, result: str, **fields: Any) -> None:
        elapsed = time.perf_counter() - started
        fields.setdefault("duration_ms", round(elapsed * 1000))
        audit.record(**entry, allowed=True, result=result, **fields)
        self._observe(entry["action_type"] or "command", entry["source"], elapsed)

    def close(self) -> None:
        """Close pooled SSH connections."""
        self.executor.close()
