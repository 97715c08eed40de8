"""The device-health rules (control/fleet/health.py), table by table."""

from __future__ import annotations

import re

import pytest

from control.config import load_settings
from control.errors import ConfigError
from control.fleet.health import (
    Facts,
    Thresholds,
    change_severity,
    is_failed_container,
    judge,
)
from control.models import EventSeverity, ServerHealth

LIMITS = Thresholds()
ONLINE = "online"


def container(name="web", state="running", health=None, exit_code=None):
    return {"name": name, "image": "nginx:1.27", "state": state, "health": health,
            "exit_code": exit_code, "restart_count": 0}  # fmt: skip


def service(name="nginx.service", active_state="active", sub_state="running"):
    return {"name": name, "active_state": active_state, "sub_state": sub_state}


@pytest.mark.parametrize(
    ("facts", "health", "reasons"),
    [
        (Facts(ONLINE), ServerHealth.HEALTHY, ()),
        (Facts(ONLINE, temperature=74.9), ServerHealth.HEALTHY, ()),
        (Facts(ONLINE, temperature=75), ServerHealth.DEGRADED, ("temperature 75 °C ≥ 75",)),
        (Facts(ONLINE, temperature=81.25), ServerHealth.DEGRADED, ("temperature 81.2 °C ≥ 75",)),
        (Facts(ONLINE, temperature=85), ServerHealth.FAILED, ("temperature 85 °C ≥ 85",)),
        (Facts(ONLINE, disk_percent=89.9), ServerHealth.HEALTHY, ()),
        (Facts(ONLINE, disk_percent=93), ServerHealth.DEGRADED, ("disk / 93 % ≥ 90",)),
        (Facts(ONLINE, disk_percent=98), ServerHealth.FAILED, ("disk / 98 % ≥ 98",)),
        (Facts(ONLINE, memory_percent=94.9), ServerHealth.HEALTHY, ()),
        (Facts(ONLINE, memory_percent=95), ServerHealth.DEGRADED, ("memory 95 % ≥ 95",)),
        (Facts(ONLINE, memory_percent=100), ServerHealth.DEGRADED, ("memory 100 % ≥ 95",)),
        (
            Facts(ONLINE, containers=[container(state="exited", exit_code=1)]),
            ServerHealth.DEGRADED,
            ("container web exited (1)",),
        ),
        (
            Facts(ONLINE, containers=[container(state="exited", exit_code=0)]),
            ServerHealth.HEALTHY,
            (),
        ),
        (
            Facts(ONLINE, containers=[container(state="dead")]),
            ServerHealth.DEGRADED,
            ("container web dead",),
        ),
        (
            Facts(ONLINE, containers=[container(state="restarting")]),
            ServerHealth.DEGRADED,
            ("container web restarting",),
        ),
        (
            Facts(ONLINE, containers=[container(health="unhealthy")]),
            ServerHealth.DEGRADED,
            ("container web unhealthy",),
        ),
        (Facts(ONLINE, containers=[container(health="starting")]), ServerHealth.HEALTHY, ()),
        (Facts(ONLINE, containers=[container(state="paused")]), ServerHealth.HEALTHY, ()),
        (Facts(ONLINE, containers=[]), ServerHealth.HEALTHY, ()),
        (Facts(ONLINE, services=[service()]), ServerHealth.HEALTHY, ()),
        (
            Facts(ONLINE, services=[service(active_state="inactive", sub_state="dead")]),
            ServerHealth.DEGRADED,
            ("service nginx.service inactive",),
        ),
        (
            Facts(ONLINE, services=[service(active_state="activating", sub_state="start")]),
            ServerHealth.DEGRADED,
            ("service nginx.service activating",),
        ),
        (
            Facts(ONLINE, services=[service(active_state="failed", sub_state="failed")]),
            ServerHealth.FAILED,
            ("service nginx.service failed",),
        ),
        (
            Facts(ONLINE, commit_hash="1a2b3c4d5e", version_lock="1a2b3c4"),
            ServerHealth.HEALTHY,
            (),
        ),
        (
            Facts(ONLINE, commit_hash="1a2b3c4", version_lock="1a2b3c4d5e"),
            ServerHealth.HEALTHY,
            (),
        ),
        (
            Facts(ONLINE, commit_hash="1a2b3c4d", version_lock="9f8e7d6c"),
            ServerHealth.DEGRADED,
            ("commit 1a2b3c4 ≠ locked 9f8e7d6",),
        ),
        (
            Facts(ONLINE, commit_hash=None, version_lock="9f8e7d6c"),
            ServerHealth.DEGRADED,
            ("commit unknown ≠ locked 9f8e7d6",),
        ),
        (Facts(ONLINE, commit_hash="1a2b3c4", version_lock=None), ServerHealth.HEALTHY, ()),
    ],
)
def test_each_rule_gives_its_health_and_reason(facts, health, reasons):
    verdict = judge(facts, LIMITS)
    assert (verdict.health, verdict.reasons) == (health, reasons)


def test_the_worst_rule_wins_and_its_reasons_come_first():
    facts = Facts(
        ONLINE,
        temperature=80,
        disk_percent=99,
        containers=[container(state="dead")],
        services=[service(active_state="failed")],
    )
    verdict = judge(facts, LIMITS)
    assert verdict.health == ServerHealth.FAILED
    assert verdict.reasons == (
        "disk / 99 % ≥ 98",
        "service nginx.service failed",
        "temperature 80 °C ≥ 75",
        "container web dead",
    )


def test_configured_thresholds_replace_the_defaults():
    limits = Thresholds(temperature_degraded=60, temperature_failed=70, disk_degraded=50,
                        disk_failed=60, memory_degraded=50)  # fmt: skip
    assert judge(Facts(ONLINE, temperature=65), limits).health == ServerHealth.DEGRADED
    assert judge(Facts(ONLINE, temperature=70), limits).health == ServerHealth.FAILED
    assert judge(Facts(ONLINE, disk_percent=55), limits).reasons == ("disk / 55 % ≥ 50",)
    assert judge(Facts(ONLINE, memory_percent=50), limits).health == ServerHealth.DEGRADED


def test_offline_wins_over_every_fact_and_the_manual_state():
    facts = Facts("offline", temperature=99, manual_health="healthy", manual_by="ops")
    assert judge(facts, LIMITS).health == ServerHealth.OFFLINE


def test_a_server_never_heard_from_is_unknown():
    assert judge(Facts("unknown"), LIMITS).health == ServerHealth.UNKNOWN


def test_the_manual_state_holds_over_the_rules_and_says_who_and_why():
    facts = Facts(ONLINE, temperature=99, manual_health="degraded", manual_reason="fan swap",
                  manual_by="alice")  # fmt: skip
    verdict = judge(facts, LIMITS)
    assert verdict.health == ServerHealth.DEGRADED
    assert verdict.reasons == ("set manually by alice: fan swap",)


def test_a_manual_state_holds_before_the_first_heartbeat_too():
    assert judge(Facts("unknown", manual_health="failed"), LIMITS).health == ServerHealth.FAILED


@pytest.mark.parametrize(
    ("fields", "failed"),
    [
        ({"state": "running"}, False),
        ({"state": "running", "health": "healthy"}, False),
        ({"state": "running", "health": "unhealthy"}, True),
        ({"state": "exited", "exit_code": 0}, False),
        ({"state": "exited", "exit_code": 137}, True),
        ({"state": "exited", "exit_code": None}, False),  # unknown code: not judged failed
        ({"state": "dead"}, True),
        ({"state": "restarting"}, True),
        ({"state": "created"}, False),
        ({"state": "paused"}, False),
        ({"state": "removing"}, False),
    ],
)
def test_which_containers_count_as_failed(fields, failed):
    assert is_failed_container({"name": "c", **fields}) is failed


@pytest.mark.parametrize(
    ("to", "severity"),
    [
        (ServerHealth.HEALTHY, EventSeverity.INFO),
        (ServerHealth.UNKNOWN, EventSeverity.INFO),
        (ServerHealth.DEGRADED, EventSeverity.WARNING),
        (ServerHealth.FAILED, EventSeverity.ERROR),
        (ServerHealth.OFFLINE, EventSeverity.ERROR),
    ],
)
def test_a_change_of_health_has_the_severity_of_where_it_lands(to, severity):
    assert change_severity(to) == severity


def test_settings_thresholds_become_the_rules_thresholds():
    settings = load_settings({}, health_temperature_degraded="60", health_disk_failed="95")
    limits = Thresholds.from_settings(settings)
    assert (limits.temperature_degraded, limits.disk_failed) == (60.0, 95.0)
    assert limits.temperature_failed == LIMITS.temperature_failed  # untouched default


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"health_temperature_degraded": "90"}, "HOMELAB_HEALTH_TEMPERATURE_DEGRADED (90)"),
        ({"health_disk_degraded": "99"}, "HOMELAB_HEALTH_DISK_DEGRADED (99) is above"),
        ({"health_memory_degraded": "101"}, "HOMELAB_HEALTH_MEMORY_DEGRADED: a percentage"),
        ({"health_disk_failed": "120", "health_disk_degraded": "110"}, "a percentage"),
        ({"health_temperature_failed": "hot"}, "HOMELAB_HEALTH_TEMPERATURE_FAILED"),
    ],
)
def test_thresholds_that_cannot_be_meant_refuse_to_start(overrides, complaint):
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        load_settings({}, **overrides)


def test_a_box_with_hundreds_of_failures_gets_ten_reasons_saying_how_many_more():
    dead = [container(name=f"c{index:03d}", state="dead") for index in range(300)]
    verdict = judge(Facts(ONLINE, temperature=90, containers=dead), LIMITS)
    assert verdict.health == ServerHealth.FAILED
    assert len(verdict.reasons) == 10
    assert verdict.reasons[0] == "temperature 90 °C ≥ 85"  # the deciding reason stays first
    assert verdict.reasons[-1] == "…and 292 more"
