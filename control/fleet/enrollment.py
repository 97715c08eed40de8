"""Agent identity: which key may speak for which server, and how a new box gets its own key.

An agent key is *unbound* (the bootstrap `HOMELAB_AGENT_KEY`, or `keys create --scope agent`
without `--server-id`) or *bound* to one server. A heartbeat with an unbound key for a server
that has no bound key *enrolls* it: the server is registered if new, and a new key bound to it
is minted and returned this once. From then on only that server's bound key may heartbeat for
it; an unbound key, or one bound elsewhere, is refused (403) before anything is written. So a
shared bootstrap key can add boxes but never speak for one that is already enrolled.

Operator keys may heartbeat for any server (an operator may change every server anyway) and
never enroll. `reset_enrollment` revokes a server's bound keys so its agent can enroll again.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from dataclasses import dataclass
from typing import Any

import peewee as pw

from control.db import db, is_sqlite, write_transaction
from control.errors import Forbidden, RateLimited
from control.fleet import events, group_commit
from control.fleet.events import EventType
from control.fleet.heartbeats import IngestRules, ingest_heartbeat, write_heartbeat
from control.keys import Principal, generate_key, hash_key
from control.models import ApiKey, ApiKeyScope, AuditEntry, Server, utcnow
from control.queries import get_or_404

ENROLL_WINDOW = dt.timedelta(hours=1)
# Namespace of the PostgreSQL advisory locks that serialise enrollments of one server id.
ENROLL_LOCK_NAMESPACE = 0x454E52  # "ENR"


@dataclass(frozen=True)
class EnrollmentPolicy:
    """Whether unbound keys may enroll servers, and how many each may enroll per hour."""

    enabled: bool = True
    per_hour: int = 60


@dataclass(frozen=True)
class Accepted:
    """What a heartbeat did: registered the server, and the bound key minted (enrollment)."""

    registered: bool
    agent_key: str | None = None


def accept_heartbeat(
    beat: dict[str, Any],
    caller: Principal,
    policy: EnrollmentPolicy,
    remote_address: str | None = None,
    now: dt.datetime | None = None,
    rules: IngestRules | None = None,
) -> Accepted:
    """Store a heartbeat if `caller` may speak for its server, enrolling the server if due.

    Forbidden (nothing written) for a key bound to another server, for an unbound key when the
    server is already enrolled, or when enrollment is off; RateLimited when the unbound key
    has enrolled `policy.per_hour` servers in the last hour. `rules`: what ingest judges
    health by (the defaults without).
    """
    server_id = beat["server_id"]
    if caller.scope != ApiKeyScope.AGENT or caller.server_id:
        if caller.server_id and caller.server_id != server_id:
            raise Forbidden(f"This agent key may only report for server '{caller.server_id}'")
        # Written by the group commit (one transaction for the heartbeats waiting), and
        # acknowledged only once committed.
        registered = group_commit.heartbeats.run(
            functools.partial(
                write_heartbeat,
                beat,
                remote_address=remote_address,
                now=now,
                rules=rules,
                key_hash=caller.key_hash,
            ),
            order=server_id,
        )
        return Accepted(registered)
    now = now or utcnow()
    # Checked before taking the write lock too: refusing a shared key for an enrolled server
    # (a hostile box probing) must not queue behind, or hold up, real writes.
    _refuse_if_enrolled(server_id)
    with write_transaction():
        _serialise_enrollment_of(server_id)
        _refuse_if_enrolled(server_id)
        if not policy.enabled:
            raise Forbidden(
                "Enrollment is off: report with a key bound to this server "
                "(homelab-control keys create --scope agent --server-id ID)"
            )
        recent = _enrolled_by(caller.name, since=now - ENROLL_WINDOW)
        if recent >= policy.per_hour:
            raise RateLimited(
                f"This key enrolled {recent} servers in the last hour "
                f"(HOMELAB_ENROLL_RATE={policy.per_hour}); try again later",
                headers={"Retry-After": "60"},
            )
        registered = ingest_heartbeat(beat, remote_address=remote_address, now=now, rules=rules)
        key = _mint_bound_key(server_id, issued_by=caller.name, now=now)
        events.record(
            EventType.SERVER_ENROLLED,
            f"server {server_id} enrolled by {caller.name}",
            server_id=server_id,
            details={"by": caller.name},
        )
    return Accepted(registered, key)


def reset_enrollment(server_id: str, by: str) -> int:
    """Revoke every key bound to the server so its agent can enroll again; audited.

    Returns how many keys were revoked. NotFound for an unknown server.
    """
    now = utcnow()
    with write_transaction():
        get_or_404(Server, server_id, f"Server '{server_id}'")
        revoked = (
            ApiKey.update(revoked_at=now)
            .where(_bound_to(server_id) & ApiKey.revoked_at.is_null())
            .execute()
        )
        detail = f"revoked {revoked} bound key(s); the next heartbeat with an unbound key enrolls"
        events.record(
            EventType.ENROLLMENT_RESET,
            f"enrollment of server {server_id} reset by {by}",
            server_id=server_id,
            details={"by": by, "revoked_keys": revoked},
        )
        # The audit log's source for this is AuditSource.ENROLLMENT; the fleet wing writes the
        # row through the model because it does not import the remediation wing.
        AuditEntry.create(
            actor=by,
            scope=ApiKeyScope.OPERATOR,
            source="enrollment",
            server_id=server_id,
            allowed=True,
            result="completed",
            detail=detail,
        )
    return int(revoked)


def _refuse_if_enrolled(server_id: str) -> None:
    if _has_bound_key(server_id):
        raise Forbidden(
            f"Server '{server_id}' is enrolled: only its own agent key may report for it "
            "(an operator can reset its enrollment)"
        )


def _bound_to(server_id: str) -> pw.Expression:
    return (ApiKey.scope == ApiKeyScope.AGENT) & (ApiKey.server_id == server_id)


def _has_bound_key(server_id: str) -> bool:
    return bool(ApiKey.select().where(_bound_to(server_id) & ApiKey.revoked_at.is_null()).exists())


def _enrolled_by(key_name: str, since: dt.datetime) -> int:
    """How many keys `key_name` minted by enrolling servers since `since` (revoked included)."""
    return int(
        ApiKey.select().where((ApiKey.issued_by == key_name) & (ApiKey.created_at >= since)).count()
    )


def _mint_bound_key(server_id: str, issued_by: str, now: dt.datetime) -> str:
    """Store a new agent key bound to `server_id`; the key itself is returned, never stored."""
    key = generate_key()
    ApiKey.create(
        name=f"agent-{server_id[:80]}-{secrets.token_hex(4)}",
        scope=ApiKeyScope.AGENT,
        key_hash=hash_key(key),
        prefix=key[:8],
        server_id=server_id,
        issued_by=issued_by,
        created_at=now,
    )
    return key


def _serialise_enrollment_of(server_id: str) -> None:
    """Make concurrent first heartbeats of one server id enroll one at a time.

    SQLite: `write_transaction` already holds the only write lock. PostgreSQL: a transaction
    advisory lock on the id, since the server row may not exist yet to be locked.
    """
    if not is_sqlite():
        db.execute_sql(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (ENROLL_LOCK_NAMESPACE, server_id)
        )
