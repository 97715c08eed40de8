"""Control's own `/metrics` under `serve --workers 2`, really run on SQLite: the counters of
every worker process are summed, whichever worker answers the scrape, and a worker that dies
takes none of its counts with it.

Each worker's connection is pinned (tests/control/test_scale_out.py's `Pinned`), so the test
knows that both workers took heartbeats and that both answered scrapes.
"""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.control.test_scale_out import (
    OPERATOR_KEY,
    VIEWER_KEY,
    Pinned,
    connections_on_two_workers,
    new_worker_ready,
)
from tests.helpers import heartbeat, wait_until
from tests.live import LiveControl

HEARTBEAT = "/api/v1/agents/heartbeat"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}} of one exposition."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def scrape_on(side: Pinned) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """`GET /metrics` on this pinned connection, i.e. answered by that very worker."""
    side.conn.request("GET", "/metrics")
    response = side.conn.getresponse()
    body = response.read().decode()
    assert side.conn.sock is side.sock, "control closed the keep-alive connection"
    assert response.status == 200, body
    return parse(body)


def scrape_anywhere(control: LiveControl) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """`GET /metrics` on a new connection: whichever worker accepts it answers."""
    response = requests.get(control.url + "/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return parse(response.text)


def heartbeats(samples) -> float:
    """`homelab_heartbeats_received_total` of one scrape."""
    return samples["homelab_heartbeats_received_total"][()]


def heartbeat_requests(samples) -> float:
    """How many heartbeats the request-latency histogram counted as answered 200."""
    return sum(
        value
        for labels, value in samples["homelab_http_request_duration_seconds_count"].items()
        if dict(labels).get("endpoint", "").endswith("heartbeat")
        and dict(labels)["status"] == "200"
    )


def metrics_dir_of(worker: int) -> Path:
    """The metrics directory a worker process was started with (from its environment)."""
    return Path(psutil.Process(worker).environ()[MULTIPROC_ENV])


def send(side: Pinned, count: int, prefix: str) -> None:
    """`count` heartbeats on this connection, from ten servers."""
    for i in range(count):
        status, _ = side.call("POST", HEARTBEAT, heartbeat(f"{prefix}-{i % 10}"))
        assert status == 200


def test_workers_sum_their_counters_on_every_scrape_and_keep_a_dead_workers_counts(tmp_path):
    control = LiveControl(tmp_path, operator_key=OPERATOR_KEY, viewer_key=VIEWER_KEY)
    control.start("--workers", "2")
    try:
        a, b = connections_on_two_workers(control)
        send(a, 30, "left")
        send(b, 20, "right")
        status, _ = a.call("POST", HEARTBEAT, heartbeat("left-0"), key="not-a-key")
        assert status == 401
        scrapes = [scrape_on(side) for side in (a, b, a, b)]
        scrapes += [scrape_anywhere(control) for _ in range(6)]
        assert [heartbeats(s) for s in scrapes] == [50.0] * len(scrapes)
        assert [heartbeat_requests(s) for s in scrapes] == [50.0] * len(scrapes)
        failures = [s["homelab_auth_failures_total"][(("reason", "invalid"),)] for s in scrapes]
        assert failures == [1.0] * len(scrapes)
        # The database-backed series come once, not once per worker.
        assert scrapes[0]["homelab_database_up"] == {(): 1.0}
        assert scrapes[0]["homelab_servers"][(("status", "online"),)] == 20.0
        # One private directory, shared by both workers, holds their counts.
        shared = metrics_dir_of(a.worker)
        assert metrics_dir_of(b.worker) == shared
        assert stat.S_IMODE(shared.stat().st_mode) == 0o700
        assert shared.stat().st_uid == os.getuid()

        # A worker killed outright is replaced; its heartbeats still count, the new one's add up.
        dead = a.worker
        a.close()
        os.kill(dead, signal.SIGKILL)
        wait_until(lambda: new_worker_ready(control, {dead, b.worker}), timeout=60)
        assert heartbeats(scrape_on(b)) == 50.0
        replacement = wait_until(lambda: _pinned_other_than(control, b.worker), timeout=60)
        send(replacement, 5, "late")
        after = [scrape_on(side) for side in (replacement, b, replacement, b)]
        assert [heartbeats(s) for s in after] == [55.0] * len(after)
        replacement.close()
        b.close()
    finally:
        status = control.stop()
    assert status == 0, control.log()
    assert not shared.exists(), "serve left its metrics directory behind"


def _pinned_other_than(control: LiveControl, worker: int) -> Pinned | None:
    """A connection held by a worker other than `worker`, or None (closed) if it went there."""
    side = Pinned(control)
    if side.worker != worker:
        return side
    side.close()
    return None
