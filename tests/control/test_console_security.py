"""The console's guards: CSRF on every form, viewers read only, no inline script, its secret."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from control.config import console_secret_key, load_settings
from control.errors import ConfigError
from control.models import Action, Server
from tests.conftest import OPERATOR_KEY, VIEWER_KEY
from tests.console import ConsolePages

TEMPLATES = Path(__file__).resolve().parents[2] / "control" / "console" / "templates"


@pytest.fixture
def box(client, auth):
    """A server `box` (paused, so an action waits) with one pending action."""
    body = {"id": "box", "hostname": "box", "ip_address": "127.0.0.1", "ssh_port": 1}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    assert client.put("/api/v1/servers/box/pause", headers=auth.operator).status_code == 200
    action = {"server_id": "box", "action_type": "restart_service", "service_name": "nginx"}
    response = client.post("/api/v1/actions", json=action, headers=auth.operator)
    assert response.json["status"] == "pending"
    return response.json["id"]


def changes(action_id: int) -> list[tuple[str, str]]:
    """Every console form a viewer or a forged request might post: (path, form data)."""
    return [
        (f"/ui/actions/{action_id}/approve", {}),
        (f"/ui/actions/{action_id}/reject", {"reason": "no"}),
        ("/ui/servers/box/resume", {}),
        ("/ui/servers/box/pause", {}),
        ("/ui/servers/box/run/restart_service", {"restart_service-param_service_name": "x"}),
        ("/ui/servers/box/enrollment/reset", {"confirm": "y"}),
    ]


def snapshot(app) -> tuple:
    """What any of those forms would change."""
    with app.app_context():
        server = Server.get_by_id("box")
        return server.is_paused, [(a.id, a.status) for a in Action.select().order_by(Action.id)]


def test_a_viewer_sees_no_buttons(client, box):
    pages = ConsolePages(client)
    pages.sign_in(VIEWER_KEY)
    for path in ("/ui/approvals", "/ui/servers/box"):
        page = pages.page(path)
        for label in ("Approve", "Reject", "Pause", "Resume", "Run", "Reset enrollment"):
            assert f">{label}</button>" not in page
        # The only form a viewer gets is the one that signs them out.
        assert page.count('method="post"') == 1


def test_a_viewers_post_is_403_and_changes_nothing(app, client, box):
    pages = ConsolePages(client)
    pages.sign_in(VIEWER_KEY)
    pages.page("/ui/approvals")  # a valid token: only the scope stands in the way
    before = snapshot(app)
    for path, data in changes(box):
        response = pages.post(path, data)
        assert response.status_code == 403, path
        assert "changes nothing" in response.get_data(as_text=True)
    assert snapshot(app) == before


@pytest.mark.parametrize("token", [None, "forged", "other-session"])
def test_a_form_without_this_sessions_csrf_token_is_refused(app, client, box, token):
    if token == "other-session":
        other = ConsolePages(app.test_client())
        other.sign_in(OPERATOR_KEY)
        token = other.token()
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    before = snapshot(app)
    for path, data in changes(box):
        response = pages.post(path, data, token=token)
        assert response.status_code == 400, path
        assert "did not come from this console" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_signing_in_needs_the_csrf_token_too(client):
    pages = ConsolePages(client)
    response = pages.post("/ui/login", {"api_key": OPERATOR_KEY}, token=None)
    assert response.status_code == 400
    assert pages.get("/ui/").status_code == 303


def test_the_json_api_needs_no_csrf_token_and_ignores_the_cookie(client, auth):
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    body = {"id": "api-box", "hostname": "api-box"}
    # Header-authenticated as always, with no token.
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    # The console's cookie is no credential for the API.
    response = client.put("/api/v1/servers/api-box/pause")
    assert response.status_code == 401
    assert response.json["code"] == "UNAUTHORIZED"


def test_pages_forbid_inline_script_framing_and_caching(client, box):
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    response = pages.get("/ui/servers/box")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("template", sorted(p.name for p in (TEMPLATES / "console").glob("*.html")))
def test_templates_hold_no_inline_script_style_or_safe_filter(template):
    text = (TEMPLATES / "console" / template).read_text()
    assert "|safe" not in text.replace(" ", "")
    assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline <script>"
    assert not re.search(r"\son[a-z]+=", text), "inline event handler"
    assert not re.search(r"\sstyle=", text), "inline style attribute"
    assert "<style" not in text
    assert "http://" not in text and "https://" not in text, "another origin"


def test_the_secret_key_is_generated_once_into_the_data_dir_private(tmp_path):
    settings = load_settings(environ={}, data_dir=str(tmp_path / "data"))
    first = console_secret_key(settings)
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert console_secret_key(settings) == first
    path.chmod(0o644)  # a careless copy: narrowed again at the next start
    assert console_secret_key(settings) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temporary left


def test_homelab_secret_key_wins_and_must_be_long(tmp_path):
    key = "k" * 40
    settings = load_settings(environ={"HOMELAB_SECRET_KEY": key}, data_dir=str(tmp_path))
    assert console_secret_key(settings) == key
    assert not (tmp_path / "secret_key").exists()
    with pytest.raises(ConfigError, match="HOMELAB_SECRET_KEY"):
        load_settings(environ={"HOMELAB_SECRET_KEY": "short"}, data_dir=str(tmp_path))


def test_a_symlinked_secret_file_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("x" * 64)
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(target, data / "secret_key")
    with pytest.raises(ConfigError, match="secret_key"):
        console_secret_key(load_settings(environ={}, data_dir=str(data)))
