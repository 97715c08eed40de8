"""Control's settings: read once from `HOMELAB_*` environment variables and an optional TOML file.

Everything else receives a `Settings` object; nothing deeper reads `os.environ`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control.errors import ConfigError

ENV_PREFIX = "HOMELAB_"
# The file in the data dir holding the generated console key when HOMELAB_SECRET_KEY is unset.
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
MIN_SECRET_KEY = 32


SEVERITIES = ("info", "warning", "error")  # mildest first, as control.models.EventSeverity
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"  # `homelab-control serve`'s default address
_PUBLIC_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


@dataclass(frozen=True)
class NotifyRoute:
    """One `[[notify_routes]]` table: which events go to which Apprise URLs.

    Empty `types` or `tags` match everything; `min_severity` None means
    `HOMELAB_NOTIFY_MIN_SEVERITY`. The type `approval` stands for an action waiting for
    approval, which is sent whatever the severity.
    """

    urls: tuple[str, ...]
    min_severity: str | None = None
    types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    """Every setting control understands, with its default."""

    data_dir: Path = Path(".homelab")
    database_url: str = ""  # empty → SQLite file `homelab.db` in data_dir
    operator_key: str = ""
    agent_key: str = ""
    viewer_key: str = ""
    alerts_key: str = ""  # Alertmanager's bootstrap key (scope alerts: the webhook only)
    offline_after: int = 180
    offline_check_interval: int = 30
    metrics_retention_days: int = 30
    commands_file: str = ""
    ssh_user: str = "root"
    ssh_key_file: str = ""
    ssh_known_hosts: str = ""
    command_timeout: int = 30
    ssh_connect_timeout: int = 10
    ssh_idle: int = 300  # seconds before an unused SSH connection is closed
    dispatch_workers: int = 4
    rate_limit: int = 10
    enrollment: bool = True  # unbound agent keys may enroll servers (see control/fleet/enrollment)
    enroll_rate: int = 60  # servers one unbound key may enroll per hour
    # Device health (control.fleet.health): degraded / failed thresholds, and how long after a
    # version change its post-update health check runs.
    health_temperature_degraded: float = 75.0  # °C
    health_temperature_failed: float = 85.0
    health_disk_degraded: float = 90.0  # percent used
    health_disk_failed: float = 98.0
    health_memory_degraded: float = 95.0
    update_check_after: int = 300  # seconds
    electricity_price: float = 0.30
    currency: str = "EUR"
    max_content_length: int = 1024 * 1024
    log_format: str = "text"
    log_level: str = "INFO"
    run_scheduler: bool = True
    # The operator console (control.console): the key signing its session cookies (empty →
    # generated once into `<data_dir>/secret_key`, mode 600), whether the cookie is Secure even
    # over plain HTTP (it always is under HTTPS), how long a sign-in lasts, and how many failed
    # sign-ins one client address may make per minute.
    secret_key: str = ""
    cookie_secure: bool = False
    session_hours: int = 12
    login_rate: int = 10
    scheduler_lease_seconds: int = 0  # 0 → derived from the check interval
    # Notifications (control.notify): Apprise URLs (comma-separated, or a list in the TOML), the
    # least severity sent, how long one incident stays quiet after a message, and the routes of
    # the TOML's [[notify_routes]] tables. `public_url` is where the console's links point
    # (empty → `serve`'s listen address, else http://127.0.0.1:8000).
    notify_urls: str = field(default="", repr=False)  # credentials: never in a repr
    notify_min_severity: str = "warning"
    notify_cooldown: int = 600  # seconds; 0 sends every change
    notify_routes: tuple[NotifyRoute, ...] = field(default=(), repr=False)
    public_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved_database_url(self) -> str:
        """The database URL to connect to; defaults to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(Path(self.data_dir) / 'homelab.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        """The console's base URL for links in notifications, without a trailing slash."""
        return (self.public_url or DEFAULT_PUBLIC_URL).rstrip("/")

    @property
    def lease_seconds(self) -> int:
        """How long a scheduler holds leadership without renewing it."""
        return self.scheduler_lease_seconds or max(3 * self.offline_check_interval, 15)


_POSITIVE = {
    "offline_after",
    "offline_check_interval",
    "metrics_retention_days",
    "command_timeout",
    "ssh_connect_timeout",
    "ssh_idle",
    "enroll_rate",
    "dispatch_workers",
    "rate_limit",
    "max_content_length",
    "update_check_after",
    "session_hours",
    "login_rate",
}


def _notify_routes(raw: Any) -> tuple[NotifyRoute, ...]:
    """The `[[notify_routes]]` tables of the TOML file, checked; ConfigError when malformed."""
    if not isinstance(raw, list):
        raise ConfigError(
            "HOMELAB_NOTIFY_ROUTES: routes are [[notify_routes]] tables in the HOMELAB_CONFIG file"
        )
    routes = []
    for number, table in enumerate(raw, 1):
        where = f"notify_routes #{number}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown = set(table) - {"urls", "min_severity", "types", "tags"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        lists = {}
        for key in ("urls", "types", "tags"):
            value = table.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{where}: {key} must be a list of strings")
            lists[key] = tuple(value)
        if not lists["urls"]:
            raise ConfigError(f"{where}: needs at least one URL in urls")
        severity = table.get("min_severity")
        if severity is not None and severity not in SEVERITIES:
            raise ConfigError(f"{where}: min_severity must be one of {', '.join(SEVERITIES)}")
        routes.append(NotifyRoute(min_severity=severity, **lists))
    return tuple(routes)


def _coerce(name: str, raw: Any, default: Any) -> Any:
    """Convert one raw setting (env string or TOML value) to the type of its default."""
    if name == "notify_routes":
        return _notify_routes(raw)
    if name == "notify_urls" and isinstance(raw, list):  # the TOML may list them
        return ",".join(str(url) for url in raw)
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            value = int(raw)
            if name in _POSITIVE and value <= 0:
                raise ValueError(raw)
            return value
        if isinstance(default, float):
            number = float(raw)
            if not 0 <= number < 1e6:
                raise ValueError(raw)
            return number
        if isinstance(default, Path):
            return Path(raw)
        return str(raw)
    except (TypeError, ValueError):
        env = ENV_PREFIX + name.upper()
        raise ConfigError(
            f"{env}: invalid value {raw!r} (expected {type(default).__name__})"
        ) from None


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from defaults, then `HOMELAB_CONFIG` TOML, then env vars, then overrides."""
    environ = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, Any] = {}
    config_path = environ.get(ENV_PREFIX + "CONFIG")
    if config_path:
        try:
            with open(config_path, "rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"HOMELAB_CONFIG: cannot read {config_path}: {exc}") from None
        values.update({key.lower(): value for key, value in document.items()})
    for f in dataclasses.fields(Settings):
        env_value = environ.get(ENV_PREFIX + f.name.upper())
        if env_value is not None and f.name != "extra":
            values[f.name] = env_value
    values.update(overrides)
    known = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    typed = {name: _coerce(name, raw, getattr(defaults, name)) for name, raw in values.items()}
    settings = Settings(**typed)
    if settings.log_format not in {"text", "json"}:
        raise ConfigError("HOMELAB_LOG_FORMAT: must be 'text' or 'json'")
    if settings.notify_min_severity not in SEVERITIES:
        raise ConfigError(f"HOMELAB_NOTIFY_MIN_SEVERITY: must be one of {', '.join(SEVERITIES)}")
    if settings.notify_cooldown < 0:
        raise ConfigError("HOMELAB_NOTIFY_COOLDOWN: must be 0 or more seconds")
    if settings.public_url and not _PUBLIC_URL.fullmatch(settings.public_url):
        raise ConfigError("HOMELAB_PUBLIC_URL: must be an http:// or https:// URL")
    _check_health_thresholds(settings)
    if settings.secret_key and len(settings.secret_key) < MIN_SECRET_KEY:
        raise ConfigError(
            f"HOMELAB_SECRET_KEY: at least {MIN_SECRET_KEY} characters "
            "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return settings


def _check_health_thresholds(settings: Settings) -> None:
    """ConfigError for thresholds that cannot be meant: a failed level below its degraded one,
    or a percentage above 100."""
    for name in ("temperature", "disk"):
        degraded = getattr(settings, f"health_{name}_degraded")
        failed = getattr(settings, f"health_{name}_failed")
        if degraded > failed:
            raise ConfigError(
                f"HOMELAB_HEALTH_{name.upper()}_DEGRADED ({degraded:g}) is above "
                f"HOMELAB_HEALTH_{name.upper()}_FAILED ({failed:g})"
            )
    for name in ("disk_degraded", "disk_failed", "memory_degraded"):
        if getattr(settings, f"health_{name}") > 100:
            raise ConfigError(f"HOMELAB_HEALTH_{name.upper()}: a percentage, at most 100")


def console_secret_key(settings: Settings) -> str:
    """The key that signs the console's session cookies.

    `HOMELAB_SECRET_KEY` when set; otherwise a random key generated once into
    `<data_dir>/secret_key` (mode 600) and read from there on every later start, so sessions
    survive restarts and every worker on the host signs alike. The file is written whole under
    a temporary name, then linked into place: a worker starting at the same time either wins
    the link or reads the winner's complete key, never half of one.
    """
    if settings.secret_key:
        return settings.secret_key
    data_dir = Path(settings.data_dir)
    path = data_dir / SECRET_KEY_FILE
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            _create_secret_file(path)
        # O_NOFOLLOW: a symlink planted in the data dir must not choose the key file.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as handle:
            os.fchmod(fd, 0o600)  # whatever a copy or a restore made of it: the key is private
            key = handle.read().strip()
    except OSError as exc:
        raise ConfigError(
            f"HOMELAB_SECRET_KEY is not set and {path} cannot be created or read "
            f"({exc.strerror}); set HOMELAB_SECRET_KEY or make HOMELAB_DATA_DIR writable"
        ) from None
    if len(key) < MIN_SECRET_KEY:
        raise ConfigError(f"{path}: holds no usable key (remove it to generate a new one)")
    return key


def _create_secret_file(path: Path) -> None:
    """Write a new random key to `path` unless another process got there first."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # FileExistsError: another worker's key won; everyone reads that one.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
