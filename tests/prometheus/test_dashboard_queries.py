"""Every dashboard query, with its template variables filled in as Grafana would, parses and
returns data in the real Prometheus scraping the fixture control and agent."""

from __future__ import annotations

import re

import pytest

from tests.prometheus.files import dashboards, panels, substitute

pytestmark = pytest.mark.integration

LABEL_VALUES = re.compile(r"label_values\((.+),\s*(\w+)\)$")


def _queries() -> list[tuple[str, str]]:
    found = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append((name, target["expr"]))
    return found


def _query_ids() -> list[str]:
    ids = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                ids.append(f"{name}:{panel['title']}:{target['refId']}")
    return ids


def _variables() -> list[tuple[str, dict]]:
    return [(name, v) for name, d in dashboards().items() for v in d["templating"]["list"]]


def _resolve(prom, variable: dict) -> list[str]:
    """What Grafana would offer for a `label_values(selector, label)` query variable."""
    selector, label = LABEL_VALUES.fullmatch(variable["definition"]).groups()
    response = prom.query(selector)
    assert response.status_code == 200, response.text
    return sorted({s["metric"][label] for s in response.json()["data"]["result"]})


@pytest.mark.parametrize(
    ("name", "variable"), _variables(), ids=[f"{n}:{v['name']}" for n, v in _variables()]
)
def test_template_variable_offers_the_discovered_server(live_stack, name, variable):
    prom, _, _ = live_stack
    assert _resolve(prom, variable) == ["web-1"]


def test_a_malformed_query_is_rejected_as_bad_data(live_stack):
    """The check below can fail: Prometheus answers 400 bad_data to a parse error."""
    prom, _, _ = live_stack
    response = prom.query("sum(rate(node_cpu_seconds_total[$__rate_interval])")
    assert response.status_code == 400
    assert response.json()["errorType"] == "bad_data"


@pytest.mark.parametrize(("name", "expr"), _queries(), ids=_query_ids())
def test_dashboard_query_parses_and_returns_data(live_stack, name, expr):
    prom, _, _ = live_stack
    values = {}
    for dashboard_name, variable in _variables():
        if dashboard_name == name:
            values[variable["name"]] = _resolve(prom, variable)[0]
    response = prom.query(substitute(expr, values))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["result"], f"no data for {substitute(expr, values)}"
