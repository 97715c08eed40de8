"""Console sign-in: which keys may sign in, and the limit on failed attempts per client address.

Operator and viewer keys sign in; agent and alerts keys never do (a box's key or
Alertmanager's secret must not open the console). Failed attempts are counted per client
address in the same database window as the API's rate limits (`RateLimitHit`, bucket
`signin`), so every worker shares one budget and retention prunes it. Each attempt takes a
slot before its key is checked, so parallel guesses cannot overrun the budget; a successful
sign-in gives its slot back, so only failures count.
"""

from __future__ import annotations

from control.db import write_transaction
from control.errors import Forbidden, Unauthorized
from control.keys import KeyRing, Principal, hash_key
from control.models import ApiKeyScope, RateLimitHit
from control.remediation.ratelimit import KeyRateLimiter

BUCKET = "signin"
CONSOLE_SCOPES = frozenset({ApiKeyScope.OPERATOR, ApiKeyScope.VIEWER})


def console_principal(keyring: KeyRing, digest: str) -> Principal | None:
    """The operator or viewer whose key hashes to `digest`; None for any other or none.

    Called on every console request with the hash the session keeps, so a revoked key (or
    one whose scope no longer opens the console) ends the session at its next request.
    """
    principal = keyring.resolve_digest(digest)
    if principal is None or principal.scope not in CONSOLE_SCOPES:
        return None
    return principal


class SignInGuard:
    """Checks a presented key, at most `per_minute` failures per client address a minute."""

    def __init__(self, keyring: KeyRing, per_minute: int):
        self.keyring = keyring
        self.limiter = KeyRateLimiter(per_minute)

    def sign_in(self, address: str, presented: str) -> tuple[Principal, str]:
        """The Principal and the key's hash (what a session keeps) for `presented`.

        RateLimited (with Retry-After) when `address` has used its failures for this minute,
        whatever the key; Unauthorized for a key that matches nothing; Forbidden for an agent
        or alerts key. Only these last two count against the address.
        """
        # Addresses are at most 45 characters (IPv6 text); the column holds 100.
        address = (address or "unknown")[:100]
        self.limiter.hit(address, BUCKET)
        principal = self.keyring.resolve(presented)
        if principal is None:
            raise Unauthorized("That key is not valid (or has been revoked).")
        if principal.scope not in CONSOLE_SCOPES:
            raise Forbidden(
                f"A key with scope '{principal.scope}' cannot sign in: "
                "use an operator or viewer key."
            )
        _forgive(address)
        return principal, hash_key(presented)


def _forgive(address: str) -> None:
    """Give back the slot a successful sign-in took: only failures count."""
    mine = (RateLimitHit.bucket == BUCKET) & (RateLimitHit.key_name == address)
    with write_transaction():
        newest = (
            RateLimitHit.select(RateLimitHit.id)
            .where(mine)
            .order_by(RateLimitHit.id.desc())
            .first()
        )
        if newest is not None:
            RateLimitHit.delete().where(RateLimitHit.id == newest.id).execute()
