"""Request authentication: `X-API-Key` or `Authorization: Bearer`, checked against scopes."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

from flask import g, request

from control import context
from control.errors import Forbidden, Unauthorized
from control.keys import KeyRing, Principal

SECURITY: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]
SECURITY_SCHEMES = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "BearerAuth": {"type": "http", "scheme": "bearer"},
}


def presented_key() -> str:
    """The key the client sent, from X-API-Key or a Bearer Authorization header."""
    return key_in(request.environ)


def key_in(environ: Mapping[str, Any]) -> str:
    """The key a WSGI request carries (see `presented_key`), read straight from its environ.

    For the heartbeat's fast path (control.api.heartbeat_wsgi), which runs before Flask: the
    same headers as `request.headers` gives (werkzeug reads `HTTP_X_API_KEY` for `X-API-Key`).
    """
    key: str = environ.get("HTTP_X_API_KEY", "")
    if not key:
        scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer":
            key = credentials.strip()
    return key


def authenticate(rechecked: bool = False) -> Principal:
    """The caller's Principal, or Unauthorized. Cached on `g` for the request.

    `rechecked`: the view's domain call checks a stored key again in its own write transaction
    (the heartbeat's), so the key ring may answer from the keys it verified before.
    """
    principal = g.get("principal")
    if principal is None:
        ctx = context.current()
        keyring: KeyRing = ctx.keyring
        presented = presented_key()
        principal = keyring.resolve_verified(presented) if rechecked else keyring.resolve(presented)
        if principal is None:
            ctx.metrics.auth_failures.labels("invalid" if presented else "missing").inc()
            raise Unauthorized("Missing or invalid API key")
        g.principal = principal
    return principal


def require(permission: str, *, rechecked: bool = False) -> Callable:
    """Decorate a view so it runs only for callers whose scope grants `permission`.

    Apply it above `@blp.arguments` so authentication happens before the body is validated.
    `rechecked`: see `authenticate`.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = authenticate(rechecked)
            if not principal.may(permission):
                context.current().metrics.auth_failures.labels("forbidden").inc()
                raise Forbidden(f"API key scope '{principal.scope}' may not {permission}")
            return view(*args, **kwargs)

        # Document the security requirement and its two failure responses (references to the
        # components flask-smorest registers for every HTTP status).
        apidoc: dict[str, Any] = copy.deepcopy(getattr(view, "_apidoc", {}))
        # flask-smorest reads a view's docs from this function attribute, unknown to mypy.
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        apidoc.setdefault("manual_doc", {})["security"] = SECURITY
        responses = apidoc.setdefault("response", {}).setdefault("responses", {})
        responses.setdefault(401, []).append("UNAUTHORIZED")
        responses.setdefault(403, []).append("FORBIDDEN")
        return wrapper

    return decorator
