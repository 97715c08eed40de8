"""Ended console sessions: signing out, signing out everywhere, and the check on every request.

A session cookie is a bearer token: a copy of it (a shared machine, a proxy log, a backed-up
browser profile) works wherever it is replayed until it expires. So signing out records the
session's id as ended, and "Sign out everywhere" records its key as ended up to now, each in
`ConsoleSessionEnd` until the sessions it ends would have expired anyway; every request then
looks its key and both records up in one statement (`check`). Rows are pruned whenever one is
added, so the table holds at most the sign-outs of the last `HOMELAB_SESSION_HOURS`.

No Flask here: the caller passes the app's secret, the session's id and sign-in time.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac

from control.db import db, write_transaction
from control.keys import KeyRing, Principal
from control.models import ApiKey, ConsoleSessionEnd, utcnow
from control.signins import CONSOLE_SCOPES, console_principal


def subject(secret: str | bytes, kind: str, value: str) -> str:
    """What a row stores for a session id (`kind` "session") or a key's hash ("key").

    An HMAC under the app's secret: a reader of the table can neither replay a session id nor
    guess a weak, hand-chosen bootstrap key offline from its hash.
    """
    secret_bytes = secret.encode() if isinstance(secret, str) else secret
    mac_key = hashlib.sha256(b"homelab console signout\0" + secret_bytes).digest()
    return hmac.new(mac_key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()


def naive_utc(epoch: float) -> dt.datetime:
    """A session's sign-in time (seconds since the epoch) as the naive UTC the tables hold."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None)


def end_session(secret: str | bytes, session_id: str, until: float) -> None:
    """Record one session (every copy of its cookie) as ended, until `until` (seconds since
    the epoch), when it would have expired anyway."""
    now = utcnow()
    row = {
        ConsoleSessionEnd.subject: subject(secret, "session", session_id),
        ConsoleSessionEnd.ended_at: now,
        ConsoleSessionEnd.expires_at: naive_utc(until),
    }
    with write_transaction():
        _prune(now)
        # Two tabs signing the same session out at once: the first row stands.
        ConsoleSessionEnd.insert(row).on_conflict_ignore().execute()


def end_every_session(secret: str | bytes, key_digest: str, hours: int) -> None:
    """Record every session signed in with the key hashing to `key_digest` until now as ended.

    Sessions signed in later are not touched. Kept `hours` (the current setting) from now: no
    session signed in before now lives longer than that (see `session.start`).
    """
    now = utcnow()
    expires = now + dt.timedelta(hours=hours)
    with write_transaction():
        _prune(now)
        ConsoleSessionEnd.insert(
            subject=subject(secret, "key", key_digest), ended_at=now, expires_at=expires
        ).on_conflict(
            conflict_target=[ConsoleSessionEnd.subject],
            update={ConsoleSessionEnd.ended_at: now, ConsoleSessionEnd.expires_at: expires},
        ).execute()


def _prune(now: dt.datetime) -> None:
    """Forget ended sessions that would have expired by now anyway."""
    ConsoleSessionEnd.delete().where(ConsoleSessionEnd.expires_at < now).execute()


def check(
    keyring: KeyRing, secret: str | bytes, key_digest: str, session_id: str, signed_in: float
) -> Principal | None:
    """The operator or viewer of a session, or None when its key no longer opens the console
    or the session was ended (signed out, or its key signed out everywhere since).

    One statement: the stored key and both possible records of the session's end. A bootstrap
    key is not stored; `console_principal` then knows it without a query.
    """
    params = (
        key_digest,
        subject(secret, "session", session_id),
        subject(secret, "key", key_digest),
    )
    rows = db.execute_sql(_check_sql(db.obj.param, db.obj.quote), params).fetchall()
    since = naive_utc(signed_in)
    for *_, ended_at in rows:
        if ended_at is not None and since <= ConsoleSessionEnd.ended_at.python_value(ended_at):
            return None
    name, scope, server_id, _ = rows[0]
    if name is None:
        return console_principal(keyring, key_digest)
    if scope not in CONSOLE_SCOPES:
        return None
    return Principal(name, scope, server_id, key_hash=key_digest)


@functools.lru_cache(maxsize=8)
def _check_sql(param: str, quote: str) -> str:
    """The per-request statement, rendered once per dialect (as `control.keys._lookup_sql`).

    At least one row: the stored, unrevoked key with the bound hash (or NULLs), beside each
    matching end record (or NULL). Both lookups go through a unique index.
    """

    def name(text: str) -> str:
        return f"{quote[0]}{text}{quote[1]}"

    key = f"k.{name(ApiKey.key_hash.column_name)}"
    revoked = f"k.{name(ApiKey.revoked_at.column_name)}"
    columns = [f"k.{name(getattr(ApiKey, c).column_name)}" for c in ("name", "scope", "server_id")]
    columns.append(f"e.{name(ConsoleSessionEnd.ended_at.column_name)}")
    end_subject = f"e.{name(ConsoleSessionEnd.subject.column_name)}"
    # Identifiers from the models, every value a bound parameter: no client text in the SQL.
    return (
        f"SELECT {', '.join(columns)} FROM (SELECT 1 AS one) AS probe "  # noqa: S608
        f"LEFT JOIN {name(ApiKey._meta.table_name)} AS k ON {key} = {param} "
        f"AND {revoked} IS NULL "
        f"LEFT JOIN {name(ConsoleSessionEnd._meta.table_name)} AS e "
        f"ON {end_subject} IN ({param}, {param})"
    )
