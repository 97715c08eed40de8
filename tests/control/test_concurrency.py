"""Many agents at once against a live control: no errors, no lost rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
import threading

import pytest
import requests

from control.models import Server
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


# --- group commit: the heartbeats waiting share one transaction ---------------------------------


def heartbeat_of(server_id: str) -> dict:
    return {
        "server_id": server_id,
        "hostname": server_id,
        "timestamp": None,
        "metrics": {"cpu_percent": 1.0},
    }


def write_concurrently(writer, works: list) -> list:
    """Run `works` through `writer` from one thread each, all queued behind a first write that
    holds the writer until every other one is waiting; each thread's result or exception."""
    from control.fleet.heartbeats import write_heartbeat

    release = threading.Event()
    outcomes: list = [None] * (len(works) + 1)

    def first() -> bool:
        release.wait(30)
        return write_heartbeat(heartbeat_of("first"))

    def call(index: int, work) -> None:
        try:
            outcomes[index] = writer.run(work, order=str(index))
        except Exception as exc:
            outcomes[index] = exc

    holder = threading.Thread(target=call, args=(0, first))
    holder.start()
    while writer.writes < 1:  # until the writer has taken the first write and waits in it
        release.wait(0.01)
    threads = [threading.Thread(target=call, args=(i, w)) for i, w in enumerate(works, 1)]
    for thread in threads:
        thread.start()
    while writer._queue.qsize() < len(works):
        holder.join(0.01)
    release.set()
    for thread in [holder, *threads]:
        thread.join()
    return outcomes[1:]


# The writer serves SQLite (one writer at a time); PostgreSQL writes in the request's thread.
only_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def writer(app):
    from control.fleet.group_commit import GroupCommit

    writer = GroupCommit()
    yield writer
    writer.stop()


@only_sqlite
def test_heartbeats_waiting_together_are_written_in_one_transaction(writer):
    from control.fleet.heartbeats import write_heartbeat

    works = [functools.partial(write_heartbeat, heartbeat_of(f"box-{i}")) for i in range(6)]
    assert write_concurrently(writer, works) == [True] * 6  # each registered its server
    assert (writer.batches, writer.writes) == (2, 7)  # the first alone, then the six at once
    assert Server.select().count() == 7


@only_sqlite
def test_a_failing_write_costs_the_others_only_a_retry(writer):
    from control.fleet.heartbeats import write_heartbeat

    def broken() -> bool:
        write_heartbeat(heartbeat_of("broken"))
        raise RuntimeError("a bug after writing")

    works = [functools.partial(write_heartbeat, heartbeat_of(f"box-{i}")) for i in range(3)]
    outcomes = write_concurrently(writer, [works[0], broken, *works[1:]])
    assert outcomes[0] is True and outcomes[2:] == [True, True]
    assert isinstance(outcomes[1], RuntimeError)
    ids = {server.id for server in Server.select()}
    assert ids == {"first", "box-0", "box-1", "box-2"}  # nothing of the broken one's


@only_sqlite
def test_a_refused_write_leaves_the_rest_of_its_batch_committed(writer):
    from control.errors import Unauthorized
    from control.fleet.heartbeats import write_heartbeat

    def refused() -> bool:
        raise Unauthorized("Missing or invalid API key")

    works = [functools.partial(write_heartbeat, heartbeat_of(f"box-{i}")) for i in range(2)]
    outcomes = write_concurrently(writer, [works[0], refused, works[1]])
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], Unauthorized)
    assert writer.batches == 2  # no retry: a refusal is raised before anything is written
    assert Server.select().count() == 3


@only_sqlite
def test_an_answered_heartbeat_is_already_committed(writer):
    from control.fleet.heartbeats import write_heartbeat

    assert writer.run(functools.partial(write_heartbeat, heartbeat_of("box")), "box") is True
    seen: list[int] = []

    def other_connection() -> None:  # a thread of its own has a connection of its own
        from control.db import db

        seen.append(Server.select().where(Server.id == "box").count())
        db.close()

    reader = threading.Thread(target=other_connection)
    reader.start()
    reader.join()
    assert seen == [1]


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_on_postgresql_a_heartbeat_is_written_in_its_own_thread(writer):
    from control.fleet.heartbeats import write_heartbeat

    assert writer.run(functools.partial(write_heartbeat, heartbeat_of("box")), "box") is True
    assert (writer.batches, writer.writes) == (0, 0)
    assert Server.select().where(Server.id == "box").count() == 1
