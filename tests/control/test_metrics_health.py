"""Device health on control's /metrics (seed 002): fleet counts by health, each server's health
as a state set, and version drift against the server's version lock, for the alert rules in
prometheus/rules/health.yml and the dashboards to read.

The servers' judged state is written straight to the database: what the heartbeat judges is
control.fleet.health's business (tested there); here only its export is.
"""

from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from control.models import Server, ServerHealth
from tests.helpers import require_binary

HEALTH_VALUES = ("healthy", "degraded", "failed", "offline", "unknown")


def _samples(client, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted labels: value} of one family on control's /metrics ({} when it is absent)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.data.decode()):
        if family.name == name:
            return {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    return {}


def _register(client, auth, *server_ids: str) -> None:
    for server_id in server_ids:
        body = {"id": server_id, "hostname": server_id}
        response = client.post("/api/v1/servers", json=body, headers=auth.operator)
        assert response.status_code == 201, response.json


def _set(server_id: str, **fields) -> None:
    assert Server.update(**fields).where(Server.id == server_id).execute() == 1


def test_servers_by_health_counts_every_value_zeros_included(client, auth):
    assert _samples(client, "homelab_servers_by_health") == {
        (("health", value),): 0.0 for value in HEALTH_VALUES
    }
    _register(client, auth, "pi-1", "pi-2", "pi-3", "pi-4")
    _set("pi-1", health=ServerHealth.HEALTHY)
    _set("pi-2", health=ServerHealth.DEGRADED)
    _set("pi-3", health=ServerHealth.DEGRADED)
    counts = _samples(client, "homelab_servers_by_health")
    assert {dict(labels)["health"]: value for labels, value in counts.items()} == {
        "healthy": 1.0,
        "degraded": 2.0,
        "failed": 0.0,
        "offline": 0.0,
        "unknown": 1.0,  # pi-4: never judged
    }


def test_health_is_a_state_set_per_server(client, auth):
    _register(client, auth, "pi-1", "pi-2")
    _set("pi-1", health=ServerHealth.FAILED)
    samples = _samples(client, "homelab_server_health")
    # One series per server and health value, always present: a change flips values.
    assert samples == {
        (("health", value), ("server_id", server)): float(
            value == ("failed" if server == "pi-1" else "unknown")
        )
        for server in ("pi-1", "pi-2")
        for value in HEALTH_VALUES
    }
    _set("pi-1", health=ServerHealth.HEALTHY)
    after = _samples(client, "homelab_server_health")
    assert after.keys() == samples.keys()
    assert after[(("health", "healthy"), ("server_id", "pi-1"))] == 1.0
    assert after[(("health", "failed"), ("server_id", "pi-1"))] == 0.0


def test_version_drift_is_exported_only_for_locked_servers(client, auth):
    locked = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
    _register(client, auth, "same", "short", "longer", "other", "silent", "free")
    _set("same", version_lock=locked, current_commit_hash=locked)
    # An abbreviation either way names the same commit, as control.fleet.health judges it.
    _set("short", version_lock=locked, current_commit_hash=locked[:7])
    _set("longer", version_lock=locked[:7].upper(), current_commit_hash=locked)
    _set("other", version_lock=locked, current_commit_hash="1a2b3c4d")
    _set("silent", version_lock=locked)  # never reported a commit: cannot be on the lock
    _set("free", current_commit_hash="1a2b3c4d")  # no lock: nothing to drift from
    assert _samples(client, "homelab_server_version_drift") == {
        (("server_id", "same"),): 0.0,
        (("server_id", "short"),): 0.0,
        (("server_id", "longer"),): 0.0,
        (("server_id", "other"),): 1.0,
        (("server_id", "silent"),): 1.0,
    }
    _set("other", current_commit_hash=locked)
    assert _samples(client, "homelab_server_version_drift")[(("server_id", "other"),)] == 0.0


def test_health_metrics_pass_promtool_check_metrics(client, auth):
    promtool = require_binary("promtool", "promtool (Debian package prometheus)")
    _register(client, auth, "pi-1")
    _set("pi-1", health=ServerHealth.DEGRADED, version_lock="abcdef1")
    body = client.get("/metrics").data
    assert b"homelab_server_health{" in body and b"homelab_server_version_drift{" in body
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
