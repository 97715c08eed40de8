"""`/ui/login`, `/ui/logout` and `/ui/logout/everywhere`: signing in with an operator or viewer
key, and out again (this session, or every session of the key)."""

from __future__ import annotations

import logging

from flask import current_app, redirect, request, url_for

from control import context
from control.console import session
from control.console.blueprint import bp
from control.console.errors import error_page
from control.console.forms import SignInForm
from control.console.pages import flash_notice, render_page
from control.errors import Forbidden, RateLimited, Unauthorized
from control.signins import SignInGuard

EXTENSION = "homelab_console_signin"
log = logging.getLogger(__name__)


def guard() -> SignInGuard:
    """The app's sign-in checker, with its limit on failed attempts."""
    found: SignInGuard = current_app.extensions[EXTENSION]
    return found


@bp.route("/login", methods=["GET", "POST"])
def signin():
    """The sign-in form; on success, the page that sent the user here (a console page only)."""
    form = SignInForm()
    if request.method == "GET":
        form.next.data = session.safe_next(request.args.get("next"))
        return render_page("signin.html", form=form, problem=None)
    target = session.safe_next(form.next.data)
    if not form.validate():
        return render_page("signin.html", form=form, problem="Enter an API key."), 400
    try:
        principal, digest = guard().sign_in(request.remote_addr or "", form.api_key.data or "")
    except RateLimited as exc:
        message = (
            "Too many failed sign-ins from this address: "
            f"wait {exc.headers.get('Retry-After', '60')} s and try again."
        )
        return error_page(429, message, exc.headers)
    except (Unauthorized, Forbidden) as exc:
        # Counted and logged like the API's refusals, so a guessing client shows up in
        # homelab_auth_failures_total and in the log (with its address, never the key).
        reason = "invalid" if isinstance(exc, Unauthorized) else "forbidden"
        context.current().metrics.auth_failures.labels(reason).inc()
        log.warning("console sign-in refused from %s: %s", request.remote_addr, reason)
        return render_page("signin.html", form=form, problem=exc.message), exc.status
    session.start(principal, digest)
    flash_notice(f"Signed in as {principal.name} ({principal.scope}).")
    return redirect(target, 303)


@bp.post("/logout")
def signout():
    """Sign out (a POST with the CSRF token, so another site cannot sign anyone out): this
    session ends on the server too, so a copy of its cookie no longer signs anyone in."""
    session.end()
    flash_notice("Signed out.")
    return redirect(url_for("console.signin"), 303)


@bp.post("/logout/everywhere")
def signout_everywhere():
    """End every session signed in with this key until now: other browsers, and any copy of
    a cookie (a viewer may too: it ends only its own key's sessions)."""
    session.end_everywhere()
    flash_notice("Signed out everywhere: every sign-in with this key has ended.")
    return redirect(url_for("console.signin"), 303)
