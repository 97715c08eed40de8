"""API keys: creation, lookup and revocation, shared by the API and the CLI.

Keys are 256-bit random tokens, so an unsalted SHA-256 is enough to store them: there is no
dictionary to attack. Lookups hash the presented key and compare digests, which keeps the
comparison constant-time and makes it impossible for odd bytes in a header to raise.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from control.bounds import SERVER_ID, SERVER_ID_PATTERN
from control.db import db
from control.errors import Conflict, NotFound, ValidationFailed
from control.models import ApiKey, ApiKeyScope, utcnow

KEY_PREFIX = "hlc_"

# What each scope may do. Views declare the permission they need.
# Keyed by str: ApiKeyScope is a StrEnum, and Principal.scope is a plain str.
PERMISSIONS: dict[str, frozenset[str]] = {
    ApiKeyScope.AGENT: frozenset({"heartbeat"}),
    ApiKeyScope.VIEWER: frozenset({"read"}),
    ApiKeyScope.OPERATOR: frozenset({"read", "write", "heartbeat", "alerts"}),
    # Alertmanager's key: the webhook and nothing else, so a leaked alertmanager.yml secret
    # can neither read the fleet nor queue arbitrary (whitelisted) actions.
    ApiKeyScope.ALERTS: frozenset({"alerts"}),
}
# A stored key's name: printable ASCII without spaces, so `keys list`, log lines and the audit
# log's actor stay one unambiguous token. `bootstrap-` names the settings' keys only.
KEY_NAME = re.compile(r"[\x21-\x7e]{1,100}", re.ASCII)
BOOTSTRAP_PREFIX = "bootstrap-"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and scope, and the server an agent key is bound to."""

    name: str
    scope: str
    server_id: str | None = None
    # A stored key's hash (see `hash_key`), for checking it again later; None: a bootstrap key.
    key_hash: str | None = field(default=None, compare=False, repr=False)

    def may(self, permission: str) -> bool:
        """Whether this caller's scope grants `permission`."""
        return permission in PERMISSIONS.get(self.scope, ())


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256 of its UTF-8 bytes (surrogates escaped)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def generate_key() -> str:
    """A fresh random key, recognisable by its `hlc_` prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """Resolves presented keys to a Principal: bootstrap keys from settings, then stored keys.

    `resolve` asks the database every time. `resolve_verified` may answer from the stored keys
    it verified before: only for callers that check the key again inside their own write
    transaction (`key_hash` of the Principal; the heartbeat does), so a key revoked by any
    process is refused there, by its very next request, and `forget` drops it.
    """

    # Verified stored keys kept at most (a fleet's agent keys); past it the cache starts over.
    VERIFIED_MAX = 100_000

    def __init__(
        self,
        operator_key: str = "",
        agent_key: str = "",
        viewer_key: str = "",
        alerts_key: str = "",
    ):
        self._verified: dict[str, Principal] = {}
        self._bootstrap = [
            (hash_key(key).encode(), Principal(f"{BOOTSTRAP_PREFIX}{scope}", scope))
            for scope, key in (
                (ApiKeyScope.OPERATOR, operator_key),
                (ApiKeyScope.AGENT, agent_key),
                (ApiKeyScope.VIEWER, viewer_key),
                (ApiKeyScope.ALERTS, alerts_key),
            )
            if key
        ]

    def resolve(self, presented: str) -> Principal | None:
        """The Principal for `presented`, or None when it matches no active key."""
        if not presented or len(presented) > 512:
            return None
        return self.resolve_digest(hash_key(presented))

    def resolve_digest(self, digest: str) -> Principal | None:
        """The Principal whose key hashes to `digest` (see `hash_key`), or None.

        For the console's session, which keeps the key's hash rather than the key.
        """
        found = None
        for stored, principal in self._bootstrap:
            # Check every bootstrap key so timing does not reveal which one matched.
            if hmac.compare_digest(stored, digest.encode()):
                found = principal
        if found:
            return found
        row = db.execute_sql(_lookup_sql(db.obj.param, db.obj.quote), (digest,)).fetchone()
        if row is None:
            return None
        name, scope, server_id = row
        return Principal(name, scope, server_id, key_hash=digest)

    def resolve_verified(self, presented: str) -> Principal | None:
        """`resolve`, from memory for a stored key it verified before (see the class docstring).

        A dict lookup instead of a query per heartbeat. Unknown keys are not remembered, so a
        new key works at once and a stream of wrong keys cannot fill the memory.
        """
        if not presented or len(presented) > 512:
            return None
        digest = hash_key(presented)
        principal = self._verified.get(digest)
        if principal is None:
            principal = self.resolve_digest(digest)
            if principal is not None and principal.key_hash is not None:
                if len(self._verified) >= self.VERIFIED_MAX:
                    self._verified.clear()
                self._verified[digest] = principal
        return principal

    def forget(self, digest: str) -> None:
        """Drop a stored key from the verified ones (its check in a transaction failed)."""
        self._verified.pop(digest, None)


@functools.lru_cache(maxsize=8)
def _lookup_sql(
    param: str, quote: str, columns: tuple[str, ...] = ("name", "scope", "server_id")
) -> str:
    """The stored-key lookup of every authenticated request, rendered once per dialect.

    No cache of the answer here: a key revoked from the CLI (another process) must stop
    working on the next request (`KeyRing.resolve_verified` remembers keys only for callers
    that check them again in their transaction, with `active_key_sql`). Rendering the statement
    with peewee's builder cost ~0.3 ms a request, more than the rest of authentication; running
    this prepared text costs a few microseconds.
    """

    def name(text: str) -> str:
        return f"{quote[0]}{text}{quote[1]}"

    selected = ", ".join(name(getattr(ApiKey, column).column_name) for column in columns) or "1"
    where = (
        f"{name(ApiKey.key_hash.column_name)} = {param} "
        f"AND {name(ApiKey.revoked_at.column_name)} IS NULL"
    )
    # Identifiers from the model, the digest a bound parameter: no client text in the SQL.
    return f"SELECT {selected} FROM {name(ApiKey._meta.table_name)} WHERE {where}"  # noqa: S608


def active_key_sql(param: str, quote: str) -> str:
    """`SELECT 1` while the key whose hash is bound exists and is not revoked: a write
    transaction's own check of a key that `KeyRing.resolve_verified` answered from memory."""
    return _lookup_sql(param, quote, ())


def create_key(
    scope: str, name: str | None = None, server_id: str | None = None
) -> tuple[str, ApiKey]:
    """Store a new key and return it (the only time it exists in clear) with its row.

    ValidationFailed (naming the field, on one line) for an unknown scope, a name that is not
    1-100 printable ASCII characters without spaces or starts with `bootstrap-`, a server id
    that is not one, or a server id on a key that is not an agent's.
    """
    if scope not in set(ApiKeyScope):
        raise ValidationFailed(
            "invalid scope", errors={"scope": ["one of " + ", ".join(ApiKeyScope)]}
        )
    if name is not None and (not KEY_NAME.fullmatch(name) or name.startswith(BOOTSTRAP_PREFIX)):
        raise ValidationFailed(
            "invalid name: 1-100 printable ASCII characters, no spaces, not bootstrap-*",
            errors={"name": [f"must match ^[\\x21-\\x7e]{{1,100}}$, not {BOOTSTRAP_PREFIX}*"]},
        )
    if server_id is not None and not SERVER_ID.fullmatch(server_id):
        raise ValidationFailed(
            "invalid server_id: 1-100 lowercase letters, digits and '-'",
            errors={"server_id": [f"must match {SERVER_ID_PATTERN}"]},
        )
    if server_id and scope != ApiKeyScope.AGENT:
        raise ValidationFailed(
            "only agent keys can be bound to a server",
            errors={"server_id": ["only with scope agent"]},
        )
    key = generate_key()
    name = name or f"{scope}-{secrets.token_hex(3)}"
    if ApiKey.get_or_none(ApiKey.name == name):
        raise Conflict(f"a key named {name!r} already exists")
    row = ApiKey.create(
        name=name, scope=scope, key_hash=hash_key(key), prefix=key[:8], server_id=server_id or None
    )
    return key, row


def list_keys() -> list[ApiKey]:
    """Every stored key, oldest first (hashes only, never the keys)."""
    return list(ApiKey.select().order_by(ApiKey.id))


def revoke_key(name: str) -> ApiKey:
    """Mark the key called `name` revoked; it stops working at once."""
    row = ApiKey.get_or_none(ApiKey.name == name)
    if row is None:
        raise NotFound(f"no key named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.save()
    return row
