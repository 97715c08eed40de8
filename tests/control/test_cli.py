"""`homelab-control`: keys, serve, clean shutdown and one-line errors for bad settings."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.live import LiveControl


def control(tmp_path, *args, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    environment["HOMELAB_DATA_DIR"] = str(tmp_path)
    environment.update({f"HOMELAB_{k.upper()}": v for k, v in env.items()})
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_create_list_revoke(tmp_path):
    created = control(tmp_path, "keys", "create", "--scope", "viewer", "--name", "grafana")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("hlc_") and len(key) > 40
    assert "shown only once" in created.stderr

    listing = control(tmp_path, "keys", "list")
    assert "grafana" in listing.stdout and "viewer" in listing.stdout
    assert key not in listing.stdout

    with LiveControl(tmp_path) as live:
        headers = {"X-API-Key": key}
        assert (
            requests.get(live.url + "/api/v1/servers", headers=headers, timeout=10).status_code
            == 200
        )
        assert control(tmp_path, "keys", "revoke", "grafana").returncode == 0
        assert (
            requests.get(live.url + "/api/v1/servers", headers=headers, timeout=10).status_code
            == 401
        )
    assert "revoked" in control(tmp_path, "keys", "list").stdout


def test_bound_agent_key_from_cli(tmp_path):
    created = control(tmp_path, "keys", "create", "--scope", "agent", "--server-id", "pi-1")
    assert created.returncode == 0
    assert "bound to server pi-1" in created.stderr
    refused = control(tmp_path, "keys", "create", "--scope", "viewer", "--server-id", "pi-1")
    assert refused.returncode == 2  # a usage error, like any invalid argument
    assert "only agent keys" in refused.stderr


def test_revoking_unknown_key_fails_cleanly(tmp_path):
    result = control(tmp_path, "keys", "revoke", "ghost")
    assert result.returncode == 1
    assert result.stderr.strip() == "homelab-control: no key named 'ghost'"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"database_url": "mysql://db/x"}, "HOMELAB_DATABASE_URL: unsupported scheme 'mysql'"),
        ({"offline_after": "soon"}, "HOMELAB_OFFLINE_AFTER: invalid value 'soon'"),
        ({"offline_after": "-5"}, "HOMELAB_OFFLINE_AFTER: invalid value '-5'"),
        ({"log_format": "xml"}, "HOMELAB_LOG_FORMAT"),
        ({"database_url": "postgresql://nobody@127.0.0.1:1/none"}, "cannot open database"),
        ({"commands_file": "/nonexistent/commands.toml"}, "commands file /nonexistent"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, env, expected):
    result = control(tmp_path, "serve", "--port", "1", **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("homelab-control: error: ")
    assert expected in lines[0]


def test_unwritable_data_dir_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = control(tmp_path, "serve", data_dir=str(blocker / "data"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "HOMELAB_DATA_DIR" in result.stderr


def test_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = control(tmp_path, "serve", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"homelab-control: error: port {port} on 127.0.0.1 is already in use"
    )


def test_serve_stops_cleanly_on_sigterm(tmp_path):
    live = LiveControl(tmp_path, operator_key="k").start()
    started = time.monotonic()
    assert live.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15  # generous: a hang, not a speed, is the failure
    assert "scheduler stopped" in live.log()


def test_config_file_is_read(tmp_path):
    config = tmp_path / "control.toml"
    config.write_text('offline_after = "nope"\n')
    result = control(tmp_path, "serve", config=str(config))
    assert result.returncode == 2
    assert "HOMELAB_OFFLINE_AFTER" in result.stderr


def test_wsgi_module_builds_the_app_from_the_environment(tmp_path):
    script = (
        "import control.wsgi as w; c = w.app.test_client(); "
        "print(c.get('/health').status_code, "
        "c.get('/api/v1/servers', headers={'X-API-Key': 'wk'}).status_code)"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    environment.update(HOMELAB_DATA_DIR=str(tmp_path), HOMELAB_VIEWER_KEY="wk")
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["200", "200"], result.stderr


def test_invalid_commands_file_stops_start_up_with_one_line(tmp_path):
    commands = tmp_path / "commands.toml"
    commands.write_text('[commands.wipe]\nargv = ["rm", "-rf", "{target}"]\n')
    result = control(tmp_path, "serve", commands_file=str(commands))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "commands file" in lines[0] and "{target}" in lines[0]


def test_keys_create_alerts_scope(tmp_path):
    created = control(tmp_path, "keys", "create", "--scope", "alerts", "--name", "alertmanager")
    assert created.returncode == 0, created.stderr
    assert "Created alerts key 'alertmanager'" in created.stderr
    listing = control(tmp_path, "keys", "list").stdout
    assert re.search(r"^alertmanager\s+alerts\s", listing, re.M), listing


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--name", "two\nlines"], "name"),
        (["--name", "tab\there"], "name"),
        (["--name", "with space"], "name"),
        (["--name", "x" * 101], "name"),
        (["--name", "bootstrap-operator"], "name"),
        (["--server-id", "Pi_1"], "server_id"),
        (["--server-id", "pi-1\nforged"], "server_id"),
        (["--server-id", "p" * 101], "server_id"),
    ],
)
def test_keys_create_refuses_bad_names_and_server_ids_in_one_line(tmp_path, args, expected):
    result = control(tmp_path, "keys", "create", "--scope", "agent", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("homelab-control: error: ")
    assert expected in lines[0]
    assert result.stdout == ""  # no key printed
    assert "agent" not in control(tmp_path, "keys", "list").stdout.split("\n", 1)[1]
