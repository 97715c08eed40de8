"""Many agents at once against a live control: no errors, no lost rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import requests

from tests.live import LiveControl

THREADS = 20
BEATS_PER_THREAD = 15


def test_parallel_heartbeats_lose_nothing(tmp_path, database_url):
    with LiveControl(
        tmp_path, database_url=database_url, agent_key="ak", operator_key="ok"
    ) as live:
        errors: list[str] = []
        barrier = threading.Barrier(THREADS)

        def agent(index: int) -> None:
            session = requests.Session()
            barrier.wait()
            key = "ak"
            for beat in range(BEATS_PER_THREAD):
                # Half the threads share one server id, so registration races too. Many boxes
                # claiming one id is what enrollment refuses, so those report as an operator
                # (who may speak for any server); the others enroll and use their bound keys.
                server_id = "shared" if index % 2 else f"box-{index}"
                response = session.post(
                    live.url + "/api/v1/agents/heartbeat",
                    headers={"X-API-Key": "ok" if server_id == "shared" else key},
                    json={
                        "server_id": server_id,
                        "hostname": server_id,
                        "timestamp": "2026-01-01T00:00:00Z",
                        "metrics": {"cpu_percent": beat},
                    },
                    timeout=30,
                )
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text}")
                    continue
                key = response.json().get("agent_key", key)

        threads = [threading.Thread(target=agent, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

        headers = {"X-API-Key": "ok"}
        servers = requests.get(live.url + "/api/v1/servers", headers=headers, timeout=10).json()
        assert servers["total"] == THREADS // 2 + 1
        assert {s["status"] for s in servers["servers"]} == {"online"}
        registered = requests.get(
            live.url + "/api/v1/events?type=server_registered", headers=headers, timeout=10
        ).json()
        assert registered["total"] == THREADS // 2 + 1  # the shared id registered exactly once
        metrics = requests.get(live.url + "/metrics", timeout=10).text
        assert f"homelab_heartbeats_received_total {THREADS * BEATS_PER_THREAD}.0" in metrics

    from control import db
    from control.models import MetricsSample

    db.bind(db.open_database(database_url))
    try:
        assert MetricsSample.select().count() == THREADS * BEATS_PER_THREAD
    finally:
        db.db.close()
