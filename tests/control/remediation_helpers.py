"""API calls the remediation tests share: queue an action, wait for its end, execute."""

from __future__ import annotations

from tests.helpers import wait_until


def queue(client, auth, action_type, server_id="box", **parameters):
    """POST /actions as the operator."""
    return client.post(
        "/api/v1/actions",
        headers=auth.operator,
        json={"server_id": server_id, "action_type": action_type, "parameters": parameters},
    )


def final(client, auth, action_id):
    """Wait until the action is completed, failed or rejected; return it."""

    def done():
        action = client.get(f"/api/v1/actions/{action_id}", headers=auth.viewer).json
        return action if action["status"] in {"completed", "failed", "rejected"} else None

    return wait_until(done, timeout=30)


def execute(client, auth, body, server_id="box"):
    """POST to the synchronous execute endpoint as the operator."""
    return client.post(
        f"/api/v1/servers/{server_id}/commands/execute", json=body, headers=auth.operator
    )
