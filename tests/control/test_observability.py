"""Health, metrics, the event log, OpenAPI and Swagger UI served with no internet."""

from __future__ import annotations

import json
import logging
import re

from prometheus_client.parser import text_string_to_metric_families

from control import logs


def test_health_is_public_and_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["database"] == "ok"


def test_health_is_503_when_database_is_gone(client, monkeypatch):
    from control.db import db

    def broken(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(db.obj, "execute_sql", broken)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json["code"] == "UNAVAILABLE"


def test_metrics_exposition_parses_and_has_the_fleet(client, auth):
    client.post("/api/v1/servers", json={"id": "a", "hostname": "a"}, headers=auth.operator)
    client.get("/api/v1/servers/a", headers=auth.viewer)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(response.data.decode())}
    assert {
        "homelab_servers",
        "homelab_heartbeats_received",
        "homelab_database_up",
        "homelab_http_request_duration_seconds",
    } <= set(families)
    servers = {s.labels["status"]: s.value for s in families["homelab_servers"].samples}
    assert servers == {"unknown": 1.0, "online": 0.0, "offline": 0.0}
    endpoints = {
        s.labels.get("endpoint") for s in families["homelab_http_request_duration_seconds"].samples
    }
    assert "/api/v1/servers/<string:server_id>" in endpoints  # templates, not raw ids
    assert "_created" not in response.data.decode()


def test_events_paginate_newest_first_and_filter(client, auth):
    for index in range(5):
        client.post(
            "/api/v1/servers", json={"id": f"s{index}", "hostname": "h"}, headers=auth.operator
        )
    page = client.get("/api/v1/events?limit=2&offset=1", headers=auth.viewer).json
    assert page["total"] == 5
    assert (page["limit"], page["offset"]) == (2, 1)
    assert [e["server_id"] for e in page["events"]] == ["s3", "s2"]
    filtered = client.get(
        "/api/v1/events?server_id=s0&type=server_registered", headers=auth.viewer
    ).json
    assert filtered["total"] == 1
    assert filtered["events"][0]["details"] == {"source": "api"}
    assert client.get("/api/v1/events?type=nothing", headers=auth.viewer).status_code == 422
    assert client.get("/api/v1/events?server_id=gone", headers=auth.viewer).json["total"] == 0


def test_openapi_spec_is_served(client):
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "homelabcmd control"
    assert spec["components"]["schemas"]["Error"]["required"] == ["code", "message"]


def test_swagger_ui_loads_only_local_assets(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.data) > 1000


def test_json_logs_are_one_line_per_event_without_keys(app, client, auth, capfd):
    logs.configure("json")
    try:
        client.post(
            "/api/v1/agents/heartbeat",
            headers=auth.agent,
            json={"server_id": "logged", "hostname": "logged", "timestamp": "2026-01-01T00:00:00Z"},
        )
    finally:
        logging.getLogger().handlers.clear()
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    registered = [e for e in entries if e.get("event") == "server_registered"]
    assert registered and registered[0]["server_id"] == "logged"
    assert auth.agent_key not in "\n".join(lines)
