"""Signing in to the console: which keys may, the session cookie, `next`, and what ends it."""

from __future__ import annotations

import time

import pytest

from control import keys
from control.console.session import safe_next
from tests.conftest import AGENT_KEY, OPERATOR_KEY, VIEWER_KEY
from tests.console import ConsolePages, flashes


@pytest.fixture
def pages(client):
    """The console as one browser sees it."""
    return ConsolePages(client)


def test_root_leads_to_the_console(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/"


def test_a_page_without_sign_in_leads_to_the_sign_in_form_and_back(pages):
    response = pages.get("/ui/events?severity=error")
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/login?next=/ui/events?severity%3Derror"
    signed_in = pages.sign_in(OPERATOR_KEY, next_page="/ui/events?severity=error")
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == "/ui/events?severity=error"
    page = pages.page("/ui/events?severity=error")
    assert ("notice", "Signed in as bootstrap-operator (operator).") in flashes(page)


def test_the_sign_in_form_names_its_field_and_button(pages):
    page = pages.page("/ui/login")
    assert '<label for="api_key">API key</label>' in page
    assert 'type="password"' in page
    assert '<button type="submit">Sign in</button>' in page


@pytest.mark.parametrize("key", [OPERATOR_KEY, VIEWER_KEY])
def test_operator_and_viewer_keys_sign_in(pages, key):
    assert pages.sign_in(key).headers["Location"] == "/ui/"
    assert "<h1>Fleet</h1>" in pages.page("/ui/")


@pytest.mark.parametrize("scope", ["agent", "alerts"])
def test_agent_and_alerts_keys_cannot_sign_in(app, pages, scope):
    with app.app_context():
        key, _ = keys.create_key(scope)
    response = pages.sign_in(key)
    assert response.status_code == 403
    assert f"scope &#39;{scope}&#39; cannot sign in" in response.get_data(as_text=True)
    assert pages.get("/ui/").status_code == 303


def test_the_bootstrap_agent_key_cannot_sign_in(pages):
    assert pages.sign_in(AGENT_KEY).status_code == 403


def test_a_wrong_key_is_refused_on_the_page(pages):
    response = pages.sign_in("hlc_not-a-key")
    assert response.status_code == 401
    assert "That key is not valid" in response.get_data(as_text=True)
    assert pages.get("/ui/").status_code == 303
    # Counted like the API's refusals, so a guessing client shows on the dashboards.
    metrics = pages.client.get("/metrics").get_data(as_text=True)
    assert 'homelab_auth_failures_total{reason="invalid"} 1.0' in metrics


@pytest.fixture
def settings_overrides():
    """Three failed sign-ins a minute per address, so the limit is quick to reach."""
    return {"login_rate": 3}


def test_failed_sign_ins_are_limited_per_client_address(client):
    guesser = ConsolePages(client, remote_addr="198.51.100.7")
    for _ in range(3):
        assert guesser.sign_in("hlc_guess").status_code == 401
    # Over the limit even the right key is not tried: guessing cannot go on.
    limited = guesser.sign_in(OPERATOR_KEY)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "Too many failed sign-ins" in limited.get_data(as_text=True)
    # Another address is not held back by this one's failures.
    other = ConsolePages(client, remote_addr="198.51.100.8")
    assert other.sign_in(OPERATOR_KEY).status_code == 303


def test_successful_sign_ins_are_not_counted(client):
    pages = ConsolePages(client, remote_addr="198.51.100.9")
    for _ in range(5):
        assert pages.sign_in(OPERATOR_KEY).status_code == 303
    assert pages.sign_in("hlc_typo").status_code == 401
    assert pages.sign_in(OPERATOR_KEY).status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/ui/",
        "//evil.example/ui/",
        "/\\evil.example/ui/",
        "\\\\evil.example/ui/",
        "javascript:alert(1)",
        "/api/v1/servers",
        "/ui/../api/v1/servers",
        "/ui/%2e%2e/api/v1/servers",
        "/ui/\r\nLocation: https://evil.example/",
        " https://evil.example/",
        "ui/",
    ],
)
def test_next_after_sign_in_only_leads_to_a_console_page(pages, target):
    response = pages.sign_in(OPERATOR_KEY, next_page=target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/"


@pytest.mark.parametrize("target", ["/ui/", "/ui/servers/box", "/ui/events?type=action_failed"])
def test_next_may_be_any_console_page(target):
    assert safe_next(target) == target


def test_the_session_cookie_is_http_only_same_site_and_scoped_to_the_console(pages):
    cookie = pages.sign_in(OPERATOR_KEY).headers["Set-Cookie"]
    assert cookie.startswith("homelab_console=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/ui" in cookie
    assert "Expires=" in cookie
    assert "Secure" not in cookie  # plain HTTP, and HOMELAB_COOKIE_SECURE unset


def test_the_session_cookie_is_secure_under_https(client):
    pages = ConsolePages(client)
    pages.get("/ui/login", base_url="https://control.lan")
    response = client.post(
        "/ui/login",
        data={"api_key": OPERATOR_KEY, "csrf_token": pages.token()},
        base_url="https://control.lan",
        headers={"Referer": "https://control.lan/ui/login"},
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


def test_the_session_keeps_neither_the_key_nor_its_stored_hash(app, client, pages):
    """Flask signs its cookie but anyone holding it reads it: the keys table's hash in it would
    let a weak key be guessed offline from a stolen cookie, so the hash is sealed."""
    pages.sign_in(OPERATOR_KEY)
    with client.session_transaction("/ui/") as session:
        stored = dict(session)
    assert OPERATOR_KEY not in repr(stored)
    assert keys.hash_key(OPERATOR_KEY) not in repr(stored)
    assert pages.get("/ui/").status_code == 200  # and the sealed session still signs in


def test_revoking_the_key_ends_the_session_at_the_next_request(app, pages):
    with app.app_context():
        key, _ = keys.create_key("operator", name="alice")
    pages.sign_in(key)
    assert pages.get("/ui/").status_code == 200
    with app.app_context():
        keys.revoke_key("alice")
    response = pages.get("/ui/")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/ui/login")
    page = pages.page(response.headers["Location"])
    assert (
        "error",
        "Your sign-in has ended (expired, signed out, or its key was revoked).",
    ) in flashes(page)
    # And it stays ended: the session was cleared, not just refused once.
    assert pages.get("/ui/").status_code == 303


def test_a_sign_in_ends_after_session_hours_however_busy(app, client, pages):
    pages.sign_in(OPERATOR_KEY)
    hours = app.extensions["homelab"].settings.session_hours
    with client.session_transaction("/ui/") as session:
        session["since"] = int(time.time()) - hours * 3600 - 1
    assert pages.get("/ui/").status_code == 303


def test_signing_out_ends_the_session(pages):
    pages.sign_in(OPERATOR_KEY)
    pages.page("/ui/")
    response = pages.post("/ui/logout")
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/login"
    assert pages.get("/ui/").status_code == 303


def test_signing_out_needs_the_csrf_token(pages):
    pages.sign_in(OPERATOR_KEY)
    assert pages.post("/ui/logout", token=None).status_code == 400
    assert pages.get("/ui/").status_code == 200
