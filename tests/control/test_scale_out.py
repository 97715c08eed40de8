"""Scale-out, really run: `serve --workers 2 --no-scheduler` beside `homelab-control scheduler`
on the test PostgreSQL, with actions run over the real test sshd; `serve --workers 2` with its
scheduler in the main process; two workers sharing SQLite; the refusals; the bench's smoke run.

Each test request goes over a keep-alive connection whose accepting worker process is found
from the kernel's socket table (psutil), so a test knows which worker answered and can send one
step of a flow through one worker and the next through the other.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import psycopg2
import pytest

from tests.helpers import heartbeat, require_binary, wait_until
from tests.live import LiveControl

OPERATOR_KEY = "scale-operator-key"
AGENT_KEY = "scale-agent-key"
VIEWER_KEY = "scale-viewer-key"
CONNECT_ATTEMPTS = 64  # new connections tried until both workers hold one
REPO = Path(__file__).resolve().parents[2]


def worker_of(control: LiveControl, client_port: int) -> int | None:
    """PID of the process under `control` that holds the server end of the connection whose
    client side is 127.0.0.1:`client_port`."""
    for proc in psutil.Process(control.process.pid).children(recursive=True):
        try:
            connections = proc.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        for conn in connections:
            if conn.laddr.port == control.port and conn.raddr and conn.raddr.port == client_port:
                return proc.pid
    return None


class Pinned:
    """One keep-alive connection to control and the worker process that accepted it."""

    def __init__(self, control: LiveControl):
        self.conn = http.client.HTTPConnection("127.0.0.1", control.port, timeout=30)
        self.conn.connect()
        self.sock = self.conn.sock
        self.conn.request("GET", "/health")  # accepted and answered: the socket is a worker's
        self.conn.getresponse().read()
        client_port = self.sock.getsockname()[1]
        self.worker = wait_until(lambda: worker_of(control, client_port), timeout=10)

    def call(self, method: str, path: str, body: dict | None = None, key: str = OPERATOR_KEY):
        """Send one request on this very connection; return (status, JSON body)."""
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        self.conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = self.conn.getresponse()
        data = response.read()
        # http.client silently reconnects after a close, possibly to the other worker.
        assert self.conn.sock is self.sock, "control closed the keep-alive connection"
        return response.status, json.loads(data) if data else None

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def connections_on_two_workers(control: LiveControl) -> tuple[Pinned, Pinned]:
    """Open connections until two are held by different worker processes."""
    first = Pinned(control)
    for _ in range(CONNECT_ATTEMPTS):
        other = Pinned(control)
        if other.worker != first.worker:
            return first, other
        other.close()
    pytest.fail(f"{CONNECT_ATTEMPTS} connections all went to worker {first.worker}")


class Scheduler:
    """`homelab-control scheduler` as its own process, with the API's environment."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "scheduler"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        return self.process.returncode


def new_worker_ready(control: LiveControl, known: set[int]) -> int | None:
    """The PID of a worker that logged `ready` and is not in `known`, if any."""
    for pid in map(int, re.findall(r"worker (\d+) ready", control.log())):
        if pid not in known:
            return pid
    return None


def lease_holder_pid(database_url: str) -> int | None:
    """The PID in the scheduler lease (holder is host:pid:suffix), None when nobody holds it."""
    with psycopg2.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT holder FROM scheduler_lease WHERE name = 'scheduler'")
        row = cursor.fetchone()
    conn.close()
    return int(row[0].split(":")[1]) if row and row[0] else None


@pytest.fixture
def deployment(postgres_cluster, ssh_settings, tmp_path):
    """Two API workers without a scheduler, and a scheduler process, on the test PostgreSQL.

    Offline after 2 s of silence, checked every second, so a silent box is caught quickly.
    """
    control = LiveControl(
        tmp_path / "control",
        database_url=postgres_cluster.url,
        operator_key=OPERATOR_KEY,
        agent_key=AGENT_KEY,
        viewer_key=VIEWER_KEY,
        offline_after=2,
        offline_check_interval=1,
        **ssh_settings,
    )
    control.start("--workers", "2", "--no-scheduler")
    scheduler = Scheduler(control.env, tmp_path / "scheduler.log")
    try:
        yield control, scheduler
    finally:
        scheduler_status = scheduler.stop()
        control_status = control.stop()
        postgres_cluster.truncate_all()
    assert (control_status, scheduler_status) == (0, 0), control.log()


def test_two_workers_and_a_scheduler_share_heartbeats_approvals_and_offline_detection(
    deployment, sshd, workdir
):
    control, scheduler = deployment
    workers = {p.pid for p in psutil.Process(control.process.pid).children(recursive=True)}
    a, b = connections_on_two_workers(control)
    assert {a.worker, b.worker} <= workers and a.worker != b.worker
    for worker in (a.worker, b.worker):
        assert f"worker {worker} ready" in control.log()

    # Registered through one worker, enrolled by a heartbeat through the other.
    box = {"id": "box", "hostname": "box", "ip_address": sshd.host, "ssh_port": sshd.port}
    assert b.call("POST", "/api/v1/servers", box)[0] == 201
    beat = heartbeat("box", metrics={"cpu_percent": 12.5})
    status, answer = a.call("POST", "/api/v1/agents/heartbeat", beat, key=AGENT_KEY)
    assert status == 200 and answer["agent_key"]
    bound = answer["agent_key"]
    beat["metrics"]["cpu_percent"] = 31.0
    assert b.call("POST", "/api/v1/agents/heartbeat", beat, key=bound)[0] == 200
    for side in (a, b):
        status, server = side.call("GET", "/api/v1/servers/box", key=VIEWER_KEY)
        assert (server["status"], server["latest_metrics"]["cpu_percent"]) == ("online", 31.0)

    # An action on a paused server: queued through one worker, approved through the other,
    # run over SSH by the scheduler process's dispatcher.
    assert a.call("PUT", "/api/v1/servers/box/pause")[0] == 200
    request = {"server_id": "box", "action_type": "touch_marker", "parameters": {"name": "two"}}
    status, action = a.call("POST", "/api/v1/actions", request)
    assert (status, action["status"]) == (201, "pending")
    status, approved = b.call("POST", f"/api/v1/actions/{action['id']}/approve")
    assert (status, approved["status"]) == (200, "approved")

    def finished():
        _, body = a.call("GET", f"/api/v1/actions/{action['id']}", key=VIEWER_KEY)
        return body if body["status"] in {"completed", "failed"} else None

    done = wait_until(finished, timeout=60)
    assert (done["status"], done["exit_code"]) == ("completed", 0), done
    assert (workdir / "marker-two").exists()
    # The scheduler process, not an API worker, holds the lease and so ran the action.
    assert lease_holder_pid(control.env["HOMELAB_DATABASE_URL"]) == scheduler.process.pid

    # Offline detection: the box falls silent; both workers then report it offline.
    def offline_everywhere():
        return all(
            side.call("GET", "/api/v1/servers/box", key=VIEWER_KEY)[1]["status"] == "offline"
            for side in (a, b)
        )

    wait_until(offline_everywhere, timeout=60)
    status, page = b.call("GET", "/api/v1/events?server_id=box&type=status_changed", key=VIEWER_KEY)
    assert [e["details"]["status"] for e in page["events"]][:1] == ["offline"]
    a.close()
    b.close()


def test_serve_with_workers_keeps_the_scheduler_in_its_main_process_and_replaces_dead_workers(
    postgres_cluster, tmp_path
):
    control = LiveControl(
        tmp_path,
        database_url=postgres_cluster.url,
        operator_key=OPERATOR_KEY,
        offline_check_interval=1,
    )
    control.start("--workers", "2")
    try:
        url = control.env["HOMELAB_DATABASE_URL"]
        assert wait_until(lambda: lease_holder_pid(url), timeout=30) == control.process.pid
        workers = [
            child
            for child in psutil.Process(control.process.pid).children()
            if "spawn_main" in " ".join(child.cmdline())
        ]
        assert len(workers) == 2
        # /health answers as soon as one worker is up; the other may still be building its app.
        wait_until(lambda: all(f"worker {w.pid} ready" in control.log() for w in workers))

        # A worker that dies is replaced; the main process and its scheduler carry on.
        workers[0].kill()
        replaced = wait_until(lambda: new_worker_ready(control, {w.pid for w in workers}))
        assert psutil.Process(replaced).parent().pid == control.process.pid
        assert lease_holder_pid(url) == control.process.pid
    finally:
        status = control.stop()
        postgres_cluster.truncate_all()
    assert status == 0, control.log()


def test_workers_on_sqlite_take_turns_on_its_write_lock_without_losing_a_heartbeat(tmp_path):
    control = LiveControl(tmp_path, operator_key=OPERATOR_KEY, viewer_key=VIEWER_KEY)
    control.start("--workers", "2")
    try:
        assert "take turns on SQLite's single write lock" in control.log()
        a, b = connections_on_two_workers(control)
        beats = 150

        def send(side: Pinned, name: str) -> list[int]:
            return [
                side.call("POST", "/api/v1/agents/heartbeat", heartbeat(f"{name}-{i % 10}"))[0]
                for i in range(beats)
            ]

        with ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(send, (a, b), ("left", "right")))
        assert statuses == [[200] * beats, [200] * beats]
        status, listing = a.call("GET", "/api/v1/servers", key=VIEWER_KEY)
        assert listing["total"] == 20
        assert "database is locked" not in control.log()
        a.close()
        b.close()
    finally:
        status = control.stop()
    assert status == 0, control.log()


def run_cli(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    """`homelab-control ARGS` with only the given HOMELAB_* settings (and a temp data dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    env["HOMELAB_DATA_DIR"] = str(tmp_path)
    env.update({f"HOMELAB_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_workers_refuse_an_in_memory_database(tmp_path):
    result = run_cli(tmp_path, "serve", "--workers", "2", database_url="sqlite:///:memory:")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "homelab-control: error: serve --workers needs a database every process can open"
    )
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_workers_refuse_a_port_in_use_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(tmp_path, "serve", "--workers", "2", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"homelab-control: error: port {port} on 127.0.0.1 is already in use"
    )


def test_workers_bench_smoke_runs_on_both_workers():
    """bench/workers.py --smoke keeps working (figures are only printed, never compared)."""
    require_binary(shutil.which("wrk"), "wrk (Debian package wrk)")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "workers.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {
        int(fields[2]): fields
        for fields in (line.split() for line in done.stdout.splitlines())
        if fields[:2] == ["serve", "postgres"]
    }
    assert sorted(rows) == [0, 2], done.stdout
    # "procs busy": the one embedded process, then both workers held wrk's connections.
    assert (rows[0][-2], rows[2][-2]) == ("1", "2"), done.stdout
