"""Signing out ends the session on the server, and "Sign out everywhere" ends every one of a key.

A copy of the cookie (a shared machine, a proxy log, a backed-up browser profile) must not
outlive the sign-out it was copied before; the ended sessions are remembered only until they
would have expired anyway.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from control import keys
from control.console import session as console_session
from control.console.session import COOKIE_NAME
from control.models import ConsoleSessionEnd, Server, utcnow
from tests.conftest import OPERATOR_KEY, VIEWER_KEY
from tests.console import ConsolePages, csrf_token, flashes


@pytest.fixture
def box(client, auth):
    """A server `box`, running (not paused), for a form that changes something."""
    body = {"id": "box", "hostname": "box", "ip_address": "127.0.0.1", "ssh_port": 1}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    return "box"


def cookie_of(client) -> str:
    """The console cookie as a thief would copy it out of the browser."""
    cookie = client.get_cookie(COOKIE_NAME, path="/ui")
    assert cookie is not None
    return cookie.value


def put_back(client, value: str) -> None:
    """Replay a copied console cookie in `client`'s browser."""
    client.set_cookie(COOKIE_NAME, value, path="/ui", httponly=True)


def is_paused(app, server_id: str) -> bool:
    with app.app_context():
        return Server.get_by_id(server_id).is_paused


def test_a_copied_cookie_is_signed_out_with_its_session(app, client, box):
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    token = csrf_token(pages.page("/ui/servers/box"))
    stolen = cookie_of(client)

    signed_out = pages.post("/ui/logout")
    assert signed_out.status_code == 303
    assert signed_out.headers["Location"] == "/ui/login"

    put_back(client, stolen)
    page = client.get("/ui/servers/box")
    assert page.status_code == 303
    assert page.headers["Location"].startswith("/ui/login")
    # A form posted with the copy and the token its page carried changes nothing.
    put_back(client, stolen)
    posted = client.post("/ui/servers/box/pause", data={"csrf_token": token})
    assert posted.status_code == 303
    assert posted.headers["Location"].startswith("/ui/login")
    assert is_paused(app, "box") is False
    # Nor does a second sign-out with the copy record anything more.
    put_back(client, stolen)
    assert client.post("/ui/logout", data={"csrf_token": token}).status_code == 303
    with app.app_context():
        assert ConsoleSessionEnd.select().count() == 1


def test_signing_out_ends_only_that_session(client, app):
    first, second = ConsolePages(client), ConsolePages(app.test_client())
    first.sign_in(OPERATOR_KEY)
    second.sign_in(OPERATOR_KEY)
    first.page("/ui/")
    first.post("/ui/logout")
    assert first.get("/ui/").status_code == 303
    assert second.get("/ui/").status_code == 200


def test_every_page_offers_sign_out_everywhere_in_the_sign_out_form(client):
    for key in (OPERATOR_KEY, VIEWER_KEY):
        pages = ConsolePages(client)
        pages.sign_in(key)
        page = pages.page("/ui/")
        assert '<button type="submit">Sign out</button>' in page
        assert 'formaction="/ui/logout/everywhere"' in page
        assert ">Sign out everywhere</button>" in page


@pytest.mark.parametrize("stored", [False, True], ids=["bootstrap", "stored"])
def test_sign_out_everywhere_ends_every_session_of_that_key_only(app, client, stored):
    key = OPERATOR_KEY
    if stored:
        with app.app_context():
            key, _ = keys.create_key("operator", name="alice")
    here, laptop, other = (ConsolePages(c) for c in (client, app.test_client(), app.test_client()))
    for pages, with_key in ((here, key), (laptop, key), (other, VIEWER_KEY)):
        assert pages.sign_in(with_key).status_code == 303
    stolen = cookie_of(laptop.client)
    here.page("/ui/")

    response = here.post("/ui/logout/everywhere")
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/login"
    page = here.page("/ui/login")
    assert ("notice", "Signed out everywhere: every sign-in with this key has ended.") in flashes(
        page
    )
    assert here.get("/ui/").status_code == 303
    ended = laptop.get("/ui/")
    assert ended.status_code == 303
    assert (
        "error",
        "Your sign-in has ended (expired, signed out, or its key was revoked).",
    ) in flashes(laptop.page(ended.headers["Location"]))
    put_back(laptop.client, stolen)
    assert laptop.get("/ui/").status_code == 303
    assert other.get("/ui/").status_code == 200  # another key's sessions go on
    # Signing in again afterwards works at once.
    assert here.sign_in(key).status_code == 303
    assert here.get("/ui/").status_code == 200


def test_a_viewer_may_sign_out_everywhere(client):
    pages = ConsolePages(client)
    pages.sign_in(VIEWER_KEY)
    pages.page("/ui/")
    response = pages.post("/ui/logout/everywhere")
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/login"
    assert pages.get("/ui/").status_code == 303


def test_sign_out_everywhere_needs_the_csrf_token(client, app):
    pages, laptop = ConsolePages(client), ConsolePages(app.test_client())
    pages.sign_in(OPERATOR_KEY)
    laptop.sign_in(OPERATOR_KEY)
    assert pages.post("/ui/logout/everywhere", token=None).status_code == 400
    assert pages.get("/ui/").status_code == 200
    assert laptop.get("/ui/").status_code == 200


def test_sign_out_everywhere_needs_a_sign_in(client, app):
    pages = ConsolePages(client)
    response = pages.post("/ui/logout/everywhere")
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/login"
    with app.app_context():
        assert ConsoleSessionEnd.select().count() == 0


def test_ended_sessions_are_forgotten_once_they_would_have_expired(app, client):
    """The table holds only sign-outs younger than a session: each new one prunes the rest."""
    with app.app_context():
        past = utcnow() - dt.timedelta(minutes=1)
        ConsoleSessionEnd.create(subject="0" * 64, ended_at=past, expires_at=past)
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    pages.page("/ui/")
    pages.post("/ui/logout")
    hours = app.extensions["homelab"].settings.session_hours
    with app.app_context():
        (row,) = ConsoleSessionEnd.select()
        assert row.subject != "0" * 64
        # Kept until the session itself would have ended, no longer.
        assert row.expires_at <= utcnow() + dt.timedelta(hours=hours)
        assert row.expires_at > utcnow() + dt.timedelta(hours=hours) - dt.timedelta(minutes=5)


def test_a_cookie_from_before_session_ids_must_sign_in_again(app, client):
    """A cookie sealed before sessions had ids could not be signed out: it is not a session."""
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    with app.test_request_context("/ui/"):
        old_style = console_session._seal(keys.hash_key(OPERATOR_KEY))
    with client.session_transaction("/ui/") as stored:
        stored["key"] = old_style
    assert pages.get("/ui/").status_code == 303


class StatementCounter(logging.Handler):
    """Counts the SQL statements peewee runs (it logs each at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@pytest.mark.parametrize("stored", [False, True], ids=["bootstrap", "stored"])
def test_the_per_request_check_is_one_statement(app, client, stored):
    """The key and whether its session (or every session of the key) ended: one query."""
    key = OPERATOR_KEY
    if stored:
        with app.app_context():
            key, _ = keys.create_key("operator", name="alice")
    pages = ConsolePages(client)
    pages.sign_in(key)
    with client.session_transaction("/ui/") as stored_session:
        cookie = dict(stored_session)
    counter = StatementCounter()
    peewee_log = logging.getLogger("peewee")
    level = peewee_log.level
    peewee_log.addHandler(counter)
    peewee_log.setLevel(logging.DEBUG)
    try:
        with app.test_request_context("/ui/"):
            from flask import session

            session.update(cookie)
            user = console_session.current_user()
    finally:
        peewee_log.removeHandler(counter)
        peewee_log.setLevel(level)
    assert user is not None and user.scope == "operator"
    assert counter.count == 1


def test_a_sign_in_keeps_the_span_it_was_given(client):
    """Raising HOMELAB_SESSION_HOURS later lengthens no session: a record of its sign-out,
    kept until the span it was given ends, then outlives every copy of its cookie."""
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    assert pages.get("/ui/").status_code == 200
    with client.session_transaction("/ui/") as stored:
        # Signed in two hours ago under a one-hour setting; the current one (12) would allow it.
        stored["since"] -= 2 * 3600
        stored["until"] = stored["since"] + 3600
    assert pages.get("/ui/").status_code == 303
