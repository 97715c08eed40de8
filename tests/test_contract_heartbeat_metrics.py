"""Contract: the heartbeat `metrics` field names the agent sends are the ones control stores.

The agent (`exporter_agent`) and control (`control`) never import each other, so nothing else
ties the names together; control's heartbeat schema even drops unknown keys silently (a newer
agent may send more). Both sides are checked against pinned lists here, so renaming a field
on either side alone fails this test; rename it on both sides and here together.

Two lists: seed 001's metrics, always sent (null when their source fails), and seed 002's
device-health metrics, sent only when the box has their source (a sensor, a container engine).
"""

from __future__ import annotations

import ast
from collections import namedtuple
from pathlib import Path

import pytest

from control.api.agents import HeartbeatSchema, MetricsSchema
from control.models import METRIC_FIELDS
from exporter_agent.device_health import DeviceHealth
from exporter_agent.heartbeat import DEVICE_METRICS, build_payload
from exporter_agent.heartbeat_metrics import Summary, os_info
from tests.helpers import HEARTBEAT_METRIC_FIELDS

DEVICE_METRIC_FIELDS = ("temperature", "containers_running", "containers_failed")
ALL_METRIC_FIELDS = HEARTBEAT_METRIC_FIELDS + DEVICE_METRIC_FIELDS

REPO = Path(__file__).resolve().parents[1]


MemoryInfo = namedtuple("MemoryInfo", "total available")
DiskUsage = namedtuple("DiskUsage", "total used free percent")
NicCounters = namedtuple("NicCounters", "bytes_sent bytes_recv")
BOOT_TIME = 1_762_000_000.0
NOW = 1_763_000_000.25


class RecordedPsutil:
    """psutil answers shaped like a small Debian box's, so every metric has a source."""

    class Error(Exception):
        pass

    @staticmethod
    def cpu_percent(interval=None):
        return 12.5

    @staticmethod
    def virtual_memory():
        return MemoryInfo(total=8_242_745_344, available=5_123_457_024)

    @staticmethod
    def disk_usage(path):
        return DiskUsage(
            total=250_059_350_016, used=61_440_000_000, free=175_819_350_016, percent=26.0
        )

    @staticmethod
    def net_io_counters(pernic=False):
        return {
            "lo": NicCounters(bytes_sent=9_000, bytes_recv=9_000),
            "eth0": NicCounters(bytes_sent=1_234_567, bytes_recv=7_654_321),
        }

    @staticmethod
    def getloadavg():
        return (0.42, 0.35, 0.3)

    @staticmethod
    def boot_time():
        return BOOT_TIME


@pytest.fixture
def agent_metrics():
    """What the agent's heartbeat builder emits for the recorded box."""
    return Summary(RecordedPsutil(), clock=lambda: NOW).metrics()


@pytest.fixture
def device_health():
    """Every device-health source of a Pi running containers, as the agent reads them."""
    return DeviceHealth(
        thermometers={"thermal_zone": lambda: [61.234]},
        containers=lambda: [
            {"name": "web", "image": "nginx:1.27", "state": "running", "health": "healthy",
             "exit_code": 0, "restart_count": 0},
            {"name": "db", "image": "postgres:16", "state": "exited", "health": None,
             "exit_code": 1, "restart_count": None},
        ],
        services=lambda: [
            {"name": "nginx.service", "active_state": "active", "sub_state": "running"}
        ],
        packages=lambda: {"upgradable": 7, "security": 2, "reboot_required": True},
        commit=lambda: "1a2b3c4",
    )  # fmt: skip


def test_pinned_lists_have_no_duplicates():
    assert len(set(ALL_METRIC_FIELDS)) == len(ALL_METRIC_FIELDS)


def test_control_stores_exactly_the_pinned_fields():
    assert sorted(METRIC_FIELDS) == sorted(ALL_METRIC_FIELDS)
    assert len(METRIC_FIELDS) == len(set(METRIC_FIELDS))


def test_control_heartbeat_schema_accepts_exactly_the_pinned_fields():
    assert sorted(MetricsSchema().fields) == sorted(ALL_METRIC_FIELDS)


def test_the_agent_puts_exactly_the_pinned_device_metrics_into_metrics(device_health):
    assert sorted(DEVICE_METRICS) == sorted(DEVICE_METRIC_FIELDS)
    metrics = build_payload(
        server_id="pi-1", hostname="pi-1", now=NOW, os_info={}, metrics={},
        agent_version="1", metrics_port=9100, device=device_health.read(),
    )["metrics"]  # fmt: skip
    assert sorted(metrics) == sorted(DEVICE_METRIC_FIELDS)


def test_agent_emits_every_pinned_field_with_a_value(agent_metrics):
    assert sorted(agent_metrics) == sorted(HEARTBEAT_METRIC_FIELDS)
    missing = sorted(key for key, value in agent_metrics.items() if value is None)
    assert not missing, f"the agent sends these as null for a box that has them: {missing}"


def test_control_keeps_every_value_the_agent_sends(agent_metrics, device_health):
    """Nothing the agent sends is dropped as unknown by control's schema (it EXCLUDEs those),
    and control accepts all of it: every device-health field, in and beside ``metrics``."""
    payload = build_payload(
        server_id="pi-1",
        hostname="pi-1.lan",
        now=NOW,
        os_info=os_info(),
        metrics=agent_metrics,
        agent_version="1.2.3",
        metrics_port=9100,
        device=device_health.read(),
    )
    loaded = HeartbeatSchema().load(payload)
    assert sorted(loaded) == sorted(payload)
    assert sorted(loaded["metrics"]) == sorted(ALL_METRIC_FIELDS)
    assert loaded["metrics"]["temperature"] == 61.2


@pytest.mark.parametrize(
    ("package", "other"), [("exporter_agent", "control"), ("control", "exporter_agent")]
)
def test_the_packages_do_not_import_each_other(package, other):
    """The contract is this test, not a shared module: neither side imports the other."""
    offenders = []
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if any(name == other or name.startswith(other + ".") for name in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"{package} imports {other}: {offenders}"
