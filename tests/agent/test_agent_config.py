"""CLI settings: every flag has an env var, flags win, bad settings give one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exporter_agent.collectors import COLLECTORS
from exporter_agent.collectors.systemd import UNITS
from exporter_agent.config import (
    AGENT_OPTIONS,
    OPTIONS,
    SettingsError,
    collector_env,
    load_settings,
)
from tests.agent.conftest import REPO, agent_env

KEY = {"HOMELAB_API_KEY": "k"}


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter_agent", *args],
        capture_output=True, text=True, env=agent_env(**env), cwd=REPO, timeout=60,
    )  # fmt: skip


def test_help_documents_every_flag_and_its_env_var():
    result = run_cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for option in OPTIONS:
        assert option.flag in text
        assert option.env in text
    for spec in COLLECTORS:
        assert f"--collector.{spec.name}" in text
        assert f"--no-collector.{spec.name}" in text
        assert collector_env(spec.name) in text


def test_collector_options_live_beside_their_collector_and_names_are_unique():
    for spec in COLLECTORS:
        for option in spec.options:
            assert option in OPTIONS
            if option.flag.startswith("--collector."):
                assert option.flag.startswith(f"--collector.{spec.name}.")
    for attribute in ("dest", "flag", "env"):
        names = [getattr(option, attribute) for option in OPTIONS]
        assert len(names) == len(set(names)), attribute
    assert not [o for o in AGENT_OPTIONS if o.flag.startswith("--collector.")]


def test_defaults_are_exporter_only_on_port_9100():
    settings = load_settings([], {})
    assert settings.control_url is None
    assert (settings.listen_address, settings.listen_port) == ("0.0.0.0", 9100)
    assert settings.interval == 60.0
    assert settings.backoff_cap == 30.0
    assert settings.collectors == tuple(spec.name for spec in COLLECTORS)


def test_every_setting_comes_from_env_and_flags_win():
    env = {
        "HOMELAB_CONTROL_URL": "http://control:8000/",
        "HOMELAB_API_KEY": "from-env",
        "HOMELAB_SERVER_ID": "box-1",
        "HOMELAB_LISTEN_ADDRESS": "127.0.0.1",
        "HOMELAB_LISTEN_PORT": "9200",
        "HOMELAB_INTERVAL": "15",
        "HOMELAB_SYSTEMD_UNITS": "ssh.service, nginx.service",
    }
    settings = load_settings([], env)
    assert settings.control_url == "http://control:8000"
    assert settings.api_key == "from-env"
    assert settings.server_id == "box-1"
    assert (settings.listen_address, settings.listen_port) == ("127.0.0.1", 9200)
    assert settings.interval == 15.0
    assert settings.collector_options.value(UNITS) == ("ssh.service", "nginx.service")
    flagged = load_settings(["--listen-port", "9300", "--server-id", "box-2"], env)
    assert (flagged.listen_port, flagged.server_id) == (9300, "box-2")


def test_commit_file_from_flag_or_env_and_none_by_default():
    assert load_settings([], {}).commit_file is None
    env = {"HOMELAB_COMMIT_FILE": "/srv/app"}
    assert load_settings([], env).commit_file == "/srv/app"
    assert load_settings(["--commit-file", "/srv/app/.git"], env).commit_file == "/srv/app/.git"


def test_collectors_toggle_by_flag_and_env():
    settings = load_settings(["--no-collector.cpu"], {collector_env("hwmon"): "false"})
    assert "cpu" not in settings.collectors
    assert "hwmon" not in settings.collectors
    assert "meminfo" in settings.collectors
    again = load_settings(["--collector.hwmon"], {collector_env("hwmon"): "false"})
    assert "hwmon" in again.collectors


def test_api_key_from_file(tmp_path):
    (tmp_path / "key").write_text("file-key\n")
    settings = load_settings(
        ["--control-url", "http://c:8000", "--api-key-file", str(tmp_path / "key")], {}
    )
    assert settings.api_key == "file-key"


def test_secrets_stay_out_of_the_settings_repr():
    settings = load_settings(
        ["--control-url", "http://c", "--basic-auth-user", "prom"],
        {"HOMELAB_API_KEY": "sekrit-key", "HOMELAB_BASIC_AUTH_PASSWORD": "sekrit-pw"},
    )
    assert "sekrit" not in repr(settings)


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--listen-port", "70000"], {}, "--listen-port"),
        ([], {"HOMELAB_LISTEN_PORT": "http"}, "HOMELAB_LISTEN_PORT"),
        ([], {"HOMELAB_INTERVAL": "0"}, "HOMELAB_INTERVAL"),
        (["--control-url", "ftp://c"], KEY, "--control-url"),
        (["--control-url", "http://c"], {}, "needs --api-key"),
        (["--api-key", "k"], {}, "without --control-url"),
        (["--server-id", "Box_1"], {}, "--server-id"),
        (["--server-id", "a" * 101], {}, "--server-id"),
        (["--tls-cert", "/x.pem"], {}, "--tls-key"),
        (["--basic-auth-user", "prom"], {}, "password"),
        (["--collector.filesystem.fs-types-exclude", "("], {}, "regular expression"),
        (["--collector.systemd.units=-x"], {}, "unit name"),
        ([], {collector_env("cpu"): "maybe"}, collector_env("cpu")),
        (["--api-key-file", "/nonexistent/key", "--control-url", "http://c"], {}, "cannot read"),
        (["--log-level", "loud"], {}, "--log-level"),
    ],
)
def test_bad_settings_are_rejected_with_a_clear_message(argv, env, needle):
    with pytest.raises(SettingsError) as error:
        load_settings(argv, env)
    assert needle in str(error.value)


def test_bad_setting_is_one_line_on_stderr_and_exit_2():
    result = run_cli(HOMELAB_LISTEN_PORT="not-a-port")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("homelab-agent: error: HOMELAB_LISTEN_PORT='not-a-port'")


def test_unknown_flag_is_one_line_and_exit_2():
    result = run_cli("--no-such-flag")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--no-such-flag" in result.stderr
