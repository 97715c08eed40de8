"""Control's settings: read once from `HOMELAB_*` environment variables and an optional TOML file.

Everything else receives a `Settings` object; nothing deeper reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control.errors import ConfigError

ENV_PREFIX = "HOMELAB_"


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
    scheduler_lease_seconds: int = 0  # 0 → derived from the check interval
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved_database_url(self) -> str:
        """The database URL to connect to; defaults to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(Path(self.data_dir) / 'homelab.db').resolve()}"

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
}


def _coerce(name: str, raw: Any, default: Any) -> Any:
    """Convert one raw setting (env string or TOML value) to the type of its default."""
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
    return settings
