"""Where the monitoring files live, and small readers for them."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_YML = REPO / "prometheus.yml"
RULES_DIR = REPO / "prometheus" / "rules"
RULE_TESTS_DIR = REPO / "prometheus" / "tests"
ALERTMANAGER_YML = REPO / "prometheus" / "alertmanager.yml"
COMPOSE_YML = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DASHBOARDS_DIR = REPO / "dashboards"
GRAFANA_DATASOURCES = REPO / "grafana" / "provisioning" / "datasources"
GRAFANA_DASHBOARD_PROVIDERS = REPO / "grafana" / "provisioning" / "dashboards"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Keys handed to docker-compose and to the generated test configs; never real secrets.
COMPOSE_ENV = {
    "HOMELAB_OPERATOR_KEY": "compose-operator-key",
    "HOMELAB_AGENT_KEY": "compose-agent-key",
    "HOMELAB_VIEWER_KEY": "compose-viewer-key",
    "HOMELAB_ALERTS_KEY": "compose-alerts-key",
    "GRAFANA_ADMIN_PASSWORD": "compose-grafana-password",
}


def load_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text())


def rule_files() -> list[Path]:
    """The alert rule files Prometheus loads (`prometheus/rules/*.yml`)."""
    return sorted(RULES_DIR.glob("*.yml"))


def rule_test_files() -> list[Path]:
    """The `promtool test rules` files."""
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def alert_rules() -> Iterator[tuple[Path, dict]]:
    """Every alerting rule, with the file it comes from."""
    for path in rule_files():
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    yield path, rule


def dashboards() -> dict[str, dict]:
    """Every dashboard JSON, by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: dict) -> Iterator[dict]:
    """Every panel of a dashboard, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


# Grafana's built-in variables, replaced by what Grafana would send for a 1 h range and a 15 s
# step: enough for Prometheus to parse and evaluate the expression.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__range": "1h",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def variables_used(expr: str) -> set[str]:
    """Names of the template variables an expression refers to (`$x`, `${x}`, `${x:fmt}`)."""
    return {a or b for a, b in VARIABLE.findall(expr)}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace template variables the way Grafana does before sending a query."""
    table = {**BUILTIN_VARIABLES, **values}

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in table:
            raise KeyError(f"no value for template variable ${name} in {expr!r}")
        return table[name]

    return VARIABLE.sub(replace, expr)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a tool from the repo root and capture its output as text."""
    kwargs.setdefault("cwd", REPO)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kwargs)
