"""Offline detection: servers silent for longer than `HOMELAB_OFFLINE_AFTER` go offline."""

from __future__ import annotations

import datetime as dt

from control.db import write_transaction
from control.fleet import events
from control.fleet.events import EventType
from control.models import Server, ServerStatus, utcnow


def mark_offline(
    offline_after: int, now: dt.datetime | None = None, since: dt.datetime | None = None
) -> list[str]:
    """Mark online servers silent for more than `offline_after` seconds offline, in one UPDATE.

    `since` is when offline detection (re)started: the scheduler passes the moment it became
    leader. Silence is counted from the later of a server's `last_seen` and `since`, so after an
    outage of control (when no heartbeat could arrive) every server gets one full
    `offline_after` to report before it is judged, instead of the whole fleet flapping offline
    on the first tick. Records a status_changed event for each; returns their ids.
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=offline_after)
    if since is not None and since >= cutoff:
        # max(last_seen, since) < cutoff needs since < cutoff: within the grace nobody goes.
        return []
    with write_transaction():
        rows = (
            Server.update(status=ServerStatus.OFFLINE)
            .where((Server.status == ServerStatus.ONLINE) & (Server.last_seen < cutoff))
            .returning(Server.id)
            .execute()
        )
        ids = sorted(row.id for row in rows)
        events.record_many(
            [
                {
                    "type": EventType.STATUS_CHANGED,
                    "server_id": server_id,
                    "created_at": now,
                    "message": f"server {server_id} is offline (no heartbeat for {offline_after}s)",
                    "details": {"status": ServerStatus.OFFLINE},
                }
                for server_id in ids
            ]
        )
    return ids
