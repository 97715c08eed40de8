"""Signing out in a real browser ends the session on the server: another browser signed in with
the same key is signed out by "Sign out everywhere", and a copied cookie dies with its session.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.harness import Console

DESKTOP = {"viewport": {"width": 1280, "height": 900}}


def new_key(console: Console, name: str) -> str:
    """A stored operator key of its own, so no other test's sessions are touched."""
    key = console.cli("keys", "create", "--scope", "operator", "--name", name).split()[-1]
    assert key.startswith("hlc_")
    return key


def test_sign_out_everywhere_signs_out_the_other_browser(open_context, console: Console):
    key = new_key(console, "erin")
    desk, laptop = (open_context(**DESKTOP).new_page() for _ in range(2))
    console.sign_in(desk, key)
    console.sign_in(laptop, key)
    laptop.goto(console.url + "/ui/events")
    expect(laptop.get_by_role("heading", name="Events")).to_be_visible()

    desk.get_by_role("button", name="Sign out everywhere").click()
    expect(desk.get_by_role("status")).to_have_text(
        "Signed out everywhere: every sign-in with this key has ended."
    )
    expect(desk.get_by_role("heading", name="Sign in")).to_be_visible()

    laptop.goto(console.url + "/ui/approvals")
    expect(laptop.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(laptop.get_by_role("alert")).to_contain_text("signed out")
    # The key itself still works: signing in again is a fresh session.
    console.sign_in(laptop, key)


def test_a_cookie_copied_before_sign_out_no_longer_signs_in(open_context, console: Console):
    key = new_key(console, "frank")
    owner = open_context(**DESKTOP)
    page = owner.new_page()
    console.sign_in(page, key)
    copied = owner.cookies()
    assert any(cookie["name"] == "homelab_console" for cookie in copied)

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Signed out.")

    thief = open_context(**DESKTOP)
    thief.add_cookies(copied)
    stolen = thief.new_page()
    stolen.goto(console.url + "/ui/")
    expect(stolen.get_by_role("heading", name="Sign in")).to_be_visible()
