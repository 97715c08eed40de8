"""Command line and environment settings: one argparse parser, every flag backed by an env var.

This module declares the agent-wide options; each collector declares its own beside its code
(``OPTIONS`` in its module, listed in ``COLLECTORS``) and the parser is assembled from both.
Precedence: flag, then environment variable, then default. Bad settings raise
``SettingsError`` with a one-line message naming the flag and its variable.
"""

import argparse
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import NamedTuple, NoReturn

from exporter_agent.collectors import COLLECTORS, CollectorOptions, collector_options
from exporter_agent.identity import default_state_dir
from exporter_agent.options import (
    Option,
    SettingsError,
    add_options,
    number_between,
    resolve_options,
)

SERVER_ID = re.compile(r"[a-z0-9-]{1,100}")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
DEFAULT_PORT = 9100
# Like node_exporter: Prometheus scrapes from another host. Use --listen-address to restrict.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104

AGENT_OPTIONS = (
    Option("control_url", "--control-url", "HOMELAB_CONTROL_URL", None,
           "control's base URL, e.g. http://control:8000; without it the agent only serves "
           "/metrics", metavar="URL"),
    Option("api_key", "--api-key", "HOMELAB_API_KEY", None,
           "agent API key sent as X-API-Key (prefer the env var or --api-key-file: flags are "
           "visible in ps)", metavar="KEY"),
    Option("api_key_file", "--api-key-file", "HOMELAB_API_KEY_FILE", None,
           "file holding the API key", metavar="PATH"),
    Option("state_dir", "--state-dir", "HOMELAB_STATE_DIR", None,
           "directory for the key control binds to this server at enrollment (mode 600); "
           "default: $STATE_DIRECTORY (systemd), else ~/.local/state/homelab-agent",
           metavar="DIR"),
    Option("server_id", "--server-id", "HOMELAB_SERVER_ID", None,
           "server id in control, [a-z0-9-]{1,100}; default: the hostname, lowercased, "
           "other characters turned into '-'", metavar="ID"),
    Option("listen_address", "--listen-address", "HOMELAB_LISTEN_ADDRESS", ALL_INTERFACES,
           "address /metrics listens on", metavar="ADDR"),
    Option("listen_port", "--listen-port", "HOMELAB_LISTEN_PORT", DEFAULT_PORT,
           "port /metrics listens on (node_exporter's port; run one or the other)",
           number_between(int, 1, 65535), "PORT"),
    Option("interval", "--interval", "HOMELAB_INTERVAL", 60.0,
           "seconds between heartbeats", number_between(float, 1, 86400), "SECONDS"),
    Option("backoff_cap", "--backoff-cap", "HOMELAB_BACKOFF_CAP", 30.0,
           "longest wait between retries while control is unreachable",
           number_between(float, 0.1, 3600), "SECONDS"),
    Option("control_ca_file", "--control-ca-file", "HOMELAB_CONTROL_CA_FILE", None,
           "CA bundle to verify an https control URL (default: system CAs)", metavar="PATH"),
    Option("tls_cert", "--tls-cert", "HOMELAB_TLS_CERT", None,
           "PEM certificate: serve /metrics over HTTPS (needs --tls-key)", metavar="PATH"),
    Option("tls_key", "--tls-key", "HOMELAB_TLS_KEY", None,
           "PEM private key for --tls-cert", metavar="PATH"),
    Option("basic_auth_user", "--basic-auth-user", "HOMELAB_BASIC_AUTH_USER", None,
           "require HTTP basic auth for /metrics with this user; the password comes from "
           "HOMELAB_BASIC_AUTH_PASSWORD or --basic-auth-password-file", metavar="USER"),
    Option("basic_auth_password_file", "--basic-auth-password-file",
           "HOMELAB_BASIC_AUTH_PASSWORD_FILE", None, "file holding the basic auth password",
           metavar="PATH"),
    Option("commit_file", "--commit-file", "HOMELAB_COMMIT_FILE", None,
           "file holding the commit this box runs, or its git checkout (read without running "
           "git, at every heartbeat); sent to control as commit_hash", metavar="PATH"),
    Option("log_level", "--log-level", "HOMELAB_LOG_LEVEL", "info",
           "debug, info, warning or error", str.lower, "LEVEL"),
    Option("procfs", "--path.procfs", "HOMELAB_PATH_PROCFS", "/proc", "procfs mount point",
           metavar="PATH"),
    Option("sysfs", "--path.sysfs", "HOMELAB_PATH_SYSFS", "/sys", "sysfs mount point",
           metavar="PATH"),
    Option("rootfs", "--path.rootfs", "HOMELAB_PATH_ROOTFS", "/",
           "root of the host filesystem (e.g. /host in a container)", metavar="PATH"),
)  # fmt: skip
# Agent-wide options first, then each collector's, in COLLECTORS order.
OPTIONS: tuple[Option, ...] = AGENT_OPTIONS + collector_options()
LOG_LEVELS = ("debug", "info", "warning", "error")


def collector_env(name: str) -> str:
    """Environment variable that enables (true) or disables (false) collector ``name``."""
    return "HOMELAB_COLLECTOR_" + name.upper()


class Settings(NamedTuple):
    """The agent's validated settings (``repr`` leaves out the key and the password)."""

    control_url: str | None
    api_key: str | None
    server_id: str | None
    state_dir: str
    listen_address: str
    listen_port: int
    interval: float
    backoff_cap: float
    control_ca_file: str | None
    tls_cert: str | None
    tls_key: str | None
    basic_auth_user: str | None
    basic_auth_password: str | None
    commit_file: str | None
    log_level: str
    collectors: tuple[str, ...]
    collector_options: CollectorOptions

    def __repr__(self) -> str:
        secret = ("api_key", "basic_auth_password")
        shown = (f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
                 if name not in secret)  # fmt: skip
        return f"Settings({', '.join(shown)})"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like SettingsError
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the argparse parser; --help lists every flag with its env var and default."""
    parser = _Parser(
        prog="homelab-agent",
        description="node_exporter-compatible /metrics plus heartbeats to homelabcmd control.",
        epilog="Every flag can also be set with the environment variable shown next to it; "
        "a flag wins over its variable.",
    )
    add_options(parser, OPTIONS)
    group = parser.add_argument_group("collectors")
    for spec in COLLECTORS:
        group.add_argument(
            f"--collector.{spec.name}",
            dest=f"collector_{spec.name}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"{spec.help} [env {collector_env(spec.name)}; default "
            f"{'enabled' if spec.enabled_by_default else 'disabled'}]",
        )
    # BooleanOptionalAction spells the negation --no-collector.NAME, as node_exporter does.
    return parser


def _read_secret(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError as exc:
        raise SettingsError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if not value:
        raise SettingsError(f"{what} file {path} is empty")
    return value


def _bool(text: str, env: str) -> bool:
    if text.strip().lower() in TRUE:
        return True
    if text.strip().lower() in FALSE:
        return False
    raise SettingsError(f"{env}={text!r}: expected true or false")


def _collectors(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, ...]:
    enabled = []
    for spec in COLLECTORS:
        flag = getattr(args, f"collector_{spec.name}")
        if flag is None and env.get(collector_env(spec.name), "") != "":
            flag = _bool(env[collector_env(spec.name)], collector_env(spec.name))
        if spec.enabled_by_default if flag is None else flag:
            enabled.append(spec.name)
    return tuple(enabled)


def _check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"--control-url={url!r}: expected http(s)://host[:port][/path]")
    return url.rstrip("/")


def load_settings(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Parse ``argv`` and ``env`` into Settings; raises SettingsError on a bad setting."""
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    v = resolve_options(args, env, OPTIONS)
    control_url = _check_url(v["control_url"]) if v["control_url"] else None
    if v["api_key"] and v["api_key_file"]:
        raise SettingsError("give the API key once: --api-key/HOMELAB_API_KEY or --api-key-file")
    api_key = v["api_key"] or (
        _read_secret(v["api_key_file"], "API key") if v["api_key_file"] else None
    )
    if control_url and not api_key:
        raise SettingsError("--control-url needs --api-key (or HOMELAB_API_KEY / --api-key-file)")
    if api_key and not control_url:
        raise SettingsError("--api-key given without --control-url (HOMELAB_CONTROL_URL)")
    if v["server_id"] is not None and not SERVER_ID.fullmatch(v["server_id"]):
        raise SettingsError(
            f"--server-id={v['server_id']!r}: use 1-100 characters from a-z, 0-9 and '-'"
        )
    if bool(v["tls_cert"]) != bool(v["tls_key"]):
        raise SettingsError("--tls-cert and --tls-key go together")
    password = env.get("HOMELAB_BASIC_AUTH_PASSWORD") or None
    if v["basic_auth_password_file"]:
        password = _read_secret(v["basic_auth_password_file"], "basic auth password")
    if bool(v["basic_auth_user"]) != bool(password):
        raise SettingsError(
            "--basic-auth-user needs a password (HOMELAB_BASIC_AUTH_PASSWORD or "
            "--basic-auth-password-file), and a password needs --basic-auth-user"
        )
    if v["log_level"] not in LOG_LEVELS:
        raise SettingsError(f"--log-level={v['log_level']!r}: expected one of {LOG_LEVELS}")
    return Settings(
        control_url=control_url,
        api_key=api_key,
        server_id=v["server_id"],
        state_dir=v["state_dir"] or default_state_dir(env),
        listen_address=v["listen_address"],
        listen_port=v["listen_port"],
        interval=v["interval"],
        backoff_cap=v["backoff_cap"],
        control_ca_file=v["control_ca_file"],
        tls_cert=v["tls_cert"],
        tls_key=v["tls_key"],
        basic_auth_user=v["basic_auth_user"],
        basic_auth_password=password,
        commit_file=v["commit_file"],
        log_level=v["log_level"],
        collectors=_collectors(args, env),
        collector_options=CollectorOptions(
            procfs=v["procfs"],
            sysfs=v["sysfs"],
            rootfs=v["rootfs"],
            values={option.dest: v[option.dest] for option in collector_options()},
        ),
    )
