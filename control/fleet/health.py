"""Device health (seed 002): the one place a server's `health` and `health_reasons` are judged.

`judge` is a pure function of the facts a server last reported and the thresholds; the
heartbeat path, the offline sweep, the operator's manual state and inventory changes all go
through it, so the API, the console and the alert rules can never disagree on what
"degraded" means. `store_verdict` writes a change and its `health_changed` event.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from control.db import write_transaction
from control.fleet import events
from control.fleet.events import EventType
from control.models import (
    EventSeverity,
    MetricsSample,
    Server,
    ServerHealth,
    ServerStatus,
    utcnow,
)
from control.queries import get_or_404

# Worst first: a verdict is the worst health any rule gives.
_RANK = {ServerHealth.HEALTHY: 0, ServerHealth.DEGRADED: 1, ServerHealth.FAILED: 2}
# The states an operator may set by hand (offline and unknown are facts, not opinions).
MANUAL_STATES = (ServerHealth.HEALTHY, ServerHealth.DEGRADED, ServerHealth.FAILED)
_FAILED_CONTAINER_STATES = ("dead", "restarting")
MAX_REASONS = 10  # kept in a verdict; the last says how many more there were


@dataclass(frozen=True)
class Thresholds:
    """Where health turns degraded or failed; the defaults are DESIGN's (settings override)."""

    temperature_degraded: float = 75.0
    temperature_failed: float = 85.0
    disk_degraded: float = 90.0
    disk_failed: float = 98.0
    memory_degraded: float = 95.0

    @classmethod
    def from_settings(cls, settings: Any) -> Thresholds:
        """The thresholds configured in control's Settings (`HOMELAB_HEALTH_*`)."""
        return cls(
            temperature_degraded=settings.health_temperature_degraded,
            temperature_failed=settings.health_temperature_failed,
            disk_degraded=settings.health_disk_degraded,
            disk_failed=settings.health_disk_failed,
            memory_degraded=settings.health_memory_degraded,
        )


@dataclass(frozen=True)
class Facts:
    """What health is judged from: the server's status and the latest facts it reported."""

    status: str
    temperature: float | None = None
    disk_percent: float | None = None
    memory_percent: float | None = None
    containers: Sequence[Mapping[str, Any]] | None = None
    services: Sequence[Mapping[str, Any]] | None = None
    commit_hash: str | None = None
    version_lock: str | None = None
    manual_health: str | None = None
    manual_reason: str | None = None
    manual_by: str | None = None


@dataclass(frozen=True)
class Verdict:
    """A judged health and the reasons for it, in words an operator reads."""

    health: ServerHealth
    reasons: tuple[str, ...] = ()


def _number(value: float) -> str:
    """`81.0` → `81`, `81.25` → `81.2`: how a reading appears in a reason."""
    return f"{round(value, 1):g}"


def is_failed_container(container: Mapping[str, Any]) -> bool:
    """The wire contract's rule: dead, restarting, unhealthy, or exited with a non-zero code."""
    state = container.get("state")
    if state in _FAILED_CONTAINER_STATES or container.get("health") == "unhealthy":
        return True
    return state == "exited" and container.get("exit_code") not in (None, 0)


def _container_reason(container: Mapping[str, Any]) -> str:
    name, state = container.get("name"), container.get("state")
    if state == "exited":
        return f"container {name} exited ({container.get('exit_code')})"
    if state in _FAILED_CONTAINER_STATES:
        return f"container {name} {state}"
    return f"container {name} unhealthy"


def _findings(facts: Facts, limits: Thresholds) -> list[tuple[ServerHealth, str]]:
    """Every rule that fires, as (the health it gives, why)."""
    found: list[tuple[ServerHealth, str]] = []
    if facts.temperature is not None:
        reading = _number(facts.temperature)
        if facts.temperature >= limits.temperature_failed:
            limit = _number(limits.temperature_failed)
            found.append((ServerHealth.FAILED, f"temperature {reading} °C ≥ {limit}"))
        elif facts.temperature >= limits.temperature_degraded:
            limit = _number(limits.temperature_degraded)
            found.append((ServerHealth.DEGRADED, f"temperature {reading} °C ≥ {limit}"))
    if facts.disk_percent is not None:
        reading = _number(facts.disk_percent)
        if facts.disk_percent >= limits.disk_failed:
            found.append(
                (ServerHealth.FAILED, f"disk / {reading} % ≥ {_number(limits.disk_failed)}")
            )
        elif facts.disk_percent >= limits.disk_degraded:
            found.append(
                (ServerHealth.DEGRADED, f"disk / {reading} % ≥ {_number(limits.disk_degraded)}")
            )
    if facts.memory_percent is not None and facts.memory_percent >= limits.memory_degraded:
        reading, limit = _number(facts.memory_percent), _number(limits.memory_degraded)
        found.append((ServerHealth.DEGRADED, f"memory {reading} % ≥ {limit}"))
    for container in facts.containers or ():
        if is_failed_container(container):
            found.append((ServerHealth.DEGRADED, _container_reason(container)))
    for service in facts.services or ():
        state = service.get("active_state")
        if state == "failed":
            found.append((ServerHealth.FAILED, f"service {service.get('name')} failed"))
        elif state != "active":
            found.append((ServerHealth.DEGRADED, f"service {service.get('name')} {state}"))
    lock, commit = facts.version_lock, facts.commit_hash
    if lock and not (commit and same_commit(commit, lock)):
        running = commit[:7] if commit else "unknown"
        found.append((ServerHealth.DEGRADED, f"commit {running} ≠ locked {lock[:7]}"))
    return found


def same_commit(reported: str, locked: str) -> bool:
    """Whether two hashes name one commit: one may be an abbreviation of the other."""
    reported, locked = reported.lower(), locked.lower()
    return reported.startswith(locked) or locked.startswith(reported)


def judge(facts: Facts, limits: Thresholds) -> Verdict:
    """The server's health and why, from its facts.

    Offline (or never heard from) wins over everything, the operator's manual state included:
    a box that does not report cannot be vouched for. Otherwise a manual state holds until it
    is cleared; otherwise the worst rule that fires, healthy when none does.
    """
    if facts.status == ServerStatus.OFFLINE:
        return Verdict(ServerHealth.OFFLINE, ("no heartbeat: the server is offline",))
    if facts.manual_health:
        who = f" by {facts.manual_by}" if facts.manual_by else ""
        why = f": {facts.manual_reason}" if facts.manual_reason else ""
        return Verdict(ServerHealth(facts.manual_health), (f"set manually{who}{why}",))
    if facts.status == ServerStatus.UNKNOWN:
        return Verdict(ServerHealth.UNKNOWN, ("no heartbeat yet",))
    found = _findings(facts, limits)
    if not found:
        return Verdict(ServerHealth.HEALTHY)
    worst = max((health for health, _ in found), key=_RANK.__getitem__)
    # The reasons that decide the verdict first, then the lesser ones.
    ordered = [reason for _, reason in sorted(found, key=lambda item: -_RANK[item[0]])]
    if len(ordered) > MAX_REASONS:
        # A box with 500 dead containers must not write 500 reasons into every event, the
        # server row and every list that shows it: the first ones, and how many more.
        ordered[MAX_REASONS - 1 :] = [f"…and {len(ordered) - MAX_REASONS + 1} more"]
    return Verdict(worst, tuple(ordered))


def change_severity(new: str) -> EventSeverity:
    """How serious a change to `new` health is: failed/offline error, degraded warning."""
    if new in (ServerHealth.FAILED, ServerHealth.OFFLINE):
        return EventSeverity.ERROR
    if new == ServerHealth.DEGRADED:
        return EventSeverity.WARNING
    return EventSeverity.INFO


def dump_reasons(reasons: Sequence[str]) -> str | None:
    """`health_reasons` as the server row keeps it: a JSON list, NULL for none."""
    return json.dumps(list(reasons), ensure_ascii=False) if reasons else None


def load_reasons(stored: str | None) -> list[str]:
    """`health_reasons` from the server row."""
    return json.loads(stored) if stored else []


def change_event(
    server_id: str, old: str | None, verdict: Verdict, now: dt.datetime
) -> dict[str, Any]:
    """The `health_changed` event row of a change to `verdict.health`, for `events.record_many`
    (the offline sweep records thousands at once)."""
    new = verdict.health
    because = f": {'; '.join(verdict.reasons)}" if verdict.reasons else ""
    return {
        "type": EventType.HEALTH_CHANGED,
        "message": f"server {server_id} is {new}{because}",
        "server_id": server_id,
        "details": {"from": old, "to": new, "reasons": list(verdict.reasons)},
        "severity": change_severity(new),
        "created_at": now,
    }


def record_change(
    server_id: str, old: str | None, verdict: Verdict, now: dt.datetime | None = None
) -> None:
    """Record the `health_changed` event of a server whose health became `verdict.health`."""
    row = change_event(server_id, old, verdict, now or utcnow())
    events.record(
        row["type"],
        row["message"],
        server_id=server_id,
        details=row["details"],
        severity=row["severity"],
        created_at=row["created_at"],
    )


def store_verdict(server: Server, verdict: Verdict, now: dt.datetime | None = None) -> bool:
    """Write `verdict` on the server row (inside the caller's transaction, if any).

    Returns True, and records the `health_changed` event, when the health itself changed;
    changed reasons alone update the row without an event.
    """
    now = now or utcnow()
    changed = verdict.health != server.health
    reasons = dump_reasons(verdict.reasons)
    if not changed and reasons == server.health_reasons:
        return False
    fields: dict[Any, Any] = {Server.health: verdict.health, Server.health_reasons: reasons}
    if changed:
        fields[Server.health_changed_at] = now
    with write_transaction():
        Server.update(fields).where(Server.id == server.id).execute()
        if changed:
            record_change(server.id, server.health, verdict, now)
    return changed


def facts_of(server: Server) -> Facts:
    """The stored facts of `server` (with its newest sample, if it has one)."""
    sample = None
    if server.latest_sample_id is not None:
        sample = MetricsSample.get_or_none(MetricsSample.id == server.latest_sample_id)
    return Facts(
        status=server.status,
        temperature=sample.temperature if sample else None,
        disk_percent=sample.disk_percent if sample else None,
        memory_percent=sample.memory_percent if sample else None,
        containers=json.loads(server.containers) if server.containers else None,
        services=json.loads(server.services) if server.services else None,
        commit_hash=server.current_commit_hash,
        version_lock=server.version_lock,
        manual_health=server.manual_health,
        manual_reason=server.manual_health_reason,
        manual_by=server.manual_health_by,
    )


def reevaluate(server_id: str, limits: Thresholds, now: dt.datetime | None = None) -> Verdict:
    """Judge a server again from what is stored (after an operator's change); NotFound if none."""
    with write_transaction():
        server = get_or_404(Server, server_id, f"Server '{server_id}'")
        verdict = judge(facts_of(server), limits)
        store_verdict(server, verdict, now)
    return verdict


def set_manual_health(
    server_id: str,
    health: str | None,
    reason: str | None,
    actor: str,
    limits: Thresholds,
) -> Verdict:
    """Set (or with `health=None` clear) the operator's manual health state, and re-judge.

    The manual state holds over every rule until cleared, except offline (see `judge`). Every
    call is a `server_updated` event naming `actor`: a `health_changed` event alone would not
    say who cleared a manual state, and there is none when the health stays the same.
    """
    with write_transaction():
        server = get_or_404(Server, server_id, f"Server '{server_id}'")
        Server.update(
            manual_health=health,
            manual_health_reason=reason if health else None,
            manual_health_by=actor if health else None,
            updated_at=utcnow(),
        ).where(Server.id == server_id).execute()
        why = f": {reason}" if health and reason else ""
        events.record(
            EventType.SERVER_UPDATED,
            f"server {server_id} health set to {health} by {actor}{why}"
            if health
            else f"server {server_id} manual health cleared by {actor}",
            server_id=server_id,
            details={
                "fields": ["manual_health"],
                "by": actor,
                "manual_health": health,
                "reason": reason if health else None,
            },
        )
        server = Server.get_by_id(server_id)
        verdict = judge(facts_of(server), limits)
        store_verdict(server, verdict)
    return verdict
