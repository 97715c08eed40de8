"""The device-health fields of a heartbeat: each from its source, absent without it, and a
failing source drops only its own field (logged once per change), never the others."""

from __future__ import annotations

import logging
import subprocess

import pytest

from exporter_agent.collectors import build_collectors
from exporter_agent.collectors.packages import PackagesCollector
from exporter_agent.collectors.systemd import SystemdCollector
from exporter_agent.device_health import DeviceHealth
from tests.agent.conftest import SNAPSHOT, snapshot_options

COMMIT = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
CONTAINERS = [
    {"name": "db", "image": "postgres:16", "state": "exited", "health": None, "exit_code": 1,
     "restart_count": 0},
    {"name": "web", "image": "nginx:1.27", "state": "running", "health": "healthy",
     "exit_code": 0, "restart_count": 2},
    {"name": "worker", "image": "app:3", "state": "running", "health": "unhealthy",
     "exit_code": None, "restart_count": None},
    {"name": "old", "image": "app:2", "state": "exited", "health": None, "exit_code": 0,
     "restart_count": None},
]  # fmt: skip
SERVICES = [
    {"name": "ssh.service", "active_state": "active", "sub_state": "running"},
    {"name": "homelab-agent.service", "active_state": "failed", "sub_state": "failed"},
    {"name": "backup.timer", "active_state": "inactive", "sub_state": "dead"},
]
PACKAGES = {"upgradable": 12, "security": 3, "reboot_required": True}
EVERYTHING = {
    "temperature": 45.0,
    "containers_running": 2,
    "containers_failed": 2,
    "containers": CONTAINERS,
    "services": SERVICES,
    "packages": PACKAGES,
    "commit_hash": COMMIT,
}
SOURCE_ERRORS = [
    OSError(111, "Connection refused"),
    ValueError("garbage"),
    subprocess.CalledProcessError(1, ["systemctl"]),
    subprocess.TimeoutExpired(["systemctl"], 5),
]
# Which fields each source gives.
FIELDS = {
    "thermometers": ("temperature",),
    "containers": ("containers_running", "containers_failed", "containers"),
    "services": ("services",),
    "packages": ("packages",),
    "commit": ("commit_hash",),
}


class Source:
    """A data source that answers ``value`` or raises ``error``; counts its calls."""

    def __init__(self, value=None, error: Exception | None = None) -> None:
        self.value, self.error, self.calls = value, error, 0

    def __call__(self):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.value


def sources(**overrides) -> dict:
    """Keyword arguments for DeviceHealth with every source answering, but ``overrides``."""
    kwargs = {
        "thermometers": {"hwmon": Source([43.0, 45.0]), "thermal_zone": Source([27.8])},
        "containers": Source(CONTAINERS),
        "services": Source(SERVICES),
        "packages": Source(PACKAGES),
        "commit": Source(COMMIT),
    }
    kwargs.update(overrides)
    return kwargs


def test_every_field_when_every_source_answers():
    assert DeviceHealth(**sources()).read() == EVERYTHING


def test_no_source_no_field():
    assert DeviceHealth().read() == {}


@pytest.mark.parametrize(
    ("source", "absent"),
    [
        ("thermometers", {"hwmon": Source([]), "thermal_zone": Source([])}),
        ("thermometers", {}),
        ("containers", Source(None)),  # no engine socket
        ("containers", None),  # collector disabled
        ("services", Source(None)),  # no units watched, or no systemd
        ("services", None),
        ("packages", Source(None)),  # no check has succeeded yet
        ("packages", None),
        ("commit", None),  # no --commit-file
    ],
)
def test_an_absent_source_leaves_out_only_its_fields(source, absent):
    fields = DeviceHealth(**sources(**{source: absent})).read()
    expected = {k: v for k, v in EVERYTHING.items() if k not in FIELDS[source]}
    assert fields == expected


def test_no_containers_is_an_empty_list_and_zero_counts():
    fields = DeviceHealth(containers=Source([])).read()
    assert fields == {"containers_running": 0, "containers_failed": 0, "containers": []}


@pytest.mark.parametrize("error", SOURCE_ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("source", ["containers", "services", "packages", "commit"])
def test_a_failing_source_drops_only_its_fields(source, error, caplog):
    fields = DeviceHealth(**sources(**{source: Source(error=error)})).read()
    expected = {k: v for k, v in EVERYTHING.items() if k not in FIELDS[source]}
    assert fields == expected
    assert f"{source if source != 'commit' else 'commit_hash'} left out of heartbeats" in (
        caplog.text
    )


def test_a_failing_thermometer_drops_only_its_readings():
    health = DeviceHealth(
        thermometers={"hwmon": Source(error=OSError(5, "EIO")), "thermal_zone": Source([27.8])}
    )
    assert health.read() == {"temperature": 27.8}
    health = DeviceHealth(
        thermometers={"hwmon": Source(error=OSError(5, "EIO")), "thermal_zone": Source([])}
    )
    assert health.read() == {}


def test_a_failure_is_logged_once_per_change_and_its_recovery_once(caplog):
    caplog.set_level(logging.INFO, logger="exporter_agent.device_health")
    services = Source(error=subprocess.TimeoutExpired(["systemctl"], 5))
    health = DeviceHealth(services=services)
    for _ in range(3):
        assert health.read() == {}
    services.error = subprocess.CalledProcessError(1, ["systemctl"])
    health.read()
    health.read()
    services.error = None
    services.value = SERVICES
    assert health.read() == {"services": SERVICES}
    assert health.read() == {"services": SERVICES}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "timed out" in messages[0] and "returned non-zero exit status 1" in messages[1]
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING", "INFO"]
    assert messages[2] == "services is back in heartbeats"


def test_sources_are_read_again_for_every_heartbeat(tmp_path):
    revision = tmp_path / "REVISION"
    revision.write_text(COMMIT + "\n")
    health = DeviceHealth.from_collectors({}, str(revision))
    assert health.read() == {"commit_hash": COMMIT}
    revision.write_text("9f8e7d6\n")  # a deploy
    assert health.read() == {"commit_hash": "9f8e7d6"}


def test_a_bad_commit_file_is_not_sent_and_warned_about_once(tmp_path, caplog):
    revision = tmp_path / "REVISION"
    revision.write_text("not a hash\n")
    health = DeviceHealth.from_collectors({}, str(revision))
    assert [health.read() for _ in range(3)] == [{}, {}, {}]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "commit_hash left out of heartbeats" in warnings[0].getMessage()
    assert "holds no commit hash" in warnings[0].getMessage()


class FakeEngine:
    """The containers collector's heartbeat face (``snapshot``), answering a fixed list."""

    def __init__(self, containers) -> None:
        self.containers = containers

    def snapshot(self):
        return self.containers

    def collect(self):
        return iter(())


class FakePackages:
    """The packages collector's heartbeat face (``report``)."""

    def report(self):
        return PACKAGES

    def collect(self):
        return iter(())


def snapshot_collectors(names, **options):
    return build_collectors(names, snapshot_options(**options))


def test_from_collectors_takes_each_field_from_its_enabled_collector(tmp_path):
    collectors = snapshot_collectors(["hwmon", "thermal_zone", "systemd", "cpu"])
    collectors["containers"] = FakeEngine(CONTAINERS)
    collectors["packages"] = FakePackages()
    revision = tmp_path / "REVISION"
    revision.write_text(COMMIT)
    fields = DeviceHealth.from_collectors(collectors, str(revision)).read()
    assert fields == EVERYTHING  # the snapshot's hottest sensor: x86_pkg_temp 45.0 °C


@pytest.mark.parametrize(
    ("disabled", "missing"),
    [
        (("hwmon",), ()),  # the thermal zones still give 45.0
        (("hwmon", "thermal_zone"), ("temperature",)),
        (("containers",), ("containers_running", "containers_failed", "containers")),
        (("systemd",), ("services",)),
        (("packages",), ("packages",)),
    ],
)
def test_a_disabled_collector_sends_no_field(disabled, missing):
    collectors = snapshot_collectors(
        [n for n in ("hwmon", "thermal_zone", "systemd") if n not in disabled]
    )
    if "containers" not in disabled:
        collectors["containers"] = FakeEngine(CONTAINERS)
    if "packages" not in disabled:
        collectors["packages"] = FakePackages()
    fields = DeviceHealth.from_collectors(collectors).read()
    assert set(fields) == set(EVERYTHING) - {"commit_hash", *missing}


def test_real_collectors_without_engine_socket_or_package_check_send_nothing(tmp_path):
    collectors = snapshot_collectors(
        ["containers", "packages"], container_sockets=(str(tmp_path / "docker.sock"),)
    )
    assert isinstance(collectors["packages"], PackagesCollector)  # never started: no result
    assert DeviceHealth.from_collectors(collectors).read() == {}


def systemctl_answering(text: str, calls: list):
    def run(args):
        calls.append(list(args))
        return text

    return run


def test_services_are_the_watched_units_with_one_systemctl_call():
    calls: list = []
    run = systemctl_answering((SNAPSHOT / "systemctl_show.txt").read_text(), calls)
    units = ("ssh.service", "homelab-agent.service", "backup.timer")
    collector = SystemdCollector(units, run, booted=lambda: True)
    assert DeviceHealth(services=collector.services).read() == {"services": SERVICES}
    assert calls == [
        [
            "show",
            "--property=Id,ActiveState,SubState,Type",
            "--",
            "ssh.service",
            "homelab-agent.service",
            "backup.timer",
        ]
    ]


def test_no_services_without_watched_units_or_without_systemd():
    calls: list = []
    run = systemctl_answering("", calls)
    assert SystemdCollector((), run, lambda: True).services() is None
    assert SystemdCollector(("ssh.service",), run, lambda: False).services() is None
    assert calls == []


def test_a_unit_outside_the_wire_contract_is_left_out():
    text = (
        "Id=ssh.service\nActiveState=active\nSubState=running\n\n"
        "Id=new.service\nActiveState=hibernating\nSubState=running\n\n"
        "Id=odd.service\nActiveState=active\nSubState=Running Fast\n\n"
        "Id=nginx.service\nActiveState=reloading\nSubState=reload\n"
    )
    units = ("ssh.service", "new.service", "odd.service", "nginx.service")
    collector = SystemdCollector(units, systemctl_answering(text, []), lambda: True)
    assert collector.services() == [
        {"name": "ssh.service", "active_state": "active", "sub_state": "running"},
        {"name": "nginx.service", "active_state": "reloading", "sub_state": "reload"},
    ]


def test_a_malformed_systemctl_answer_drops_services_not_the_heartbeat(caplog):
    collector = SystemdCollector(("ssh.service",), systemctl_answering("garbage", []), lambda: True)
    health = DeviceHealth(services=collector.services, commit=Source(COMMIT))
    assert health.read() == {"commit_hash": COMMIT}
    assert "services left out of heartbeats: ValueError" in caplog.text


def test_containers_counts_follow_the_failed_rule():
    fields = DeviceHealth(containers=Source(CONTAINERS)).read()
    # worker is running but unhealthy: it counts as running and as failed; db exited 1.
    assert (fields["containers_running"], fields["containers_failed"]) == (2, 2)
