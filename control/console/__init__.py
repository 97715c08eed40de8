"""The operator web console under `/ui/`: server-rendered pages over the API's domain functions.

Like `control.api`, a thin face: each view parses the request, calls the same domain function
the API calls (approval, pause, actions, enrollment reset — audited under the key's name) and
renders a template. Forms work without JavaScript (POST, then redirect to a page: PRG); the
one script only reloads a page now and then. See docs/console.md.

Security, in one place (`_gate`, `_headers`):
- every POST carries the session's CSRF token (Flask-WTF), checked before anything else; the
  JSON API under /api/ is not checked, as it authenticates by header, never by cookie;
- every request but the sign-in page re-checks the session's key and that the session was not
  signed out, here or everywhere (`session.current_user`, one query);
- a viewer's POST is a 403 before any view runs;
- pages send a Content-Security-Policy with no inline script or style and no other origin.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app, g, redirect, request, url_for
from flask_wtf.csrf import CSRFProtect

from control import context
from control.console import approvals, errors, fleet, logs, pages, server, signin
from control.console.blueprint import bp
from control.console.session import COOKIE_NAME, ConsoleSessionInterface, current_user
from control.errors import Forbidden
from control.signins import SignInGuard

# The page modules: each adds its routes to `bp` when imported.
VIEWS = (approvals, fleet, logs, server, signin)
PUBLIC_ENDPOINTS = frozenset({"console.signin", "console.signout", "console.static"})
# POSTs a viewer may make: they change only the viewer's own sign-ins.
SELF_ENDPOINTS = frozenset({"console.signout_everywhere"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def init_app(app: Flask) -> None:
    """Serve the console on `app` (whose `secret_key` is set): sessions, CSRF, pages, `/`."""
    settings = context.of(app).settings
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_PATH="/ui",  # the API never receives the cookie
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.session_hours),
        SESSION_REFRESH_EACH_REQUEST=False,
        # Checked by the console's own gate only: the API authenticates by header.
        WTF_CSRF_CHECK_DEFAULT=False,
        # A page left open keeps working as long as its sign-in does.
        WTF_CSRF_TIME_LIMIT=settings.session_hours * 3600,
    )
    app.session_interface = ConsoleSessionInterface()
    CSRFProtect(app)
    app.extensions[signin.EXTENSION] = SignInGuard(context.of(app).keyring, settings.login_rate)
    pages.init_app(app)
    app.register_blueprint(bp)
    app.add_url_rule("/", "console_root", lambda: redirect(url_for("console.fleet"), 302))


@bp.before_request
def _gate():
    """CSRF on every change; a signed-in operator or viewer on every page; viewers only read
    (and sign their own key out everywhere)."""
    if request.method not in SAFE_METHODS:
        current_app.extensions["csrf"].protect()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    user = current_user()
    if user is None:
        if g.get("session_ended"):
            pages.flash_error(
                "Your sign-in has ended (expired, signed out, or its key was revoked)."
            )
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("console.signin", next=target), 303)
    writes = request.method not in SAFE_METHODS and request.endpoint not in SELF_ENDPOINTS
    if writes and not user.may("write"):
        raise Forbidden("A viewer key sees everything and changes nothing: sign in as an operator.")
    return None


@bp.after_request
def _headers(response):
    """What every console response says to the browser about scripts, framing and caching."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        # Pages show the fleet to whoever is signed in: never kept by a shared cache.
        response.headers["Cache-Control"] = "no-store"
    return response


errors.register(bp)
