"""Remediation rules in the commands file: parsed and checked against the whitelist at start-up."""

from __future__ import annotations

import pytest

from control.errors import ConfigError
from control.remediation.rules import RuleNotApplicable, load_rules
from control.remediation.whitelist import load_whitelist
from tests.control.test_cli import control

RULE = """
[remediation.restart_failed_unit]
alertname = "SystemdServiceFailed"
action_type = "restart_service"
parameters = { service_name = "{labels.name}" }
"""


def rules_from(tmp_path, text):
    path = tmp_path / "commands.toml"
    path.write_text(text)
    return load_rules(load_whitelist(path), str(path))


def test_no_commands_file_means_no_rules():
    assert len(load_rules(load_whitelist(None))) == 0


def test_rule_matches_by_alertname_and_labels_and_renders_parameters(tmp_path):
    rules = rules_from(
        tmp_path,
        RULE
        + """
[remediation.rotate]
alertname = "LogTooBig"
action_type = "rotate_app_log"
parameters = { app = "app-{labels.app}" }
match = { severity = "critical", env = "prod" }

[commands.rotate_app_log]
argv = ["logrotate", "--force", "/etc/logrotate.d/{app}"]
[commands.rotate_app_log.params]
app = "^[a-z][a-z0-9-]{0,31}$"
""",
    )
    assert [r.name for r in rules.rules] == ["restart_failed_unit", "rotate"]
    unit = rules.find("SystemdServiceFailed", {"name": "nginx.service"})
    assert unit.render({"name": "nginx.service"}) == {"service_name": "nginx.service"}
    labels = {"app": "shop", "severity": "critical", "env": "prod"}
    assert rules.find("LogTooBig", labels).render(labels) == {"app": "app-shop"}
    assert rules.find("LogTooBig", {**labels, "env": "dev"}) is None
    assert rules.find("Other", labels) is None
    with pytest.raises(RuleNotApplicable, match="no label 'name'"):
        unit.render({})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[remediation]\nx = 1\n", "[remediation.x] must be a table"),
        ("remediation = 3\n", "[remediation] must be a table"),
        (RULE.replace("restart_failed_unit", "Bad-Name"), "rule name must match"),
        (
            RULE.replace('action_type = "restart_service"', 'action_type = "rm_rf"'),
            "action_type 'rm_rf' is not in the whitelist",
        ),
        (RULE.replace('alertname = "SystemdServiceFailed"\n', ""), "alertname must be"),
        (RULE.replace("service_name =", "unit ="), "service_name is required by restart_service"),
        (
            RULE.replace('name}" }', 'name}", extra = "x" }'),
            "restart_service has no parameter extra",
        ),
        (RULE.replace("{labels.name}", "{name}"), "stray '{'"),
        (RULE.replace("{labels.name}", "{labels.}"), "stray '{'"),
        (RULE.replace("{labels.name}", "a b"), "Does not match"),
        (RULE + 'match = { "bad-label" = "x" }\n', "match must be a table"),
        (RULE + "match = { severity = 3 }\n", "match must be a table"),
        (RULE + "retry = true\n", "unknown key 'retry'"),
    ],
)
def test_invalid_rules_are_config_errors_naming_the_rule(tmp_path, text, expected):
    with pytest.raises(ConfigError) as raised:
        rules_from(tmp_path, text)
    message = str(raised.value)
    assert message.startswith(f"commands file {tmp_path / 'commands.toml'}: ")
    assert expected in message
    assert "\n" not in message


def test_control_refuses_to_start_with_an_invalid_rule(tmp_path):
    commands = tmp_path / "commands.toml"
    commands.write_text(RULE.replace("restart_service", "reboot_everything"))
    result = control(tmp_path, "serve", "--port", "1", commands_file=str(commands))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "[remediation.restart_failed_unit]" in lines[0]
    assert "'reboot_everything' is not in the whitelist" in lines[0]


def test_the_shipped_compose_commands_file_loads():
    """deploy/commands.toml (mounted by docker-compose.yml) is a valid whitelist with rules."""
    from pathlib import Path

    from control.remediation.rules import load_rules
    from control.remediation.whitelist import load_whitelist

    path = Path(__file__).resolve().parents[2] / "deploy" / "commands.toml"
    whitelist = load_whitelist(path)
    rules = load_rules(whitelist, str(path))
    assert "restart_service" in whitelist
    assert [rule.name for rule in rules.rules] == ["restart_failed_unit"]
