"""Reading the console: fleet, server, events, audit and costs pages, filters and paging.

Acting from it (approve, reject, pause, run, reset) is tests/control/test_console_actions.py.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from control.models import Event, MetricsSample, Server, utcnow
from tests.conftest import OPERATOR_KEY, VIEWER_KEY
from tests.console import ConsolePages
from tests.helpers import send_heartbeat


def beat(server_id: str, **metrics) -> dict:
    """A heartbeat for `server_id` with the given metrics."""
    now = utcnow().isoformat(timespec="seconds") + "Z"
    return {"server_id": server_id, "hostname": server_id, "timestamp": now, "metrics": metrics}


@pytest.fixture
def operator(client):
    """An operator signed in to the console."""
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    return pages


@pytest.fixture
def fleet(app, client, auth):
    """Four servers: healthy web-1, degraded db-1 (role db, tag prod), failed nas-1, and a
    registered box that never sent a heartbeat."""
    for server_id, cpu in (("web-1", 10.0), ("db-1", 50.0), ("nas-1", 90.0)):
        assert send_heartbeat(client, auth, beat(server_id, cpu_percent=cpu)).status_code == 200
    body = {"id": "quiet", "hostname": "quiet", "tags": ["lab"]}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    with app.app_context():
        Server.update(health="healthy").where(Server.id == "web-1").execute()
        Server.update(
            health="degraded",
            health_reasons=json.dumps(["disk / 93 % ≥ 90"]),
            role="db",
            tags=json.dumps(["prod"]),
        ).where(Server.id == "db-1").execute()
        Server.update(health="failed", health_reasons=json.dumps(["temperature 88 °C ≥ 85"])).where(
            Server.id == "nas-1"
        ).execute()


def row_order(page: str, ids: list[str]) -> list[str]:
    """The given server ids in the order the fleet table lists them."""
    return sorted(ids, key=lambda server_id: page.index(f'href="/ui/servers/{server_id}"'))


def test_fleet_lists_every_server_worst_first_with_counts(operator, fleet):
    page = operator.page("/ui/")
    assert row_order(page, ["web-1", "db-1", "nas-1", "quiet"]) == [
        "nas-1",
        "db-1",
        "quiet",
        "web-1",
    ]
    assert '<span class="number">1</span> failed' in page
    assert '<span class="number">1</span> degraded' in page
    assert "temperature 88 °C ≥ 85" in page
    assert "90 %" in page  # nas-1's CPU
    assert "4 servers" in page


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("health=degraded", ["db-1"]),
        ("status=unknown", ["quiet"]),
        ("tag=prod", ["db-1"]),
        ("tag=lab", ["quiet"]),
        ("role=db", ["db-1"]),
        ("health=failed&status=online", ["nas-1"]),
        ("health=healthy&role=db", []),
    ],
)
def test_fleet_filters_by_query_string(operator, fleet, query, shown):
    page = operator.page(f"/ui/?{query}")
    listed = [s for s in ("web-1", "db-1", "nas-1", "quiet") if f'href="/ui/servers/{s}"' in page]
    assert listed == shown
    # The filters stay in the form, so an auto-refresh (a reload of this URL) keeps them.
    for pair in query.split("&"):
        name, value = pair.split("=")
        assert f'value="{value}" selected' in page or f'name="{name}" value="{value}"' in page


@pytest.mark.parametrize("query", ["health=sick", "status=<x>", "tag=No Spaces", "offset=-1"])
def test_a_filter_outside_its_menu_is_a_400_page(operator, fleet, query):
    response = operator.get(f"/ui/?{query}")
    assert response.status_code == 400
    assert "<h1>400</h1>" in response.get_data(as_text=True)


def test_server_page_shows_facts_metrics_history_and_cost(app, client, auth, operator):
    send_heartbeat(client, auth, beat("web-1", cpu_percent=42.0, memory_percent=61.0))
    client.put("/api/v1/servers/web-1", json={"tdp_watts": 65}, headers=auth.operator)
    with app.app_context():
        Server.update(
            containers=json.dumps([{"name": "web", "image": "nginx:1", "state": "running"}]),
            services=json.dumps([{"name": "nginx.service", "active_state": "failed"}]),
            packages=json.dumps({"upgradable": 7, "security": 2, "reboot_required": True}),
        ).where(Server.id == "web-1").execute()
        hour_ago = utcnow() - dt.timedelta(hours=1)
        MetricsSample.create(
            server="web-1", timestamp=hour_ago, received_at=hour_ago, cpu_percent=80.0
        )
    page = operator.page("/ui/servers/web-1")
    for text in ("42 %", "61 %", "nginx:1", "nginx.service", "Security updates", "Reboot required"):
        assert text in page
    assert page.count("<svg") == 4
    assert 'class="line" d="M' in page
    assert "CPU over the last 24 hours: low 42%, mean 61%, high 80%, latest 42%" in page
    assert "a month" in page  # the cost estimate
    assert "server web-1 registered by heartbeat" in page  # its events


def test_an_unknown_console_page_is_a_404_page(operator):
    response = operator.get("/ui/no/such/page")
    assert response.status_code == 404
    assert "There is no such page in the console." in response.get_data(as_text=True)


def test_an_unknown_server_is_a_404_page(operator):
    response = operator.get("/ui/servers/nope")
    assert response.status_code == 404
    assert "Server &#39;nope&#39; not found" in response.get_data(as_text=True)


@pytest.fixture
def paused(client, auth):
    """Server `box` in maintenance mode (its SSH port refuses: nothing runs in these tests)."""
    body = {"id": "box", "hostname": "box", "ip_address": "127.0.0.1", "ssh_port": 1}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    assert client.put("/api/v1/servers/box/pause", headers=auth.operator).status_code == 200
    return "box"


def test_events_filter_by_severity_type_and_server(app, client, operator, paused):
    with app.app_context():
        Event.create(server_id="box", type="health_changed", severity="error", message="box failed")
        Event.create(server_id="box", type="health_changed", severity="warning", message="box meh")
        Event.create(server_id="other", type="health_changed", severity="error", message="o failed")
    page = operator.page("/ui/events?severity=error&server=box")
    assert "box failed" in page and "box meh" not in page and "o failed" not in page
    page = operator.page("/ui/events?severity=warning&type=health_changed")
    assert "box failed" in page and "box meh" in page and "o failed" in page
    assert "server box paused" not in page
    assert "server box paused" in operator.page("/ui/events")


def test_audit_and_costs_pages(client, auth, operator, paused):
    client.put("/api/v1/servers/box", json={"tdp_watts": 100}, headers=auth.operator)
    bad = {"server_id": "box", "action_type": "nope"}
    assert client.post("/api/v1/actions", json=bad, headers=auth.operator).status_code == 403
    page = operator.page("/ui/audit?result=refused")
    assert "bootstrap-operator" in page and "refused" in page
    page = operator.page("/ui/costs")
    assert "Servers counted" in page
    assert "40 W" in page  # idle: 40 % of a 100 W TDP


def test_a_viewer_reads_every_page(client, paused):
    pages = ConsolePages(client)
    pages.sign_in(VIEWER_KEY)
    for path in (
        "/ui/",
        "/ui/servers/box",
        "/ui/approvals",
        "/ui/events",
        "/ui/audit",
        "/ui/costs",
    ):
        pages.page(path)


def test_long_lists_page_and_keep_their_filters(app, operator):
    with app.app_context():
        for n in range(60):
            Event.create(server_id="box", type="status_changed", severity="info", message=f"m{n}")
    page = operator.page("/ui/events?server=box")
    assert "1\N{EN DASH}50 of 60" in page
    assert 'href="/ui/events?server=box&amp;offset=50">Next</a>' in page
    page = operator.page("/ui/events?server=box&offset=50")
    assert "51\N{EN DASH}60 of 60" in page
    assert 'data-label="What">m0<' in page and 'data-label="What">m59<' not in page
    assert 'href="/ui/events?server=box&amp;offset=0">Previous</a>' in page


def test_make_run_prints_the_console_url():
    from control import quickstart

    text = quickstart.banner(
        "http://127.0.0.1:8000", dict.fromkeys(quickstart.SCOPES, "k"), True, True
    )
    assert "console          http://127.0.0.1:8000/ui/" in text
