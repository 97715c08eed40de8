"""`GET /api/v1/costs` and the power/cost series on control's `/metrics`.

Model: watts = tdp * (0.4 + 0.6 * cpu_percent / 100), from the newest heartbeat sample.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from control.fleet.costs import estimate_watts
from tests.helpers import send_heartbeat


@pytest.fixture
def settings_overrides():
    return {"electricity_price": 0.25, "currency": "CHF"}


def server(client, auth, server_id, tdp=None, cpu=None):
    body = {"id": server_id, "hostname": server_id}
    if tdp is not None:
        body["tdp_watts"] = tdp
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    if cpu is not None:
        beat = {
            "server_id": server_id,
            "hostname": server_id,
            "timestamp": "2026-01-01T00:00:00Z",
            "metrics": {"cpu_percent": cpu},
        }
        response = send_heartbeat(client, auth, beat)
        assert response.status_code == 200


@pytest.mark.parametrize(
    ("tdp", "cpu", "watts"),
    [
        (100, None, 40.0),
        (100, 0, 40.0),
        (100, 50, 70.0),
        (100, 100, 100.0),
        (65, 25, 35.75),
        (100, 150, 100.0),
        (100, -5, 40.0),
        (0, 80, 0.0),
    ],
)
def test_estimate_is_idle_share_plus_cpu_share_of_tdp(tdp, cpu, watts):
    assert estimate_watts(tdp, cpu) == pytest.approx(watts)


def test_costs_per_server_and_totals(client, auth):
    server(client, auth, "busy", tdp=200, cpu=50)  # 200 * (0.4 + 0.3) = 140 W
    server(client, auth, "idle", tdp=50)  # no sample yet: idle share, 20 W
    server(client, auth, "unknown-tdp", cpu=90)
    body = client.get("/api/v1/costs", headers=auth.viewer).json
    assert (body["currency"], body["electricity_price"]) == ("CHF", 0.25)
    assert body["model"] == {"idle_share": 0.4, "days_per_month": 30}
    by_id = {s["server_id"]: s for s in body["servers"]}
    assert list(by_id) == ["busy", "idle", "unknown-tdp"]
    busy = by_id["busy"]
    assert (busy["tdp_watts"], busy["cpu_percent"], busy["estimated_watts"]) == (200, 50.0, 140.0)
    assert busy["kwh_per_day"] == pytest.approx(3.36)  # 140 W * 24 h
    assert busy["cost_per_day"] == pytest.approx(0.84)  # 3.36 kWh * 0.25
    assert busy["cost_per_month"] == pytest.approx(25.2)  # 30 days
    idle = by_id["idle"]
    assert (idle["cpu_percent"], idle["estimated_watts"], idle["cost_per_month"]) == (
        None,
        20.0,
        pytest.approx(3.6),
    )
    unknown = by_id["unknown-tdp"]
    assert unknown["cpu_percent"] == 90.0
    assert [
        unknown[k]
        for k in ("tdp_watts", "estimated_watts", "kwh_per_day", "cost_per_day", "cost_per_month")
    ] == [None] * 5
    assert body["totals"] == {
        "servers_counted": 2,
        "estimated_watts": 160.0,
        "kwh_per_day": pytest.approx(3.84),
        "cost_per_day": pytest.approx(0.96),
        "cost_per_month": pytest.approx(28.8),
    }


def test_newest_sample_decides(client, auth):
    server(client, auth, "box", tdp=100, cpu=100)
    server_beat = {
        "server_id": "box",
        "hostname": "box",
        "timestamp": "2026-01-01T00:01:00Z",
        "metrics": {"cpu_percent": 0},
    }
    assert send_heartbeat(client, auth, server_beat).status_code == 200
    body = client.get("/api/v1/costs", headers=auth.viewer).json
    assert body["servers"][0]["estimated_watts"] == 40.0


def test_empty_fleet_has_zero_totals(client, auth):
    body = client.get("/api/v1/costs", headers=auth.viewer).json
    assert body["servers"] == []
    assert body["totals"] == {
        "servers_counted": 0,
        "estimated_watts": 0,
        "kwh_per_day": 0,
        "cost_per_day": 0,
        "cost_per_month": 0,
    }


def samples(client) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics").data.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_export_power_cost_and_price_for_the_dashboards(client, auth):
    server(client, auth, "busy", tdp=200, cpu=50)
    server(client, auth, "unknown-tdp", cpu=90)
    found = samples(client)
    assert found[("homelab_server_power_watts", (("server_id", "busy"),))] == 140.0
    assert found[("homelab_server_cost_per_month", (("server_id", "busy"),))] == pytest.approx(25.2)
    assert found[("homelab_electricity_price", (("currency", "CHF"),))] == 0.25
    assert ("homelab_server_power_watts", (("server_id", "unknown-tdp"),)) not in found
    assert ("homelab_server_cost_per_month", (("server_id", "unknown-tdp"),)) not in found


def test_costs_need_a_viewer_key(client, auth):
    assert client.get("/api/v1/costs").status_code == 401
    assert client.get("/api/v1/costs", headers=auth.agent).status_code == 403
