"""Offline detection: servers silent for longer than `HOMELAB_OFFLINE_AFTER` go offline.

Their health goes offline in the same UPDATE (offline wins over every other verdict, see
`control.fleet.health.judge`); coming back is judged by the next heartbeat.
"""

from __future__ import annotations

import datetime as dt

import peewee as pw

from control.db import is_sqlite, write_transaction
from control.fleet import events, health
from control.fleet.events import EventType
from control.models import Server, ServerHealth, ServerStatus, utcnow

# What every server this sweep marks offline is judged: offline, whatever it reported last.
_OFFLINE = health.judge(health.Facts(status=ServerStatus.OFFLINE), health.Thresholds())


def mark_offline(
    offline_after: int, now: dt.datetime | None = None, since: dt.datetime | None = None
) -> list[str]:
    """Mark online servers silent for more than `offline_after` seconds offline, in one UPDATE.

    `since` is when offline detection (re)started: the scheduler passes the moment it became
    leader. Silence is counted from the later of a server's `last_seen` and `since`, so after an
    outage of control (when no heartbeat could arrive) every server gets one full
    `offline_after` to report before it is judged, instead of the whole fleet flapping offline
    on the first tick. Records a status_changed event and a health_changed event (error) for
    each, in one INSERT; returns their ids.
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=offline_after)
    if since is not None and since >= cutoff:
        # max(last_seen, since) < cutoff needs since < cutoff: within the grace nobody goes.
        return []
    silent = (Server.status == ServerStatus.ONLINE) & (Server.last_seen < cutoff)
    with write_transaction():
        # Each one's health before (for the events' `from`), read first because RETURNING
        # gives the new row; on PostgreSQL the rows stay locked until the UPDATE below, so a
        # heartbeat cannot change them in between (SQLite's write lock is already ours).
        before = Server.select(Server.id, Server.health).where(silent)
        if not is_sqlite():
            before = before.for_update()
        was = {row.id: row.health for row in before}
        if not was:
            return []
        rows = (
            Server.update(
                status=ServerStatus.OFFLINE,
                health=ServerHealth.OFFLINE,
                health_reasons=health.dump_reasons(_OFFLINE.reasons),
                health_changed_at=pw.Case(
                    None, [(Server.health != ServerHealth.OFFLINE, now)], Server.health_changed_at
                ),
            )
            .where(silent)
            .returning(Server.id)
            .execute()
        )
        ids = sorted(row.id for row in rows)
        rows_of_events = []
        for server_id in ids:
            rows_of_events.append(
                {
                    "type": EventType.STATUS_CHANGED,
                    "server_id": server_id,
                    "created_at": now,
                    "message": f"server {server_id} is offline (no heartbeat for {offline_after}s)",
                    "details": {"status": ServerStatus.OFFLINE},
                }
            )
            if was.get(server_id) != ServerHealth.OFFLINE:
                rows_of_events.append(
                    health.change_event(server_id, was.get(server_id), _OFFLINE, now)
                )
        events.record_many(rows_of_events)
    return ids
