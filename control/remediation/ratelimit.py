"""Per-API-key rate limiting of synchronous command execution, using the `limits` library.

A moving window per key, kept in memory: each API process limits on its own, so N workers
allow up to N times the limit in total (documented in the README).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from control.errors import RateLimited


class KeyRateLimiter:
    """Allows `per_minute` calls per key in any 60-second window."""

    def __init__(self, per_minute: int):
        self.item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> None:
        """Count one call for `key`; RateLimited with Retry-After when over the limit."""
        if self._limiter.hit(self.item, "execute", key):
            return
        reset = self._limiter.get_window_stats(self.item, "execute", key).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise RateLimited(
            f"Rate limit of {self.item.amount} executions per minute exceeded; "
            f"retry in {retry_after}s",
            headers={"Retry-After": str(retry_after)},
        )
