"""The console in a real browser, against a real control whose actions run over a real sshd.

Read like the feature list: sign in and out, the fleet, approving (the command really runs)
and rejecting, a viewer who can only look, a forged form, JavaScript off, a phone's width, a
revoked key, and not one request leaving the host (checked for every test by the fixtures).
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.harness import OPERATOR_KEY, VIEWER_KEY, Console
from tests.helpers import free_port, wait_until

PAGES = ["/ui/", "/ui/servers/box", "/ui/approvals", "/ui/events", "/ui/audit", "/ui/costs"]


def test_sign_in_see_the_fleet_and_sign_out(page: Page, console: Console):
    page.goto(console.url + "/")
    expect(page).to_have_url(console.url + "/ui/login?next=/ui/")
    console.sign_in(page, OPERATOR_KEY)
    expect(page.get_by_role("status")).to_have_text("Signed in as bootstrap-operator (operator).")
    expect(page.get_by_role("link", name="box")).to_be_visible()
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Signed out.")
    page.goto(console.url + "/ui/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_approve_in_the_browser_and_the_command_runs_over_ssh(page: Page, console: Console):
    action_id = console.queue("box", "approved-in-browser")
    console.sign_in(page, OPERATOR_KEY)
    page.get_by_role("link", name="Approvals").click()
    pending = page.locator(f"#action-{action_id}")
    expect(pending).to_contain_text("touch_marker")
    pending.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text(f"Action {action_id} (touch_marker on box)")
    wait_until(console.marker("approved-in-browser").exists)
    action = console.wait_for_status(action_id, "completed")
    assert (action["approved_by"], action["exit_code"]) == ("bootstrap-operator", 0)
    page.reload()
    done = page.locator(f"#history-{action_id}")
    expect(done).to_contain_text("completed")
    expect(done).to_contain_text("approved by bootstrap-operator")
    expect(done).to_contain_text("exit 0")


def test_reject_with_a_reason_in_the_browser(page: Page, console: Console):
    action_id = console.queue("box", "rejected-in-browser")
    console.sign_in(page, OPERATOR_KEY)
    page.goto(console.url + "/ui/approvals")
    pending = page.locator(f"#action-{action_id}")
    pending.get_by_text("Reject…").click()
    pending.get_by_label("Reason").fill("not during the backup window")
    pending.get_by_role("button", name="Reject").click()
    expect(page.locator(f"#history-{action_id}")).to_contain_text(
        "Reason: not during the backup window"
    )
    action = console.action(action_id)
    assert (action["status"], action["rejected_by"]) == ("rejected", "bootstrap-operator")
    assert not console.marker("rejected-in-browser").exists()


def test_a_viewer_sees_everything_and_its_post_changes_nothing(page: Page, console: Console):
    action_id = console.queue("box", "viewer-cannot-approve")
    console.sign_in(page, VIEWER_KEY)
    for path in PAGES:
        page.goto(console.url + path)
        for label in ("Approve", "Reject", "Pause", "Resume", "Run", "Reset enrollment"):
            expect(page.get_by_role("button", name=label, exact=True)).to_have_count(0)
    # The browser's own session and a valid CSRF token: only the viewer's scope stands in the way.
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    for path in (f"/ui/actions/{action_id}/approve", "/ui/servers/box/resume"):
        response = page.request.post(console.url + path, form={"csrf_token": token})
        assert response.status == 403
    assert console.action(action_id)["status"] == "pending"
    assert console.api("GET", "/api/v1/servers/box")["is_paused"] is True


@pytest.fixture
def forged_form(console: Console) -> Iterator[str]:
    """Another site on this host (another port) whose form posts to the console."""
    target = console.url + "/ui/servers/box/resume"
    html = (
        f'<form method="post" action="{target}">'
        '<input type="hidden" name="csrf_token" value="guessed">'
        "<button>Win a prize</button></form>"
    ).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_form_from_another_site_is_refused(browser, console: Console, forged_form: str):
    # Same host, other port: same-site, so SameSite=Lax still sends the cookie. The CSRF
    # token is what stops it. (Its own context: this page is meant to be elsewhere.)
    context = browser.new_context()
    page = context.new_page()
    console.sign_in(page, OPERATOR_KEY)
    page.goto(forged_form)
    page.get_by_role("button", name="Win a prize").click()
    expect(page.get_by_role("alert")).to_contain_text("did not come from this console")
    assert console.api("GET", "/api/v1/servers/box")["is_paused"] is True
    context.close()


def test_everything_works_with_javascript_off(open_context, console: Console):
    console.add_server("no-js")
    page = open_context(java_script_enabled=False).new_page()
    console.sign_in(page, OPERATOR_KEY)
    page.get_by_role("link", name="no-js").click()
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("no-js paused")
    assert console.api("GET", "/api/v1/servers/no-js")["is_paused"] is True
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text("no-js resumed")
    # Run a whitelisted action from its form: a <details> opens without script too.
    run = page.locator("details.form", has_text="touch_marker")
    run.locator("summary").click()
    run.get_by_label("name", exact=True).fill("run-without-js")
    run.get_by_role("button", name="Run").click()
    expect(page.get_by_role("status")).to_contain_text("queued")
    wait_until(console.marker("run-without-js").exists)


def test_a_refused_run_shows_why_on_the_page(page: Page, console: Console):
    console.sign_in(page, OPERATOR_KEY)
    page.goto(console.url + "/ui/servers/box")
    run = page.locator("details.form", has_text="touch_marker")
    run.locator("summary").click()
    run.get_by_label("name", exact=True).fill("Not Allowed!")
    run.get_by_role("button", name="Run").click()
    expect(page.get_by_role("alert")).to_contain_text("parameters.name: Does not match")


def test_every_page_fits_a_390px_phone_without_sideways_scrolling(open_context, console):
    page = open_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    page.goto(console.url + "/ui/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    console.sign_in(page, OPERATOR_KEY)
    for path in PAGES:
        page.goto(console.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide"


def test_revoking_the_key_ends_the_session(page: Page, console: Console):
    key = console.cli("keys", "create", "--scope", "operator", "--name", "carol").split()[-1]
    assert key.startswith("hlc_")
    console.sign_in(page, key)
    console.cli("keys", "revoke", "carol")
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("its key was revoked")


def test_auto_refresh_reloads_the_same_filtered_page(page: Page, console: Console):
    console.sign_in(page, OPERATOR_KEY)
    page.clock.install()
    page.goto(console.url + "/ui/?status=unknown")
    with page.expect_navigation():
        page.clock.fast_forward("00:31")
    expect(page).to_have_url(console.url + "/ui/?status=unknown")
    expect(page.get_by_label("Status")).to_have_value("unknown")


def test_no_page_asks_anything_of_another_host(page: Page, console: Console):
    # The fixtures check this for every test; here it is the test, with what was asked listed.
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    console.sign_in(page, OPERATOR_KEY)
    for path in PAGES:
        page.goto(console.url + path)
    assert [url for url in asked if not url.startswith(console.url + "/")] == []
    assets = {"console.css", "console.js", "favicon.svg"}
    assert {console.url + "/ui/static/" + name for name in assets} <= set(asked)
