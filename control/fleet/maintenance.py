"""Maintenance mode: a paused server's new actions wait for an operator's approval."""

from __future__ import annotations

from control.db import write_transaction
from control.fleet import events, servers
from control.fleet.events import EventType
from control.models import Server, utcnow
from control.queries import get_or_404


def set_paused(server_id: str, paused: bool, by: str) -> Server:
    """Pause or unpause a server; idempotent, with an event only when the state changes."""
    with write_transaction():
        server = get_or_404(Server, server_id, f"Server '{server_id}'")
        if server.is_paused != paused:
            Server.update(is_paused=paused, paused_at=utcnow() if paused else None).where(
                Server.id == server_id
            ).execute()
            verb = "paused (maintenance mode)" if paused else "unpaused"
            events.record(
                EventType.SERVER_PAUSED if paused else EventType.SERVER_UNPAUSED,
                f"server {server_id} {verb} by {by}",
                server_id=server_id,
                details={"by": by},
            )
    return servers.get_server(server_id)
