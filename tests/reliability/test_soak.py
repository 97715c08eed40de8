"""Load soak: 200 concurrent keep-alive clients against a live `homelab-control serve` on SQLite.

Each client is a thread with its own `requests.Session` and, from a seeded generator, mixes
heartbeats for its own server, reads (`/servers`, `/events`, `/actions`) and action creation
(`restart_service` with a name no other request uses, on a paused server, so every action
stays `pending` and nothing needs SSH). For `HOMELAB_SOAK_SECONDS` (default 120 in CI, 20
locally) every request must succeed, and every heartbeat answered 200 must be a row in the
database: no 5xx, no connection error, no lost write.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field

import pytest
import requests

from tests.live import LiveControl

CLIENTS = 200
OPERATOR, AGENT, VIEWER = "soak-operator-key", "soak-agent-key", "soak-viewer-key"
PAUSED = "soak-paused"
READS = ["/api/v1/servers", "/api/v1/events?limit=50", "/api/v1/actions?limit=50"]
# Deadlines that only detect a hang: a request queued behind 199 others still answers in
# well under a second on this box.
TIMEOUT = (10, 60)


def soak_seconds() -> float:
    """How long to soak: HOMELAB_SOAK_SECONDS, else 120 s in CI and 20 s locally."""
    default = "120" if os.environ.get("CI") == "true" else "20"
    return float(os.environ.get("HOMELAB_SOAK_SECONDS", default))


@dataclass
class Tally:
    """What one client did and what went wrong."""

    heartbeats: int = 0
    actions: int = 0
    reads: int = 0
    first_answer: float | None = None  # monotonic time of the first request that succeeded
    failures: list[str] = field(default_factory=list)


def heartbeat(server_id: str, seq: int) -> dict:
    """A seed-001 heartbeat with metrics, so control stores one sample row for it."""
    return {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "metrics": {"cpu_percent": seq % 100 + 0.5, "memory_percent": 40.0, "load_1m": 0.3},
    }


def client_loop(url: str, index: int, stop: threading.Event, start: threading.Barrier) -> Tally:
    """One client: a keep-alive session issuing a seeded mix of requests until `stop`."""
    tally = Tally()
    rng = random.Random(index)
    server_id = f"soak-{index:03d}"
    agent_key = AGENT  # the shared key until the first heartbeat enrolls the server
    with requests.Session() as session:
        start.wait()
        seq = 0
        while not stop.is_set():
            seq += 1
            roll = rng.random()
            try:
                if roll < 0.5:
                    kind, expected = "heartbeat", 200
                    response = session.post(
                        f"{url}/api/v1/agents/heartbeat",
                        json=heartbeat(server_id, seq),
                        headers={"X-API-Key": agent_key},
                        timeout=TIMEOUT,
                    )
                elif roll < 0.85:
                    kind, expected = rng.choice(READS), 200
                    response = session.get(
                        url + kind, headers={"X-API-Key": VIEWER}, timeout=TIMEOUT
                    )
                else:
                    kind, expected = "action", 201
                    response = session.post(
                        f"{url}/api/v1/actions",
                        json={
                            "server_id": PAUSED,
                            "action_type": "restart_service",
                            "service_name": f"svc-{index}-{seq}",
                        },
                        headers={"X-API-Key": OPERATOR},
                        timeout=TIMEOUT,
                    )
            except requests.RequestException as exc:
                tally.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            if response.status_code != expected:
                tally.failures.append(f"{kind}: HTTP {response.status_code} {response.text[:200]}")
                continue
            if tally.first_answer is None:
                tally.first_answer = time.monotonic()
            if kind == "heartbeat":
                tally.heartbeats += 1
                agent_key = response.json().get("agent_key", agent_key)
            elif kind == "action":
                tally.actions += 1
            else:
                tally.reads += 1
    return tally


@pytest.fixture
def control(tmp_path):
    """A live control on SQLite with a paused server to queue actions on."""
    # 200 new boxes at once, and one operator key queueing actions as fast as it can: the
    # enrollment and request rate limits, which exist to slow exactly that down, set out of
    # the way (their own tests are tests/control/test_enrollment.py and test_rate_limit.py).
    live = LiveControl(
        tmp_path / "soak",
        operator_key=OPERATOR,
        agent_key=AGENT,
        viewer_key=VIEWER,
        enroll_rate=1000,
        rate_limit=1_000_000,
    ).start()
    operator = {"X-API-Key": OPERATOR}
    body = {"id": PAUSED, "hostname": "paused.lan"}
    assert requests.post(f"{live.url}/api/v1/servers", json=body, headers=operator, timeout=30).ok
    assert requests.put(
        f"{live.url}/api/v1/servers/{PAUSED}/pause", headers=operator, timeout=30
    ).ok
    yield live
    live.stop()


def test_200_clients_mixing_reads_heartbeats_and_actions_lose_nothing(control):
    stop = threading.Event()
    start = threading.Barrier(CLIENTS)
    tallies: list[Tally] = [Tally() for _ in range(CLIENTS)]

    def run(index: int) -> None:
        tallies[index] = client_loop(control.url, index, stop, start)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(soak_seconds())
    stopped = time.monotonic()
    stop.set()
    for thread in threads:
        thread.join(TIMEOUT[1] + 30)
    assert not any(thread.is_alive() for thread in threads), "a client hung"

    failures = [f for tally in tallies for f in tally.failures]
    kinds = Counter(f.split(":")[0] for f in failures)
    assert not failures, f"{len(failures)} failed requests, by kind {dict(kinds)}: {failures[:5]}"
    # Every client was served while the soak ran, not only once the others let go (with
    # waitress's default 100-connection limit, half of them waited for the whole soak).
    starved = [i for i, t in enumerate(tallies) if not t.first_answer or t.first_answer > stopped]
    assert not starved, f"{len(starved)} clients got no answer during the soak"
    done = sorted(t.heartbeats + t.actions + t.reads for t in tallies)
    print(f"requests per client: min {done[0]}, median {done[len(done) // 2]}, max {done[-1]}")
    sent = sum(t.heartbeats for t in tallies)
    actions = sum(t.actions for t in tallies)
    assert sent and actions and sum(t.reads for t in tallies)

    # No lost heartbeats: one metrics row per heartbeat answered 200, one pending action per 201.
    viewer = {"X-API-Key": VIEWER}
    pending = requests.get(
        f"{control.url}/api/v1/actions?status=pending&limit=1", headers=viewer, timeout=TIMEOUT
    ).json()["total"]
    assert pending == actions
    metrics = requests.get(f"{control.url}/metrics", timeout=TIMEOUT).text
    received = next(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("homelab_heartbeats_received_total ")
    )
    assert received == sent
    assert control.stop() == 0  # a clean shutdown right after the load
    with closing(sqlite3.connect(control.env["HOMELAB_DATA_DIR"] + "/homelab.db")) as database:
        rows = database.execute("SELECT count(*) FROM metrics_sample").fetchone()[0]
        servers = database.execute("SELECT count(*) FROM server").fetchone()[0]
    assert rows == sent
    assert servers == 1 + sum(1 for t in tallies if t.heartbeats)
