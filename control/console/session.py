"""Who is signed in to the console: the session cookie, the per-request key check, `next`.

The session (Flask's signed cookie, path `/ui`) keeps the SHA-256 of the key that signed in
and a random id for this sign-in, encrypted, and when; never the key. Flask signs its cookie
but anyone holding it can read it, and the bare hash is what the keys table stores: a stolen
cookie would then let a weak, hand-chosen key be guessed offline. Every request looks the hash
up again, so a revoked key ends the session at its next request, and a sign-in lasts
`HOMELAB_SESSION_HOURS` from when it was made however busy the page is (an auto-refreshing page
does not keep it alive). Signing out records the id as ended, and "Sign out everywhere" the key
up to now (`signouts`), so a copy of the cookie ends with the session it was taken from; the
same per-request lookup checks both.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, current_app, g, has_request_context, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request

from control import context
from control.console import signouts
from control.keys import Principal

COOKIE_NAME = "homelab_console"
HOME = "/ui/"


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, Secure when configured or when the request is HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure under `HOMELAB_COOKIE_SECURE`, and always when this request came over HTTPS."""
        configured = bool(app.config["SESSION_COOKIE_SECURE"])
        return configured or (has_request_context() and request.is_secure)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """An empty session when the request has no console cookie (every API request,
        heartbeats included) without building the signing serializer (~40 µs under load)."""
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def _sealer(secret: str | bytes) -> Fernet:
    """Encryption for the session's key hash, derived from the app's secret key."""
    secret_bytes = secret.encode() if isinstance(secret, str) else secret
    derived = hashlib.sha256(b"homelab console session\0" + secret_bytes).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def _seal(digest: str) -> str:
    return _sealer(current_app.secret_key or "").encrypt(digest.encode()).decode()


def _unseal(sealed: str) -> str | None:
    try:
        return _sealer(current_app.secret_key or "").decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        return None


def start(principal: Principal, digest: str) -> None:
    """Sign `principal` in: a fresh session (so no token from before survives) holding `digest`
    and a new session id (sealed together, see the module docstring), and its time span."""
    session.clear()
    session.permanent = True
    session["key"] = _seal(f"{digest}:{secrets.token_urlsafe(16)}")
    # Sub-second, so a sign-in right after "Sign out everywhere" is not ended by it.
    session["since"] = since = time.time()
    # Its end as set now: raising HOMELAB_SESSION_HOURS later lengthens no session, so a
    # record of its sign-out (kept until this end) always outlives every copy of the cookie.
    session["until"] = since + context.current().settings.session_hours * 3600
    g.console_user = principal


class Credentials(NamedTuple):
    """What a session holds: the key's hash, its id, and its span in seconds since the epoch."""

    digest: str
    session_id: str
    since: float
    until: float


def _credentials() -> Credentials | None:
    """What the session holds, if it holds it all; `until` is also cut to the current setting."""
    sealed, since, until = session.get("key"), session.get("since"), session.get("until")
    if not (isinstance(sealed, str) and isinstance(since, int | float)):
        return None
    if not isinstance(until, int | float):
        return None
    # A cookie from before sessions had ids holds a bare hash: it cannot be signed out
    # server-side, so it is no session (one sign-in again after the upgrade).
    digest, _, session_id = (_unseal(sealed) or "").partition(":")
    if not digest or not session_id:
        return None
    hours = context.current().settings.session_hours
    return Credentials(digest, session_id, float(since), min(float(until), since + hours * 3600))


def end() -> None:
    """Sign out: record this session as ended (every copy of its cookie with it), then forget
    everything it held. A session already over records nothing."""
    found = _credentials()
    if found is not None and current_user() is not None:
        signouts.end_session(current_app.secret_key or "", found.session_id, found.until)
    session.clear()
    g.console_user = None


def end_everywhere() -> None:
    """Sign out every session of the signed-in key, this one and every copy included."""
    found = _credentials()
    if found is not None and current_user() is not None:
        hours = context.current().settings.session_hours
        signouts.end_every_session(current_app.secret_key or "", found.digest, hours)
    session.clear()
    g.console_user = None


def current_user() -> Principal | None:
    """The operator or viewer signed in on this request, checked against the keys now.

    None (and the session cleared) when no one signed in, the sign-in is older than
    `HOMELAB_SESSION_HOURS` (as set now, or at sign-in if that was shorter), the session was
    signed out (here, or everywhere), or the key was revoked or no longer opens the console.
    """
    if "console_user" in g:
        user: Principal | None = g.console_user
        return user
    user = None
    if "key" in session:
        found = _credentials()
        if found is not None and time.time() < found.until:
            keyring = context.current().keyring
            secret = current_app.secret_key or ""
            user = signouts.check(keyring, secret, found.digest, found.session_id, found.since)
        if user is None:
            session.clear()
            g.session_ended = True
    g.console_user = user
    return user


def safe_next(target: str | None) -> str:
    """`target` if it is a page of this console (a path under /ui/ on this host), else HOME.

    Refused: absolute URLs, scheme-relative `//host`, backslashes (browsers read `/\\host` as
    `//host`), spaces and control characters, dot segments, and any path outside /ui/.
    """
    if not target or len(target) > 2000:
        return HOME
    if "\\" in target or any(ord(char) < 0x21 or ord(char) == 0x7F for char in target):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(HOME):
        return HOME
    if ".." in unquote(parts.path):  # `/ui/../x` (or `%2e%2e`) resolves outside the console
        return HOME
    return target
