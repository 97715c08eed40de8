"""The browser tests' running control: keys, the test whitelist and the `Console` helper."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import requests
from playwright.sync_api import Page, expect

from tests.helpers import wait_until
from tests.live import LiveControl

CHROMIUM = "/usr/bin/chromium"
OPERATOR_KEY = "hlc_browser-operator-key"
VIEWER_KEY = "hlc_browser-viewer-key"
AGENT_KEY = "hlc_browser-agent-key"
COMMANDS = """
[commands.touch_marker]
argv = ["touch", "{workdir}/marker-{{name}}"]
description = "Leave a marker file (a harmless command for tests)."
[commands.touch_marker.params]
name = "^[a-z0-9][a-z0-9-]{{0,39}}$"
"""


@dataclass
class Console:
    """A running control with the console, a server `box` at the test sshd, and its helpers."""

    live: LiveControl
    workdir: Path
    ssh: tuple[str, int]

    @property
    def url(self) -> str:
        return self.live.url

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """Call the JSON API as the operator; the response body (or {})."""
        response = requests.request(
            method,
            self.url + path,
            json=body,
            headers={"X-API-Key": OPERATOR_KEY},
            timeout=10,
        )
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json() if response.content else {}

    def add_server(self, server_id: str, paused: bool = False) -> str:
        """Register a server reached over the test sshd (paused: its actions wait)."""
        host, port = self.ssh
        self.api("POST", "/api/v1/servers", {"id": server_id, "hostname": server_id,
                                             "ip_address": host, "ssh_port": port})  # fmt: skip
        if paused:
            self.api("PUT", f"/api/v1/servers/{server_id}/pause")
        return server_id

    def queue(self, server_id: str, name: str) -> int:
        """Queue touch_marker(name) on a server through the API; the action's id."""
        body = {"server_id": server_id, "action_type": "touch_marker", "parameters": {"name": name}}
        return self.api("POST", "/api/v1/actions", body)["id"]

    def action(self, action_id: int) -> dict:
        """An action as the API shows it."""
        return self.api("GET", f"/api/v1/actions/{action_id}")

    def cli(self, *args: str) -> str:
        """Run `homelab-control` on control's database; its standard output."""
        return subprocess.run(
            [sys.executable, "-m", "control.cli", *args],
            env=self.live.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    def sign_in(self, page: Page, key: str) -> None:
        """Sign in through the form, as a person would."""
        page.goto(self.url + "/ui/login")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Fleet")).to_be_visible()

    def marker(self, name: str) -> Path:
        """The file touch_marker(name) leaves."""
        return self.workdir / f"marker-{name}"

    def wait_for_status(self, action_id: int, status: str) -> dict:
        """Poll the API until the action reaches `status`."""
        return wait_until(lambda: (a := self.action(action_id))["status"] == status and a)
