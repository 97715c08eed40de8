"""`make run` (control/quickstart.py): key file mode, the agent's environment, a taken port.

Issue 11, Low 12 and 16: a pre-existing `dev-keys.env` kept its mode; the local agent's
environment held the operator and viewer keys; on a port already taken, `make run` printed
"running" against the other server's /health.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from control import quickstart
from tests.helpers import free_port, wait_until

SCOPES = ("operator", "agent", "viewer")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keys_file(tmp_path, monkeypatch) -> Path:
    """quickstart's key file pointed at a fresh data directory."""
    monkeypatch.setattr(quickstart, "DATA_DIR", tmp_path)
    monkeypatch.setattr(quickstart, "KEYS_FILE", tmp_path / "dev-keys.env")
    return tmp_path / "dev-keys.env"


def test_a_pre_existing_keys_file_is_narrowed_to_600_on_start(keys_file):
    stored = {scope: f"hlc_{scope}" for scope in SCOPES}
    keys_file.write_text("".join(f"HOMELAB_{s.upper()}_KEY={k}\n" for s, k in stored.items()))
    keys_file.chmod(0o644)
    keys, new = quickstart.load_or_create_keys()
    assert (keys, new) == (stored, False)
    assert _mode(keys_file) == 0o600


def test_an_incomplete_keys_file_is_rewritten_with_mode_600(keys_file):
    keys_file.write_text("HOMELAB_OPERATOR_KEY=only-one\n")
    keys_file.chmod(0o666)
    keys, new = quickstart.load_or_create_keys()
    assert new and set(keys) == set(SCOPES)
    assert _mode(keys_file) == 0o600
    assert "only-one" not in keys_file.read_text()


def test_a_new_keys_file_is_600_even_with_a_permissive_umask(keys_file):
    old = os.umask(0)
    try:
        quickstart.load_or_create_keys()
    finally:
        os.umask(old)
    assert _mode(keys_file) == 0o600


# --- make run as a process -----------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    """Another server on the port: answers /health 200, as a second control would."""

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "database": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def other_server() -> Iterator[int]:
    """An HTTP server answering /health 200 on a free port; yields the port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _run_env(data_dir: Path, port: int, agent_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    env.update(
        HOMELAB_DATA_DIR=str(data_dir),
        HOST="127.0.0.1",
        PORT=str(port),
        AGENT_PORT=str(agent_port),
        # A setting meant for control only: the agent must not see it either.
        HOMELAB_OFFLINE_AFTER="600",
    )
    return env


@contextlib.contextmanager
def make_run(tmp_path: Path, port: int, agent_port: int) -> Iterator[tuple[subprocess.Popen, Path]]:
    """`python -m control.quickstart` running until its banner; stopped (SIGTERM) after."""
    output = tmp_path / "make-run.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "control.quickstart"],
            env=_run_env(tmp_path / "data", port, agent_port),
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:

        def started() -> bool:
            assert process.poll() is None, output.read_text()
            return "homelabcmd is running" in output.read_text()

        wait_until(started, timeout=60)
        yield process, output
    finally:
        process.terminate()
        process.wait(timeout=30)


def _stored_keys(data_dir: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (data_dir / "dev-keys.env").read_text().splitlines())
    return {name.removeprefix("HOMELAB_").removesuffix("_KEY").lower(): v for name, v in pairs}


# make_run's processes hide behind contextmanager from the lane rules.
@pytest.mark.integration
def test_the_local_agent_gets_only_its_own_key_and_a_state_dir(tmp_path):
    with make_run(tmp_path, free_port(), free_port()) as (process, _):
        children = psutil.Process(process.pid).children()
        agents = [c for c in children if "exporter_agent" in c.cmdline()]
        assert len(agents) == 1, [c.cmdline() for c in children]
        environ = agents[0].environ()
        keys = _stored_keys(tmp_path / "data")
        homelab = {name for name in environ if name.startswith("HOMELAB_")}
        assert homelab == {
            "HOMELAB_CONTROL_URL",
            "HOMELAB_API_KEY",
            "HOMELAB_LISTEN_ADDRESS",
            "HOMELAB_LISTEN_PORT",
            "HOMELAB_STATE_DIR",
        }
        assert environ["HOMELAB_API_KEY"] == keys["agent"]
        assert keys["operator"] not in environ.values()
        assert keys["viewer"] not in environ.values()
        state_dir = (tmp_path / "data" / "agent").resolve()
        assert environ["HOMELAB_STATE_DIR"] == str(state_dir)
        # The agent enrolled with the shared key and keeps its bound key there.
        wait_until(lambda: (state_dir / "enrollment.json").exists())


def test_make_run_on_a_port_another_server_holds_says_so_and_fails(tmp_path):
    with other_server() as port:
        result = subprocess.run(
            [sys.executable, "-m", "control.quickstart"],
            env=_run_env(tmp_path / "data", port, free_port()),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode != 0
    assert "homelabcmd is running" not in result.stdout
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    suggested = int(re.search(r"PORT=(\d+) make run", result.stderr).group(1))
    assert suggested != port and not quickstart.port_in_use("127.0.0.1", suggested)


def test_a_health_answer_from_another_process_is_not_taken_for_control(tmp_path):
    """The race behind the pre-flight check: the port is taken after it, before control binds."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with other_server() as port, pytest.raises(SystemExit) as exited:
            quickstart.wait_for_health(f"http://127.0.0.1:{port}", sleeper, port)
        assert f"port {port} on" in str(exited.value.code)
        assert "already in use" in str(exited.value.code)
        assert sleeper.poll() is not None  # the control that could not bind is stopped
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait()


# make_run's processes hide behind contextmanager from the lane rules.
@pytest.mark.integration
def test_make_run_with_the_agent_port_taken_runs_control_and_says_why_no_agent(tmp_path):
    with (
        other_server() as agent_port,
        make_run(tmp_path, control_port := free_port(), agent_port) as (
            process,
            output,
        ),
    ):
        text = output.read_text()
        assert f"local agent not started: port {agent_port} on 127.0.0.1 is already in use" in text
        suggested = int(re.search(r"AGENT_PORT=(\d+) make run", text).group(1))
        assert suggested not in (agent_port, control_port)
        children = psutil.Process(process.pid).children()
        assert not [c for c in children if "exporter_agent" in c.cmdline()]
