"""Database faults: the API answers 503 UNAVAILABLE in our error shape, writes nothing half-way,
and recovers without a restart when the fault clears.

The disk faults are real and hit a live `homelab-control serve` with several waitress threads,
because what goes wrong is per thread: each thread keeps its own SQLite connection, and one
opened while the file was unwritable stays read-only for good unless control drops it.

- read-only: the database and its WAL made immutable (`chattr +i`). Tests run as root, whose
  writes chmod does not stop; without root, chmod a-w, which makes every connection opened during
  the fault read-only (the reported case) but leaves connections opened before it writing.
- full: the data dir is a small tmpfs in control's own mount namespace, filled by the test.

The removed database file runs in-process; the PostgreSQL restart live under load.

Over 300 lines: the fault harness (immutable files, a full tmpfs in a mount namespace, a
read-only PostgreSQL) is shared by every test here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from control.config import load_settings
from control.models import MetricsSample, Server
from tests.helpers import require_binary, wait_until
from tests.live import LiveControl
from tests.postgres import PostgresCluster

OPERATOR, AGENT = "fault-operator-key", "fault-agent-key"
HEARTBEAT = "/api/v1/agents/heartbeat"
THREADS = 8  # waitress threads of the live control
PARALLEL = 4 * THREADS  # requests in flight at once: more than threads, so every thread serves
# Tables the scheduler writes on its own clock (lease renewals, job runs), left out when a test
# compares the whole database before and after a fault.
SCHEDULER_TABLES = {"scheduler_lease", "job_run"}


def beat(server_id: str = "box", cpu: float = 1.0) -> dict:
    return {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": "2026-01-01T00:00:00Z",
        "metrics": {"cpu_percent": cpu, "memory_percent": 2.0},
        "os_info": {"distribution": "Debian GNU/Linux", "version": "12"},
    }


def assert_unavailable(response) -> None:
    """A 503 in our error shape, whether from the test client or a live server."""
    live = isinstance(response, requests.Response)
    assert response.status_code == 503, response.text if live else response.get_data(as_text=True)
    body = response.json() if live else response.get_json()
    assert body["code"] == "UNAVAILABLE" and body["message"]
    assert set(body) == {"code", "message"}


# ---------------------------------------------------------------------------------------------
# A live control, its agents, and what its database holds


class Agents:
    """Live agents: each enrolls once with the bootstrap key, then speaks with its bound key."""

    def __init__(self, url: str, count: int = THREADS):
        self.url = url
        self.keys: dict[str, str] = {}
        for index in range(count):
            response = requests.post(
                url + HEARTBEAT, json=beat(f"box-{index}"), headers={"X-API-Key": AGENT}, timeout=30
            )
            assert response.status_code == 200, response.text
            self.keys[f"box-{index}"] = response.json()["agent_key"]

    def beats(self, count: int = PARALLEL) -> list[Callable[[], requests.Response]]:
        """`count` heartbeats spread over the enrolled servers, as calls for `parallel`."""
        ids = sorted(self.keys)
        return [self._beat(ids[index % len(ids)], float(index % 100)) for index in range(count)]

    def _beat(self, server_id: str, cpu: float) -> Callable[[], requests.Response]:
        key = self.keys[server_id]
        return lambda: requests.post(
            self.url + HEARTBEAT, json=beat(server_id, cpu), headers={"X-API-Key": key}, timeout=30
        )


SPARE = "spare"  # the server operator writes aim at, apart from the agents' servers


def add_spare(url: str) -> None:
    """Register the server `operator_writes` change (and delete)."""
    response = requests.post(
        f"{url}/api/v1/servers",
        json={"id": SPARE, "hostname": SPARE},
        headers={"X-API-Key": OPERATOR},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def operator_writes(url: str, server_id: str = SPARE) -> list[Callable[[], requests.Response]]:
    """One call of every kind of write an operator or a new agent makes."""
    op = {"X-API-Key": OPERATOR}
    servers = f"{url}/api/v1/servers"
    action = {"server_id": server_id, "action_type": "restart_service", "service_name": "nginx"}
    return [
        lambda: requests.post(
            servers, json={"id": "added", "hostname": "a"}, headers=op, timeout=30
        ),
        lambda: requests.put(
            f"{servers}/{server_id}", json={"display_name": "renamed"}, headers=op, timeout=30
        ),
        lambda: requests.put(f"{servers}/{server_id}/pause", headers=op, timeout=30),
        lambda: requests.post(f"{servers}/{server_id}/enrollment/reset", headers=op, timeout=30),
        lambda: requests.post(f"{url}/api/v1/actions", json=action, headers=op, timeout=30),
        lambda: requests.delete(f"{servers}/{server_id}", headers=op, timeout=30),
        lambda: requests.post(
            url + HEARTBEAT, json=beat("newcomer"), headers={"X-API-Key": AGENT}, timeout=30
        ),
    ]


def reads(url: str, count: int = PARALLEL) -> list[Callable[[], requests.Response]]:
    """`count` reads of the server list, as calls for `parallel`."""
    op = {"X-API-Key": OPERATOR}
    return [lambda: requests.get(f"{url}/api/v1/servers", headers=op, timeout=30)] * count


def parallel(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Make every call at once, each on its own connection, and return the responses in order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def statuses(responses: list[requests.Response]) -> list[int]:
    return [response.status_code for response in responses]


Query = Callable[[str], list[tuple]]


def reader(database: Path) -> Query:
    """Run SQL on `database` beside the running control, read-only."""

    def query(sql: str) -> list[tuple]:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            rows = connection.execute(sql).fetchall()
        connection.close()
        return rows

    return query


def snapshot(query: Query) -> dict[str, list[tuple]]:
    """Every row of every table but the scheduler's."""
    tables = query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    # Table names from sqlite_master, not from input.
    return {
        name: query(f'SELECT * FROM "{name}" ORDER BY rowid')  # noqa: S608
        for (name,) in tables
        if name not in SCHEDULER_TABLES
    }


def heartbeat_consistency(query: Query) -> int:
    """Assert every server's newest sample is the one its row points at; return the sample count.

    A heartbeat writes a sample and updates its server in one transaction: a sample without the
    update (or the reverse) would be a half-written heartbeat.
    """
    pointed = dict(query("SELECT id, latest_sample_id FROM server"))
    newest = dict(query("SELECT server_id, MAX(id) FROM metrics_sample GROUP BY server_id"))
    assert {server: sample for server, sample in pointed.items() if sample is not None} == newest
    return query("SELECT COUNT(*) FROM metrics_sample")[0][0]


def assert_clean_log(log: str) -> None:
    """Faults are logged as what they are: no traceback, no masking "cannot rollback"."""
    assert "Traceback" not in log
    assert "cannot rollback" not in log


# ---------------------------------------------------------------------------------------------
# Read-only disk


@contextmanager
def unwritable(*paths: Path) -> Iterator[bool]:
    """Make `paths` unwritable for as long as the block runs; yields whether open files stop too.

    As root `chattr +i`: every write fails, even through a file opened before (root ignores
    mode bits, so chmod would change nothing). Otherwise chmod a-w, which only stops new opens.
    The -shm file is left alone on purpose: SQLite maps it, and an immutable mapping is a SIGBUS.
    """
    if os.geteuid() == 0:
        chattr = require_binary("chattr", "chattr (e2fsprogs)")
        subprocess.run([chattr, "+i", *map(str, paths)], check=True)
        try:
            yield True
        finally:
            subprocess.run([chattr, "-i", *map(str, paths)], check=True)
    else:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(0o444)
        try:
            yield False
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


def test_read_only_disk_is_503_and_every_thread_recovers(tmp_path):
    """Reported: after the disk came back, 5 of 8 threads kept failing until a restart."""
    data = tmp_path / "data"
    database = data / "homelab.db"
    with LiveControl(data, agent_key=AGENT, operator_key=OPERATOR) as first:
        agents = Agents(first.url)
        add_spare(first.url)
    # A control just started: its threads open their connections on their first requests, so
    # most open theirs during the fault, as in the report.
    live = LiveControl(data, agent_key=AGENT, operator_key=OPERATOR).start(
        "--threads", str(THREADS)
    )
    try:
        agents.url = live.url
        query = reader(database)
        before = snapshot(query)
        with unwritable(database, Path(f"{database}-wal")) as every_write_fails:
            health = requests.get(live.url + "/health", timeout=30)
            writes = parallel(agents.beats() + operator_writes(live.url))
            read = parallel(reads(live.url))
            if every_write_fails:
                during = snapshot(query)
        assert_unavailable(health)
        assert "read-only" in health.json()["message"], health.json()
        assert set(statuses(read)) == {200}  # reading still works
        for response in writes:
            if every_write_fails or response.status_code >= 500:
                assert_unavailable(response)
        if every_write_fails:
            assert during == before  # nothing half-written

        # The disk is writable again: every thread answers, at once, without a restart.
        assert requests.get(live.url + "/health", timeout=30).status_code == 200
        for _ in range(3):
            assert set(statuses(parallel(agents.beats() + reads(live.url)))) == {200}
        heartbeat_consistency(query)
    finally:
        live.stop()
    assert_clean_log(live.log())


# ---------------------------------------------------------------------------------------------
# Full disk


class TmpfsControl(LiveControl):
    """A live control whose data dir is a small tmpfs: a disk the test can fill.

    The tmpfs is mounted in a mount namespace of control's own (`unshare`), so it never shows
    on the host and goes away with the process; the test reaches it through /proc/<pid>/root.
    Without root, a user namespace lets the mount happen.
    """

    def __init__(self, data_dir: Path, size: str, **settings: str):
        super().__init__(data_dir, **settings)
        self.data_dir = Path(data_dir).resolve()
        self.size = size

    def start(self, *extra_args: str) -> TmpfsControl:
        """Mount the tmpfs over the data dir, then exec `homelab-control serve` in it."""
        unshare = require_binary("unshare", "unshare (util-linux)")
        user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        mount = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"'
        serve = [sys.executable, "-m", "control.cli", "serve", "--host", "127.0.0.1"]
        serve += ["--port", str(self.port), *extra_args]
        argv = [unshare, "--mount", "--propagation", "private", *user, "--"]
        argv += ["sh", "-c", mount, "sh", self.size, str(self.data_dir), *serve]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_until(self._healthy, timeout=30)
        return self

    def path(self, name: str) -> Path:
        """`name` in the data dir as control sees it, inside its mount namespace."""
        assert self.process is not None
        return Path(f"/proc/{self.process.pid}/root") / self.data_dir.relative_to("/") / name

    def query(self, sql: str) -> list[tuple]:
        """Run SQL on control's database, read-only, from inside its mount namespace.

        SQLite resolves symlinks in a path, and /proc/<pid>/root is one: through it, it would
        open the path on the host instead. So the query runs in the namespace (nsenter).
        """
        assert self.process is not None
        nsenter = require_binary("nsenter", "nsenter (util-linux)")
        user = [] if os.geteuid() == 0 else ["--user", "--preserve-credentials"]
        script = (
            "import json, sqlite3, sys\n"
            "connection = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)\n"
            "print(json.dumps(connection.execute(sys.argv[2]).fetchall()))\n"
        )
        database = str(self.data_dir / "homelab.db")
        argv = [nsenter, "--target", str(self.process.pid), "--mount", *user, "--"]
        argv += [sys.executable, "-c", script, database, sql]
        done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
        return [tuple(row) for row in json.loads(done.stdout)]


def fill(path: Path) -> None:
    """Write `path` until the filesystem has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096, b"\0"):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)


def test_full_disk_is_503_with_the_reason_and_recovers(tmp_path):
    """Reported: on a full disk /health stayed 200 and the log said "cannot rollback"."""
    live = TmpfsControl(tmp_path / "data", "16m", agent_key=AGENT, operator_key=OPERATOR)
    live.start("--threads", str(THREADS))
    try:
        agents = Agents(live.url)
        add_spare(live.url)
        fill(live.path("filler"))

        health = requests.get(live.url + "/health", timeout=30)
        assert_unavailable(health)
        assert "full" in health.json()["message"], health.json()
        beats = parallel(agents.beats())
        writes = parallel(operator_writes(live.url))
        read = parallel(reads(live.url))
        for response in beats + writes:
            assert_unavailable(response)
        assert set(statuses(read)) == {200}
        assert heartbeat_consistency(live.query) == len(agents.keys)  # nothing half-written

        os.remove(live.path("filler"))  # the operator frees space
        assert requests.get(live.url + "/health", timeout=30).status_code == 200
        for _ in range(3):
            assert set(statuses(parallel(agents.beats() + reads(live.url)))) == {200}
        assert heartbeat_consistency(live.query) == len(agents.keys) + 3 * PARALLEL
    finally:
        live.stop()
    log = live.log()
    assert_clean_log(log)
    assert "database or disk is full" in log  # the cause, not a rollback that could not happen


# ---------------------------------------------------------------------------------------------
# The database file removed (SQLite's own fault, so SQLite only; in-process)


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
    return sqlite_app.test_client()


def state():
    """Everything a heartbeat writes, to prove a failed one wrote none of it."""
    server = Server.get_by_id("box")
    return MetricsSample.select().count(), server.last_seen, server.latest_sample_id


def test_removed_database_file_is_503_and_recovers_when_restored(client, tmp_path):
    from control.db import db

    enrolled = client.post(HEARTBEAT, json=beat(), headers={"X-API-Key": AGENT})
    assert enrolled.status_code == 200
    key = {"X-API-Key": enrolled.get_json()["agent_key"]}
    path = tmp_path / "homelab.db"
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    backup = tmp_path / "backup.db"
    shutil.copy(path, backup)
    before = state()
    os.remove(path)
    assert_unavailable(client.get("/health"))
    assert_unavailable(client.post(HEARTBEAT, json=beat(cpu=9), headers=key))
    assert_unavailable(client.get("/api/v1/servers", headers={"X-API-Key": OPERATOR}))
    assert not path.exists()  # no empty database silently created in its place
    shutil.copy(backup, path)  # the operator restores it
    assert client.get("/health").status_code == 200
    assert state() == before
    assert client.post(HEARTBEAT, json=beat(cpu=3), headers=key).status_code == 200
    assert state()[0] == before[0] + 1


def set_read_only(cluster: PostgresCluster, read_only: bool) -> None:
    """Make every session of the cluster read-only (as a standby is), or writable again."""
    import psycopg2

    connection = psycopg2.connect(cluster.url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = off")  # this session may still
        value = "on" if read_only else "off"
        cursor.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
        cursor.execute("SELECT pg_reload_conf()")
    connection.close()


def test_read_only_postgres_is_503_with_the_reason_and_recovers(tmp_path):
    """A PostgreSQL that refuses writes (a standby, or read-only by configuration)."""
    require_binary(PostgresCluster.find_bin("initdb"), "PostgreSQL (initdb)")
    cluster = PostgresCluster()
    cluster.start()
    try:
        with LiveControl(
            tmp_path, database_url=cluster.url, agent_key=AGENT, operator_key=OPERATOR
        ) as live:
            agents = Agents(live.url)
            add_spare(live.url)
            set_read_only(cluster, True)
            wait_until(lambda: requests.get(live.url + "/health", timeout=30).status_code == 503)
            health = requests.get(live.url + "/health", timeout=30)
            writes = parallel(agents.beats() + operator_writes(live.url))
            read = parallel(reads(live.url))
            set_read_only(cluster, False)
            wait_until(lambda: requests.get(live.url + "/health", timeout=30).status_code == 200)
            after = [parallel(agents.beats() + reads(live.url)) for _ in range(3)]
            log = live.log()
        assert_unavailable(health)
        assert "read-only" in health.json()["message"], health.json()
        for response in writes:
            assert_unavailable(response)
        assert set(statuses(read)) == {200}
        assert all(set(statuses(batch)) == {200} for batch in after)
        assert_clean_log(log)
    finally:
        cluster.stop()


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
                # Enroll once with the bootstrap key, then speak with the bound key.
                enrolled = session.post(
                    live.url + HEARTBEAT,
                    json=beat(f"pg-{index}"),
                    headers={"X-API-Key": AGENT},
                    timeout=30,
                )
                key = enrolled.json()["agent_key"]
                sent = 0
                while not stop.is_set() and sent < 5000:  # bounded
                    sent += 1
                    try:
                        response = session.post(
                            live.url + HEARTBEAT,
                            json=beat(f"pg-{index}"),
                            headers={"X-API-Key": key},
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
