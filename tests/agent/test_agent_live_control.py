"""The real agent heartbeating to a real `homelab-control serve` (SQLite in a temp dir)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.request

import pytest

from tests.agent.conftest import REPO, agent_env, http_get
from tests.helpers import free_port, wait_until
from tests.live import LiveControl

pytestmark = pytest.mark.integration

SERVER_ID = "live-box"


@pytest.fixture
def keys():
    return {"agent": secrets.token_urlsafe(24), "operator": secrets.token_urlsafe(24)}


@pytest.fixture
def control(tmp_path, keys):
    live = LiveControl(
        tmp_path / "control", port=free_port(), agent_key=keys["agent"],
        operator_key=keys["operator"],
    )  # fmt: skip
    live.start()
    yield live
    live.stop()


def server(control, keys, server_id=SERVER_ID):
    """GET /api/v1/servers/{id} as operator: (status, JSON body)."""
    status, _, body = http_get(
        f"{control.url}/api/v1/servers/{server_id}", {"X-API-Key": keys["operator"]}
    )
    return status, json.loads(body)


def heartbeat_agent(start_agent, control, key, *args):
    return start_agent(
        "--control-url", control.url, "--server-id", SERVER_ID, "--interval", "1",
        "--backoff-cap", "1", *args, env=agent_env(HOMELAB_API_KEY=key),
    )  # fmt: skip


def test_agent_registers_and_goes_online(start_agent, control, keys):
    agent = heartbeat_agent(start_agent, control, keys["agent"])
    wait_until(lambda: server(control, keys)[0] == 200)
    _, body = server(control, keys)
    assert body["status"] == "online"
    assert body["metrics_port"] == agent.port
    assert body["agent_version"]
    assert body["kernel_version"] and body["architecture"]
    assert body["latest_metrics"]["memory_total_mb"] > 0
    # The agent logs the answer after control has stored the heartbeat: wait for the line.
    wait_until(lambda: "newly registered: True" in agent.log())
    metrics = http_get(agent.url + "/metrics")[2].decode()
    assert "homelab_agent_heartbeat_success 1.0" in metrics


def test_agent_survives_control_restart(start_agent, control, keys):
    agent = heartbeat_agent(start_agent, control, keys["agent"])
    wait_until(lambda: server(control, keys)[0] == 200)
    control.stop()
    wait_until(lambda: "control unavailable" in agent.log())
    assert http_get(agent.url + "/metrics")[0] == 200, "/metrics must serve during the outage"
    control.start()
    before = server(control, keys)[1]["last_seen"]
    # Retries wait at most --backoff-cap (1 s) each, so the agent is back within seconds.
    wait_until(lambda: "heartbeat accepted again" in agent.log())
    wait_until(lambda: server(control, keys)[1]["last_seen"] != before)
    assert server(control, keys)[1]["status"] == "online"


def test_wrong_key_is_logged_clearly_once(start_agent, control, keys):
    agent = heartbeat_agent(start_agent, control, "not-the-agent-key", "--log-level", "debug")
    wait_until(lambda: agent.log().count("heartbeat: unauthorized 401") >= 2)
    assert agent.log().count("control rejected the API key (HTTP 401") == 1
    assert "not-the-agent-key" not in agent.log()
    assert server(control, keys)[0] == 404
    assert "homelab_agent_heartbeat_success 0.0" in http_get(agent.url + "/metrics")[2].decode()


def test_key_bound_to_another_server_is_refused_with_403(start_agent, control, keys):
    created = subprocess.run(
        [sys.executable, "-m", "control.cli", "keys", "create", "--scope", "agent",
         "--server-id", "other-box"],
        capture_output=True, text=True, env=control.env, cwd=REPO, timeout=60, check=True,
    )  # fmt: skip
    bound_key = created.stdout.strip()
    agent = heartbeat_agent(start_agent, control, bound_key)
    wait_until(lambda: "HTTP 403" in agent.log())
    assert "bound to another server" in agent.log()
    assert server(control, keys)[0] == 404


def kept_key(state):
    """The key the agent keeps in its state directory, or None before it enrolled."""
    path = state / "enrollment.json"
    return json.loads(path.read_text())["agent_key"] if path.exists() else None


def test_agent_enrolls_keeps_its_key_and_an_impostor_is_refused(
    start_agent, control, keys, tmp_path
):
    state = tmp_path / "agent-state"
    env = agent_env(HOMELAB_API_KEY=keys["agent"], HOMELAB_STATE_DIR=str(state))
    args = ("--control-url", control.url, "--server-id", SERVER_ID, "--interval", "1",
            "--backoff-cap", "1")  # fmt: skip
    agent = start_agent(*args, env=env)
    wait_until(lambda: kept_key(state) is not None)
    enrolled_key = kept_key(state)
    assert (state / "enrollment.json").stat().st_mode & 0o777 == 0o600
    assert json.loads((state / "enrollment.json").read_text())["server_id"] == SERVER_ID
    assert enrolled_key not in agent.log() and keys["agent"] not in agent.log()
    wait_until(lambda: "enrolled" in agent.log())

    # Another box with the same shared key, claiming this server id, is refused.
    impostor = heartbeat_agent(start_agent, control, keys["agent"])
    wait_until(lambda: "HTTP 403" in impostor.log())
    assert "is enrolled" in impostor.log()
    assert server(control, keys)[1]["metrics_port"] == agent.port
    # (After a reset, whichever box reports first with the shared key enrolls: the impostor
    # must be gone before an operator resets, as docs/security.md says.)
    impostor.stop()

    # A restarted agent goes on with the kept key.
    agent.stop()
    again = start_agent(*args, env=env)
    before = server(control, keys)[1]["last_seen"]
    wait_until(lambda: server(control, keys)[1]["last_seen"] != before)
    assert server(control, keys)[1]["metrics_port"] == again.port
    assert kept_key(state) == enrolled_key

    # After an operator resets the enrollment, the agent enrolls again on its own.
    request = urllib.request.Request(  # noqa: S310 - a local test URL
        f"{control.url}/api/v1/servers/{SERVER_ID}/enrollment/reset",
        method="POST",
        headers={"X-API-Key": keys["operator"]},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        assert json.loads(answer.read())["revoked_keys"] == 1

    wait_until(lambda: kept_key(state) not in (None, enrolled_key))
    wait_until(lambda: "enrolled again" in again.log())


def test_a_new_server_id_enrolls_itself_instead_of_sending_the_old_ids_key(
    start_agent, control, keys, tmp_path
):
    """The hostname changed (so did the default --server-id), or a VM was cloned with its
    state dir: the kept key is bound to the old id, and sending it for the new one is 403
    forever. The agent enrolls the new id with the shared key instead."""
    state = tmp_path / "agent-state"
    env = agent_env(HOMELAB_API_KEY=keys["agent"], HOMELAB_STATE_DIR=str(state))
    common = ("--control-url", control.url, "--interval", "1", "--backoff-cap", "1")
    first = start_agent(*common, "--server-id", SERVER_ID, env=env)
    wait_until(lambda: kept_key(state) is not None)
    old_key = kept_key(state)
    first.stop()

    renamed = start_agent(*common, "--server-id", "renamed-box", env=env)
    wait_until(lambda: server(control, keys, "renamed-box")[0] == 200)
    wait_until(lambda: kept_key(state) not in (None, old_key))
    assert json.loads((state / "enrollment.json").read_text())["server_id"] == "renamed-box"
    assert "HTTP 403" not in renamed.log()
    assert old_key not in renamed.log()
