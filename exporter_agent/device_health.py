"""The device-health part of each heartbeat: temperature, containers, services, packages, commit.

Every field has one source, read again for each heartbeat. A source that is absent gives no
field (never a zero or a guess); one that fails (``SOURCE_ERRORS``) drops only its own fields
from that heartbeat, logged once when it starts failing and once when it recovers, like the
collectors. The sources are the enabled collectors (``from_collectors``), so a collector turned
off with ``--no-collector.NAME`` leaves its field out of the heartbeat too.
"""

import functools
import logging
import subprocess
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, cast

from exporter_agent.collectors.containers import count_states
from exporter_agent.commit import read_commit

log = logging.getLogger(__name__)

SOURCE_ERRORS = (OSError, ValueError, subprocess.SubprocessError)
MIN_CELSIUS, MAX_CELSIUS = -50.0, 200.0
MAX_COUNT = 100_000
# The collectors whose readings make up the heartbeat's temperature.
TEMPERATURE_COLLECTORS = ("hwmon", "thermal_zone")

Containers = list[dict[str, Any]]


class _Thermometer(Protocol):
    def temperatures(self) -> list[float]: ...


class _ContainerEngine(Protocol):
    def snapshot(self) -> Containers | None: ...


class _Services(Protocol):
    def services(self) -> list[dict[str, str]] | None: ...


class _Packages(Protocol):
    def report(self) -> dict[str, Any] | None: ...


def hottest(readings: Iterable[float]) -> float | None:
    """The highest plausible reading in °C, rounded to 0.1; None when there is none.

    A reading outside MIN_CELSIUS..MAX_CELSIUS (a disconnected sensor's -273 or 255, a NaN) is
    dropped, not clamped: it says nothing about how hot the box is.
    """
    plausible = [value for value in readings if MIN_CELSIUS <= value <= MAX_CELSIUS]
    return round(max(plausible), 1) if plausible else None


class DeviceHealth:
    """Reads the device-health fields of one heartbeat from the sources it was given."""

    def __init__(
        self,
        *,
        thermometers: Mapping[str, Callable[[], list[float]]] | None = None,
        containers: Callable[[], Containers | None] | None = None,
        services: Callable[[], list[dict[str, str]] | None] | None = None,
        packages: Callable[[], dict[str, Any] | None] | None = None,
        commit: Callable[[], str] | None = None,
        logger: logging.Logger = log,
    ) -> None:
        self._thermometers = dict(thermometers or {})
        self._containers = containers
        self._services = services
        self._packages = packages
        self._commit = commit
        self._log = logger
        # The last error logged per source, so each failure is logged once per change.
        self._failing: dict[str, str] = {}

    @classmethod
    def from_collectors(
        cls, collectors: Mapping[str, object], commit_file: str | None = None
    ) -> "DeviceHealth":
        """Sources from the enabled collectors (``build_collectors``) and ``--commit-file``."""
        engine = collectors.get("containers")
        systemd = collectors.get("systemd")
        packages = collectors.get("packages")
        return cls(
            thermometers={
                name: cast(_Thermometer, collectors[name]).temperatures
                for name in TEMPERATURE_COLLECTORS
                if name in collectors
            },
            containers=cast(_ContainerEngine, engine).snapshot if engine else None,
            services=cast(_Services, systemd).services if systemd else None,
            packages=cast(_Packages, packages).report if packages else None,
            commit=functools.partial(read_commit, commit_file) if commit_file else None,
        )

    def read(self) -> dict[str, Any]:
        """This heartbeat's fields by wire name; a field without a working source is left out.

        ``temperature``, ``containers_running`` and ``containers_failed`` belong in the
        heartbeat's ``metrics``; ``containers``, ``services``, ``packages`` and ``commit_hash``
        beside it (``heartbeat.build_payload`` places them).
        """
        fields: dict[str, Any] = {}
        readings: list[float] = []
        for name, temperatures in self._thermometers.items():
            readings += self._call(f"temperature ({name})", temperatures) or []
        temperature = hottest(readings)
        if temperature is not None:
            fields["temperature"] = temperature
        if self._containers is not None:
            containers = self._call("containers", self._containers)
            if containers is not None:
                running, failed = count_states(containers)
                fields["containers_running"] = min(running, MAX_COUNT)
                fields["containers_failed"] = min(failed, MAX_COUNT)
                fields["containers"] = containers
        if self._services is not None:
            services = self._call("services", self._services)
            if services is not None:
                fields["services"] = services
        if self._packages is not None:
            packages = self._call("packages", self._packages)
            if packages is not None:
                fields["packages"] = dict(packages)
        if self._commit is not None:
            commit = self._call("commit_hash", self._commit)
            if commit is not None:
                fields["commit_hash"] = commit
        return fields

    def _call(self, source: str, read: Callable[[], Any]) -> Any:
        """``read()``, or None when it fails; logs a failure once per change of its error."""
        try:
            value = read()
        except SOURCE_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"
            if self._failing.get(source) != error:
                self._log.warning("%s left out of heartbeats: %s", source, error)
                self._failing[source] = error
            return None
        if self._failing.pop(source, None) is not None:
            self._log.info("%s is back in heartbeats", source)
        return value
