"""Alert rules: valid for the real promtool, unit-tested, and complete for control's needs."""

from __future__ import annotations

from collections import defaultdict

import pytest
import yaml

from control.fleet.health import Thresholds
from tests.prometheus.files import (
    RULE_TESTS_DIR,
    alert_rules,
    load_yaml,
    rule_files,
    rule_test_files,
    run,
)

REQUIRED_ALERTS = {
    "HostDown",
    "HeartbeatStale",
    "DiskWillFillIn24h",
    "FilesystemAlmostFull",
    "HighCpuSustained",
    "HighMemorySustained",
    "HighTemperature",
    "SystemdServiceFailed",
    "AgentCollectorFailing",
    "ControlSchedulerNotRunning",
    # Device health (seed 002); a failed watched service is SystemdServiceFailed.
    "ContainerFailed",
    "RebootRequired",
    "VersionDrift",
    "ServerHealthFailed",
}
SEVERITIES = {"critical", "warning", "info"}


def _alert_ids() -> list[str]:
    return [
        f"{path.stem}:{rule['alert']}:{rule['labels'].get('severity')}"
        for path, rule in alert_rules()
    ]


def test_promtool_check_rules_accepts_every_rule_file(promtool):
    result = run([promtool, "check", "rules", *map(str, rule_files())])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(rule_files())


def test_promtool_rule_unit_tests_pass(promtool):
    result = run([promtool, "test", "rules", *map(str, rule_test_files())])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(rule_test_files())


def test_promtool_rule_unit_tests_catch_a_wrong_expectation(promtool, tmp_path):
    """The harness can fail: a test expecting HostDown too early is reported as failed."""
    suite = load_yaml(RULE_TESTS_DIR / "hosts_test.yml")
    suite["rule_files"] = [str(RULE_TESTS_DIR / f) for f in suite["rule_files"]]
    case = next(t for t in suite["tests"] if t["name"].startswith("HostDown"))
    firing = next(c for c in case["alert_rule_test"] if c["exp_alerts"])
    case["alert_rule_test"] = [dict(firing, eval_time="4m")]  # still pending at 4 minutes
    suite["tests"] = [case]
    broken = tmp_path / "broken_test.yml"
    broken.write_text(yaml.safe_dump(suite))
    result = run([promtool, "test", "rules", str(broken)])
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_required_alert_is_defined():
    assert {rule["alert"] for _, rule in alert_rules()} >= REQUIRED_ALERTS


@pytest.mark.parametrize(("path", "rule"), list(alert_rules()), ids=_alert_ids())
def test_alert_has_severity_summary_and_description(path, rule):
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    assert annotations.get("summary", "").strip()
    assert annotations.get("description", "").strip()


@pytest.mark.parametrize(("path", "rule"), list(alert_rules()), ids=_alert_ids())
def test_host_alerts_are_scoped_to_the_agent_or_control_job(path, rule):
    """A stray job (federation, another exporter) must not trigger homelab remediation."""
    assert 'job="homelab-agents"' in rule["expr"] or 'job="homelab-control"' in rule["expr"]


def _expectations() -> dict[str, dict[str, list]]:
    """alertname → {"fires": [case, ...], "quiet": [case, ...]} over every rule test file."""
    seen: dict[str, dict[str, list]] = defaultdict(lambda: {"fires": [], "quiet": []})
    for path in rule_test_files():
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "fires" if case.get("exp_alerts") else "quiet"
                seen[case["alertname"]][kind].append((path.name, test["name"], case))
    return seen


@pytest.mark.parametrize("alertname", sorted({r["alert"] for _, r in alert_rules()}))
def test_every_alert_is_unit_tested_firing_and_quiet(alertname):
    expectations = _expectations()[alertname]
    assert expectations["fires"], f"no promtool test expects {alertname} to fire"
    assert expectations["quiet"], f"no promtool test expects {alertname} to stay quiet"


def test_every_rule_file_is_loaded_by_a_unit_test():
    loaded = set()
    for path in rule_test_files():
        for name in load_yaml(path)["rule_files"]:
            loaded.add((path.parent / name).resolve())
    assert {p.resolve() for p in rule_files()} <= loaded


@pytest.mark.parametrize("alertname", ["SystemdServiceFailed", "ContainerFailed"])
def test_unit_and_container_alerts_keep_the_labels_remediation_needs(alertname):
    """A remediation rule maps SystemdServiceFailed to restart_service(name) and may map
    ContainerFailed to restart_container(name), on the alert's server_id."""
    (_, _, case), *_ = _expectations()[alertname]["fires"]
    for alert in case["exp_alerts"]:
        assert {"name", "server_id"} <= alert["exp_labels"].keys()


def test_high_temperature_warns_at_75_and_is_critical_at_85_as_control_judges():
    """The rule's thresholds are control's health defaults (degraded / failed)."""
    rules = {
        r["labels"]["severity"]: r for _, r in alert_rules() if r["alert"] == "HighTemperature"
    }
    assert rules.keys() == {"warning", "critical"}
    assert rules["warning"]["expr"].endswith(f">= {Thresholds().temperature_degraded:g}")
    assert rules["critical"]["expr"].endswith(f">= {Thresholds().temperature_failed:g}")
    for rule in rules.values():
        assert (
            "node_hwmon_temp_celsius" in rule["expr"] and "node_thermal_zone_temp" in rule["expr"]
        )
