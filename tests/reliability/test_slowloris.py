"""Slowloris (issue 11, M2): idle, half-sent connections must not starve heartbeats or /health.

Once, 1,000 connections that each sent half a request filled waitress's connection limit and
every agent's heartbeat timed out. These tests hold 2,000 of them against a real
`homelab-control serve` and check that the fleet is still answered (correctness, not speed:
each request gets a generous 10 s), and that serve sizes its open-files limit to fit.
bench/slowloris.py measures the latency cost.
"""

from __future__ import annotations

import resource
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.helpers import free_port, wait_until
from tests.live import LiveControl

AGENT_KEY = "slowloris-agent-key"
CONNECTIONS = 2000
HALF_REQUEST = b"POST /api/v1/agents/heartbeat HTTP/1.1\r\nHost: control\r\n"
ANSWER_TIMEOUT = 10  # generous: a deadline for "answered at all", not a latency goal


@contextmanager
def open_files(needed: int) -> Iterator[None]:
    """Raise this process's soft open-files limit to `needed` for the block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        assert hard >= needed, f"hard open-files limit {hard} < {needed}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def half_sent_requests(port: int, count: int) -> list[socket.socket]:
    """`count` connections that each sent a request line and one header, and then nothing."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT)
        sock.sendall(HALF_REQUEST)
        held.append(sock)
    return held


def closed_by_server(sockets: list[socket.socket]) -> int:
    """How many of `sockets` the server has answered or closed (readable means either)."""
    poller = select.poll()  # not select(): these descriptors are past 1,024
    for sock in sockets:
        poller.register(sock, select.POLLIN)
    return len(poller.poll(0))


def test_heartbeats_and_health_are_answered_while_2000_half_sent_requests_are_held(tmp_path):
    with open_files(CONNECTIONS + 512):
        # A long idle timeout so that no attack connection is dropped while the test runs: the
        # answers below must come with every one of them still held.
        control = LiveControl(tmp_path, agent_key=AGENT_KEY).start("--channel-timeout", "600")
        attack: list[socket.socket] = []
        try:
            attack = half_sent_requests(control.port, CONNECTIONS)
            key = AGENT_KEY
            for counter in range(5):
                beat = requests.post(
                    control.url + "/api/v1/agents/heartbeat",
                    json={
                        "server_id": "survivor",
                        "hostname": "survivor",
                        "timestamp": "2026-01-01T00:00:00Z",
                        "metrics": {"uptime_seconds": counter},
                    },
                    headers={"X-API-Key": key},
                    timeout=ANSWER_TIMEOUT,
                )
                assert beat.status_code == 200, beat.text
                key = beat.json().get("agent_key", key)  # the first one enrolled
                health = requests.get(control.url + "/health", timeout=ANSWER_TIMEOUT)
                assert health.status_code == 200, health.text
            assert key != AGENT_KEY, "the heartbeat never enrolled the server"
            assert closed_by_server(attack) == 0  # all 2,000 were held meanwhile
        finally:
            for sock in attack:
                sock.close()
            control.stop()


def _serve_with_open_files(tmp_path: Path, soft: int, hard: int, *args: str):
    """`homelab-control serve` started with RLIMIT_NOFILE (soft, hard); (process, url, log)."""
    port = free_port()
    log = tmp_path / "control.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    env = {
        "PATH": "/usr/bin:/bin",
        "HOMELAB_DATA_DIR": str(tmp_path),
        "HOMELAB_AGENT_KEY": AGENT_KEY,
    }
    with log.open("wb") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "serve", "--port", str(port), *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,  # only a resource limit in the child, before exec
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return requests.get(url + "/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(healthy, timeout=30)
    return process, log


def _soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line in /proc/PID/limits")


def test_serve_raises_a_low_soft_open_files_limit_to_hold_its_connections(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = 3000 + 256
    if hard != resource.RLIM_INFINITY:
        assert hard >= wanted, f"hard open-files limit {hard} too low for this test"
    process, _ = _serve_with_open_files(tmp_path, 1024, hard, "--connection-limit", "3000")
    try:
        assert _soft_open_files(process.pid) >= wanted
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_serve_shrinks_its_connection_limit_to_a_low_hard_limit_and_says_so(tmp_path):
    process, log = _serve_with_open_files(tmp_path, 512, 512, "--connection-limit", "10000")
    try:
        assert "open-files limit 512 holds only 256 connections (asked for 10000)" in (
            log.read_text()
        )
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_slowloris_bench_runs():
    """bench/slowloris.py --smoke still runs end to end (no figure is checked here)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "slowloris.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "baseline" in result.stdout and "p50 ratio" in result.stdout
    assert "idle x200" in result.stdout and "trickle x200" in result.stdout
