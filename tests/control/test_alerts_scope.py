"""The `alerts` scope: Alertmanager's key may post the webhook and nothing else (issue 11,
Medium 5). Bootstrap (`HOMELAB_ALERTS_KEY`) and stored (`keys create --scope alerts`) keys alike.
"""

from __future__ import annotations

import pytest

from control.keys import create_key
from tests.helpers import api_operations

WEBHOOK = "/api/v1/alerts/alertmanager"
ALERTS_KEY = "test-alerts-key"
DELIVERY = {"version": "4", "alerts": []}


@pytest.fixture
def settings_overrides():
    return {"alerts_key": ALERTS_KEY}


@pytest.fixture(params=["bootstrap", "stored"])
def alerts_headers(request, app):
    if request.param == "bootstrap":
        return {"Authorization": f"Bearer {ALERTS_KEY}"}
    key, row = create_key("alerts", "alertmanager")
    assert row.scope == "alerts"
    return {"Authorization": f"Bearer {key}"}


def test_alerts_key_may_post_the_webhook(client, alerts_headers):
    response = client.post(WEBHOOK, json=DELIVERY, headers=alerts_headers)
    assert response.status_code == 200, response.json
    assert response.json == {"received": 0, "alerts": []}


def test_alerts_key_is_403_everywhere_else(client, alerts_headers):
    checked = 0
    for method, path in api_operations(client):
        if (method, path) == ("post", WEBHOOK):
            continue
        response = client.open(path, method=method.upper(), json={}, headers=alerts_headers)
        assert response.status_code == 403, (method, path)
        assert response.json["code"] == "FORBIDDEN"
        checked += 1
    assert checked > 20


def test_viewer_and_agent_keys_are_403_on_the_webhook_operator_still_allowed(client, auth):
    for headers in (auth.viewer, auth.agent):
        response = client.post(WEBHOOK, json=DELIVERY, headers=headers)
        assert (response.status_code, response.json["code"]) == (403, "FORBIDDEN")
    assert client.post(WEBHOOK, json=DELIVERY, headers=auth.operator).status_code == 200


def test_webhook_documents_the_alerts_permission(client):
    spec = client.get("/api/openapi.json").json
    operation = spec["paths"][WEBHOOK]["post"]
    assert "alerts" in operation["description"].lower()
