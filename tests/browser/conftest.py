"""Browser tests of the console: Playwright drives Debian's chromium against a real
`homelab-control serve`, whose approved actions run over the test sshd on this host.

One control per module (starting one takes a few seconds); each test opens its own browser
context, and every request any page makes is recorded: one that leaves control's origin fails
the test that made it (no CDN, no web font, no analytics, ever).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.harness import (
    AGENT_KEY,
    CHROMIUM,
    COMMANDS,
    OPERATOR_KEY,
    VIEWER_KEY,
    Console,
)
from tests.helpers import require_binary
from tests.live import LiveControl


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch arguments, pointed at Debian's chromium (no download)."""
    require_binary(CHROMIUM, "Chromium (Debian package chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


@pytest.fixture(scope="module")
def console(tmp_path_factory, sshd) -> Iterator[Console]:
    """control serving the console, with the touch_marker whitelist and the sshd's keys."""
    data = tmp_path_factory.mktemp("console")
    workdir = data / "remote"
    workdir.mkdir()
    commands = data / "commands.toml"
    commands.write_text(COMMANDS.format(workdir=workdir))
    live = LiveControl(
        data,
        operator_key=OPERATOR_KEY,
        viewer_key=VIEWER_KEY,
        agent_key=AGENT_KEY,
        commands_file=str(commands),
        ssh_key_file=str(sshd.client_key_path),
        ssh_known_hosts=str(sshd.known_hosts_path),
        ssh_user=sshd.user,
    )
    with live:
        console = Console(live, workdir, (sshd.host, sshd.port))
        console.add_server("box", paused=True)
        yield console


def _record(context: BrowserContext, seen: list[str]) -> None:
    context.on("request", lambda request: seen.append(request.url))


@pytest.fixture
def open_context(browser: Browser, console: Console) -> Iterator:
    """Open browser contexts (`open_context(**options)`); each one's requests are recorded and
    must all go to control."""
    opened: list[BrowserContext] = []
    seen: list[str] = []

    def open_one(**options) -> BrowserContext:
        context = browser.new_context(**options)
        _record(context, seen)
        opened.append(context)
        return context

    yield open_one
    for context in opened:
        context.close()
    elsewhere = [url for url in seen if not url.startswith(console.url + "/")]
    assert not elsewhere, f"requests left control's origin: {elsewhere}"


@pytest.fixture
def page(open_context) -> Page:
    """A page in a fresh context (its own cookies) at a desktop size."""
    return open_context(viewport={"width": 1280, "height": 900}).new_page()
