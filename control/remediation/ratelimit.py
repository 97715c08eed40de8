"""Per-API-key rate limiting of remediation requests (`POST /actions` and the execute endpoint).

A moving window per key and budget, kept in the database (`RateLimitHit`), so every worker
and every host on one PostgreSQL shares one budget per key. SQLite gets the same table: the
check is one small write next to the audit entry, action or event the request writes anyway,
and one code path means both databases are tested the same way.

The callers decide what counts: only requests that reach the whitelist (a 404 for an unknown
server or alert, or a 401/403 for the key, never gets here). A refused request (429) is not a
hit, so a client that keeps retrying gets through as soon as its oldest hit leaves the window.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import cast

import peewee as pw

from control.db import db, is_sqlite, write_transaction
from control.errors import RateLimited
from control.models import RateLimitHit, utcnow

WINDOW = dt.timedelta(minutes=1)
# Namespace of the PostgreSQL advisory locks that serialise the checks of one key's budget.
LOCK_NAMESPACE = 0x524C  # "RL"
WHAT = {"actions": "action requests", "execute": "executions"}


class KeyRateLimiter:
    """Allows `per_minute` requests per key and budget in any 60-second window."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute

    def hit(self, key: str, bucket: str = "execute", now: dt.datetime | None = None) -> None:
        """Count one request of `key` against `bucket`; RateLimited with Retry-After if over."""
        now = now or utcnow()
        mine = (RateLimitHit.bucket == bucket) & (RateLimitHit.key_name == key)
        with write_transaction():
            if not is_sqlite():
                # Count-then-insert must not interleave between workers, or two of them could
                # both see limit-1 and both go on; SQLite's write transaction is already alone.
                db.execute_sql(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (LOCK_NAMESPACE, f"{bucket}:{key}"),
                )
            RateLimitHit.delete().where(mine & (RateLimitHit.hit_at <= now - WINDOW)).execute()
            # .tuples() yields a plain row; peewee's stubs keep the row type as the model.
            count, oldest = cast(
                tuple[int, dt.datetime | None],
                RateLimitHit.select(pw.fn.COUNT(RateLimitHit.id), pw.fn.MIN(RateLimitHit.hit_at))
                .where(mine)
                .tuples()
                .get(),
            )
            if count >= self.per_minute and oldest is not None:
                raise self._refusal(bucket, oldest + WINDOW - now)
            RateLimitHit.create(bucket=bucket, key_name=key, hit_at=now)

    def _refusal(self, bucket: str, wait: dt.timedelta) -> RateLimited:
        retry_after = max(1, math.ceil(wait.total_seconds()))
        return RateLimited(
            f"Rate limit of {self.per_minute} {WHAT.get(bucket, 'requests')} per minute "
            f"exceeded; retry in {retry_after}s",
            headers={"Retry-After": str(retry_after)},
        )
