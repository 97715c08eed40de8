"""/metrics cannot be grown by a client: request labels come from a fixed set (issue 11, M1).

A client sending made-up methods or paths must not add a series per request: the method label
is one of the standard methods or `other`, the endpoint label a route template or `unmatched`.
"""

from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import require_binary

HISTOGRAM = "homelab_http_request_duration_seconds"
REQUEST_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _request_series(client) -> set[tuple[str, str, str]]:
    """The (method, endpoint, status) label sets of the request histogram's `_count` samples."""
    body = client.get("/metrics").data.decode()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    return {
        (s.labels["method"], s.labels["endpoint"], s.labels["status"])
        for s in families[HISTOGRAM].samples
        if s.name == HISTOGRAM + "_count"
    }


def _attack(client, start: int, count: int) -> None:
    """Distinct bogus methods on a real route, and distinct bogus paths, `count` of each."""
    for index in range(start, start + count):
        client.open("/health", method=f"BOGUS{index}")
        client.open(f"/no/such/path/{index}", method="GET")
        client.open(f"/api/v1/servers/x{index}/nothing", method=f"X{index}")


def test_bogus_methods_and_paths_do_not_grow_the_label_set(client):
    _attack(client, 0, 20)
    before = _request_series(client)
    _attack(client, 20, 300)
    after = _request_series(client)
    # The only new series may be the /metrics scrape itself; nothing per bogus request.
    assert len(after - before) <= 1, sorted(after - before)[:10]
    methods = {method for method, _, _ in after}
    assert methods <= set(REQUEST_METHODS) | {"other"}
    assert "other" in methods
    endpoints = {endpoint for _, endpoint, _ in after}
    templates = {rule.rule for rule in client.application.url_map.iter_rules()}
    assert endpoints <= templates | {"unmatched"}
    assert "unmatched" in endpoints
    assert not any("/no/such/path" in endpoint for endpoint in endpoints)


def test_standard_methods_keep_their_own_label(client, auth):
    client.get("/health")
    client.head("/health")
    client.options("/health")
    client.delete("/api/v1/servers/missing", headers=auth.operator)
    methods = {method for method, _, _ in _request_series(client)}
    assert {"GET", "HEAD", "OPTIONS", "DELETE"} <= methods
    assert "other" not in methods


def test_metrics_after_an_attack_pass_promtool_check_metrics(client):
    promtool = require_binary("promtool", "promtool (Debian package prometheus)")
    _attack(client, 0, 50)
    body = client.get("/metrics").data
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
