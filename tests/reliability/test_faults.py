"""Database faults: the API answers 503 UNAVAILABLE in our error shape, writes nothing half-way,
and recovers without a restart when the fault clears.

SQLite faults run in-process: read-only and full are per-connection PRAGMAs, and the Flask test
client runs each request on this thread's connection, so the fault hits exactly what a request
would. The PostgreSQL restart runs against a live `homelab-control serve` under load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest
import requests

from control.config import load_settings
from control.models import MetricsSample, Server
from tests.helpers import wait_until
from tests.live import LiveControl
from tests.postgres import PostgresCluster, require_binary

OPERATOR, AGENT = "fault-operator-key", "fault-agent-key"
HEARTBEAT = "/api/v1/agents/heartbeat"


def beat(server_id: str = "box", cpu: float = 1.0) -> dict:
    return {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": "2026-01-01T00:00:00Z",
        "metrics": {"cpu_percent": cpu, "memory_percent": 2.0},
        "os_info": {"distribution": "Debian GNU/Linux", "version": "12"},
    }


# SQLite only, on purpose: each fault below is SQLite's own (PRAGMA query_only, PRAGMA
# max_page_count, the database file removed from disk), so it is built here rather than taken
# from the parametrized `app`. PostgreSQL's fault is the restart test at the end.
@pytest.fixture
def sqlite_app(tmp_path):
    from control.app import create_app
    from control.db import db

    app = create_app(
        load_settings(
            environ={},
            data_dir=str(tmp_path),
            database_url=f"sqlite:///{tmp_path / 'homelab.db'}",
            operator_key=OPERATOR,
            agent_key=AGENT,
        )
    )
    yield app
    db.close()


@pytest.fixture
def client(sqlite_app):
    client = sqlite_app.test_client()
    assert client.post(HEARTBEAT, json=beat(), headers={"X-API-Key": AGENT}).status_code == 200
    return client


def state():
    """Everything a heartbeat writes, to prove a failed one wrote none of it."""
    server = Server.get_by_id("box")
    return MetricsSample.select().count(), server.last_seen, server.latest_sample_id


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == "UNAVAILABLE" and body["message"]
    assert set(body) == {"code", "message"}


def assert_faulty_then_recovers(client, clear, every_write_fails: bool = True) -> None:
    before = state()
    assert_unavailable(client.get("/health"))
    assert_unavailable(client.post(HEARTBEAT, json=beat(cpu=9), headers={"X-API-Key": AGENT}))
    assert_unavailable(client.post(HEARTBEAT, json=beat("newbox"), headers={"X-API-Key": AGENT}))
    if every_write_fails:  # when full, a small row may still fit a page another table has
        assert_unavailable(
            client.post(
                "/api/v1/servers",
                json={"id": "n", "hostname": "n"},
                headers={"X-API-Key": OPERATOR},
            )
        )
    clear()
    assert state() == before  # nothing half-written
    assert Server.get_or_none(Server.id == "newbox") is None
    assert client.get("/health").status_code == 200
    assert client.post(HEARTBEAT, json=beat(cpu=3), headers={"X-API-Key": AGENT}).status_code == 200
    assert state()[0] == before[0] + 1


def test_read_only_database_is_503_and_recovers(client):
    from control.db import db

    db.execute_sql("PRAGMA query_only = ON")
    assert_faulty_then_recovers(client, lambda: db.execute_sql("PRAGMA query_only = OFF"))


def test_full_database_is_503_and_recovers(client):
    from control.db import db

    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    db.execute_sql(f"PRAGMA max_page_count = {pages}")
    # Free space left in the last pages still takes a few rows: write until the disk is full.
    for cpu in range(5000):
        response = client.post(HEARTBEAT, json=beat(cpu=cpu % 100), headers={"X-API-Key": AGENT})
        if response.status_code != 200:
            break
    assert_unavailable(response)
    assert_faulty_then_recovers(
        client,
        lambda: db.execute_sql("PRAGMA max_page_count = 1073741823"),
        every_write_fails=False,
    )


def test_removed_database_file_is_503_and_recovers_when_restored(client, tmp_path):
    from control.db import db

    path = tmp_path / "homelab.db"
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    backup = tmp_path / "backup.db"
    shutil.copy(path, backup)
    before = state()
    os.remove(path)
    assert_unavailable(client.get("/health"))
    assert_unavailable(client.post(HEARTBEAT, json=beat(cpu=9), headers={"X-API-Key": AGENT}))
    assert_unavailable(client.get("/api/v1/servers", headers={"X-API-Key": OPERATOR}))
    assert not path.exists()  # no empty database silently created in its place
    shutil.copy(backup, path)  # the operator restores it
    assert client.get("/health").status_code == 200
    assert state() == before
    assert client.post(HEARTBEAT, json=beat(cpu=3), headers={"X-API-Key": AGENT}).status_code == 200
    assert state()[0] == before[0] + 1


def test_postgres_restart_under_load_fails_cleanly_and_recovers(tmp_path):
    require_binary(PostgresCluster.find_bin("pg_ctl"), "PostgreSQL (pg_ctl)")
    cluster = PostgresCluster()
    cluster.start()
    log = os.path.join(cluster.workdir, "restart.log")  # the server must not hold our pipes
    pg_ctl = [PostgresCluster.find_bin("pg_ctl"), "-D", cluster.datadir, "-w", "-t", "60"]
    pg_ctl += ["-l", log]
    try:
        with LiveControl(
            tmp_path, database_url=cluster.url, agent_key=AGENT, operator_key=OPERATOR
        ) as live:
            statuses: list[int] = []
            bodies: list[dict] = []
            stop = threading.Event()

            def agent(index: int) -> None:
                session = requests.Session()
                sent = 0
                while not stop.is_set() and sent < 5000:  # bounded
                    sent += 1
                    try:
                        response = session.post(
                            live.url + HEARTBEAT,
                            json=beat(f"pg-{index}"),
                            headers={"X-API-Key": AGENT},
                            timeout=30,
                        )
                    except requests.ConnectionError:
                        statuses.append(-1)
                        continue
                    statuses.append(response.status_code)
                    if response.status_code != 200:
                        bodies.append(response.json())
                    time.sleep(0.01)

            threads = [threading.Thread(target=agent, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            wait_until(lambda: statuses.count(200) >= 20)
            # A fast restart: sessions are cut, as when the database host reboots.
            subprocess.run(
                cluster._command([*pg_ctl, "-m", "fast", "restart"]),
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=90,
            )
            restarted_at = len(statuses)
            wait_until(lambda: statuses[restarted_at:].count(200) >= 40, timeout=60)
            stop.set()
            for thread in threads:
                thread.join()
            health = requests.get(live.url + "/health", timeout=10)
            log = live.log()
        assert health.status_code == 200
        assert set(statuses) <= {200, 503}, sorted(set(statuses))
        assert all(body["code"] == "UNAVAILABLE" for body in bodies), bodies[:3]
        assert "Traceback" not in log
    finally:
        # pg_ctl restarted the server outside our Popen handle: stop it the same way.
        subprocess.run(
            cluster._command([*pg_ctl, "-m", "immediate", "stop"]),
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=90,
        )
        cluster.stop()
