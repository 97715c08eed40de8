"""Heartbeat payload, sending and retry policy against a small fake control (http.server).

Over 300 lines: one feature (the heartbeat loop) with its fake peer; split by concern it
would scatter the fake control's fixtures over several files. The enrolled key (kept, replaced,
never lost) is in test_agent_enrollment.py, which reuses FakeControl.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import re
import subprocess
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest

from exporter_agent.commit import read_commit
from exporter_agent.device_health import DeviceHealth
from exporter_agent.heartbeat import (
    Backoff,
    HeartbeatLoop,
    HttpSender,
    Outcome,
    build_payload,
)
from exporter_agent.heartbeat_metrics import Summary, default_server_id, os_info
from exporter_agent.heartbeat_state import HeartbeatState
from tests.agent.conftest import SNAPSHOT, agent_env
from tests.helpers import HEARTBEAT_METRIC_FIELDS, free_port, wait_until

OK = (200, {"status": "ok", "server_registered": True, "pending_commands": []})
UNAUTHORIZED = (401, {"code": "UNAUTHORIZED", "message": "Invalid or missing API key"})
FORBIDDEN = (403, {"code": "FORBIDDEN", "message": "key bound to server 'other'"})
UNAVAILABLE = (503, {"code": "UNAVAILABLE", "message": "database unreachable"})
INVALID = (
    422,
    {
        "code": "VALIDATION_ERROR",
        "message": "Invalid request",
        "errors": {"server_id": ["String does not match expected pattern."]},
    },
)
METRIC_KEYS = set(HEARTBEAT_METRIC_FIELDS)


class FakeControl:
    """Answers POST /api/v1/agents/heartbeat from a script of (status, body[, headers])."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                status, body, *extra = fake.script.pop(0) if fake.script else OK
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def control():
    fake = FakeControl()
    yield fake
    fake.close()


def sample_payload() -> dict:
    return build_payload(
        server_id="box-1",
        hostname="box-1.lan",
        now=1_768_732_200.0,
        os_info={
            "distribution": "Debian GNU/Linux",
            "version": "12",
            "kernel": "6.1.0",
            "architecture": "x86_64",
        },
        metrics=dict.fromkeys(METRIC_KEYS, 1),
        agent_version="1.2.3",
        metrics_port=9100,
    )


def make_loop(send, rand=lambda: 1.0, cap=30.0, interval=60.0, clock=lambda: 1000.0):
    state = HeartbeatState()
    loop = HeartbeatLoop(send, sample_payload, interval, Backoff(1.0, cap, rand), state, clock)
    return loop, state


def test_heartbeat_posts_seed_001_payload_with_agent_key(control):
    control.script = [OK]
    result = HttpSender(control.url, "secret-agent-key", "homelab-agent/1.2.3")(sample_payload())
    assert result.outcome is Outcome.OK
    assert result.body["server_registered"] is True
    request = control.requests[0]
    assert request["path"] == "/api/v1/agents/heartbeat"
    assert request["headers"]["x-api-key"] == "secret-agent-key"
    assert request["headers"]["content-type"] == "application/json"
    body = request["body"]
    assert body["timestamp"] == "2026-01-18T10:30:00Z"
    assert set(body) == {
        "server_id",
        "hostname",
        "timestamp",
        "os_info",
        "metrics",
        "agent_version",
        "metrics_port",
    }
    assert set(body["os_info"]) == {"distribution", "version", "kernel", "architecture"}
    assert set(body["metrics"]) == METRIC_KEYS


DEVICE = {
    "temperature": 48.3,
    "containers_running": 1,
    "containers_failed": 1,
    "containers": [
        {"name": "web", "image": "nginx:1.27", "state": "running", "health": "healthy",
         "exit_code": 0, "restart_count": 0},
        {"name": "db", "image": "postgres:16", "state": "exited", "health": None,
         "exit_code": 137, "restart_count": None},
    ],
    "services": [{"name": "nginx.service", "active_state": "active", "sub_state": "running"}],
    "packages": {"upgradable": 4, "security": 1, "reboot_required": False},
    "commit_hash": "1a2b3c4",
}  # fmt: skip


def device_health(revision) -> DeviceHealth:
    """Every device-health source answering DEVICE; the commit from the file ``revision``."""
    return DeviceHealth(
        thermometers={"thermal_zone": lambda: [48.312]},
        containers=lambda: DEVICE["containers"],
        services=lambda: DEVICE["services"],
        packages=lambda: DEVICE["packages"],
        commit=functools.partial(read_commit, str(revision)),
    )


def payload_with(device: DeviceHealth):
    """A payload builder like __main__'s: the seed-001 sample plus ``device.read()``."""

    def payload() -> dict:
        body = sample_payload()
        return build_payload(
            **{k: body[k] for k in ("server_id", "hostname", "os_info", "agent_version")},
            now=1_768_732_200.0,
            metrics=body["metrics"],
            metrics_port=9100,
            device=device.read(),
        )

    return payload


def test_device_health_fields_reach_control_in_the_heartbeat_json(control, tmp_path):
    revision = tmp_path / "REVISION"
    revision.write_text("1A2B3C4\n")
    control.script = [OK]
    loop = HeartbeatLoop(HttpSender(control.url, "k", "ua"), payload_with(device_health(revision)),
                         60.0, Backoff(), HeartbeatState())  # fmt: skip
    assert loop.run_once() == 60.0
    body = control.requests[0]["body"]
    assert set(body) == {
        "server_id", "hostname", "timestamp", "os_info", "metrics", "agent_version",
        "metrics_port", "containers", "services", "packages", "commit_hash",
    }  # fmt: skip
    assert set(body["metrics"]) == METRIC_KEYS | {
        "temperature",
        "containers_running",
        "containers_failed",
    }
    assert body["metrics"]["temperature"] == 48.3
    assert (body["metrics"]["containers_running"], body["metrics"]["containers_failed"]) == (1, 1)
    for field in ("containers", "services", "packages", "commit_hash"):
        assert body[field] == DEVICE[field], field


def test_failing_device_sources_never_stop_the_heartbeat(control, tmp_path, caplog):
    def broken():
        raise OSError(13, "Permission denied")

    device = DeviceHealth(
        thermometers={"hwmon": broken},
        containers=broken,
        services=lambda: (_ for _ in ()).throw(subprocess.TimeoutExpired(["systemctl"], 5)),
        packages=broken,
        commit=functools.partial(read_commit, str(tmp_path / "missing")),
    )
    control.script = [OK]
    state = HeartbeatState()
    loop = HeartbeatLoop(HttpSender(control.url, "k", "ua"), payload_with(device), 60.0,
                         Backoff(), state, lambda: 7.0)  # fmt: skip
    assert loop.run_once() == 60.0
    assert state.snapshot() == (True, 7.0)
    body = control.requests[0]["body"]
    assert set(body["metrics"]) == METRIC_KEYS
    assert not {"containers", "services", "packages", "commit_hash"} & set(body)
    assert caplog.text.count("left out of heartbeats") == 5


def test_control_url_with_trailing_slash_or_prefix(control):
    sender = HttpSender(control.url + "/", "k", "ua")
    assert sender.url == control.url + "/api/v1/agents/heartbeat"


def test_real_summary_has_seed_types_and_ranges():
    metrics = Summary(psutil).metrics()
    assert set(metrics) == METRIC_KEYS
    assert all(value is not None for value in metrics.values()), metrics
    for key in (
        "memory_total_mb",
        "memory_used_mb",
        "network_rx_bytes",
        "network_tx_bytes",
        "uptime_seconds",
    ):
        assert isinstance(metrics[key], int) and metrics[key] >= 0, key
    for key in ("cpu_percent", "memory_percent", "disk_percent"):
        assert 0 <= metrics[key] <= 100, key
    assert metrics["memory_used_mb"] <= metrics["memory_total_mb"]
    info = os_info()
    assert info["kernel"] and info["architecture"]
    assert len(info["architecture"]) <= 20


def test_summary_field_whose_source_fails_is_null():
    class BrokenPsutil:
        Error = psutil.Error

        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise psutil.AccessDenied()

            return fail

    metrics = Summary(BrokenPsutil()).metrics()
    assert set(metrics) == METRIC_KEYS
    assert set(metrics.values()) == {None}


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("Box-1.Lan", "box-1-lan"),
        ("web_01", "web-01"),
        ("--x--", "x"),
        ("ÄÖ", "localhost"),
        ("a" * 150, "a" * 100),
    ],
)
def test_default_server_id_is_slugged_hostname(hostname, expected):
    server_id = default_server_id(hostname)
    assert server_id == expected
    assert re.fullmatch(r"[a-z0-9-]{1,100}", server_id)


def test_timestamp_is_iso8601_utc():
    stamp = sample_payload()["timestamp"]
    assert datetime.fromisoformat(stamp).utcoffset().total_seconds() == 0


def test_5xx_backs_off_exponentially_up_to_the_cap(control):
    control.script = [UNAVAILABLE] * 8
    loop, state = make_loop(HttpSender(control.url, "k", "ua"), rand=lambda: 1.0, cap=10.0)
    delays = [loop.run_once() for _ in range(8)]
    assert delays == [1, 2, 4, 8, 10, 10, 10, 10]
    assert state.snapshot() == (False, 0.0)


def test_backoff_jitter_stays_between_zero_and_the_ceiling():
    rng = random.Random(7)
    backoff = Backoff(base=1.0, cap=30.0, rand=rng.random)
    delays = [backoff.next_delay() for _ in range(40)]
    for attempt, delay in enumerate(delays):
        assert 0 <= delay <= min(30.0, 2**attempt)
    assert len(set(delays)) == len(delays), "full jitter must randomise every wait"
    assert max(delays) > 15, "late attempts must be able to wait close to the cap"


def test_connection_refused_backs_off_and_metrics_show_failure():
    dead = f"http://127.0.0.1:{free_port()}"
    loop, state = make_loop(HttpSender(dead, "k", "ua", timeout=2), rand=lambda: 0.5)
    assert [loop.run_once() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert state.snapshot() == (False, 0.0)


def test_recovers_after_outage_and_resets_backoff(control, caplog):
    caplog.set_level(logging.INFO, logger="exporter_agent.heartbeat")
    control.script = [UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, OK, UNAVAILABLE]
    loop, _ = make_loop(HttpSender(control.url, "k", "ua"), interval=60.0)
    delays = [loop.run_once() for _ in range(5)]
    assert delays == [1, 2, 4, 60, 1]
    assert any("accepted again after 3 failed attempts" in r.message for r in caplog.records)


def test_success_records_timestamp_for_metrics(control):
    control.script = [OK]
    loop, state = make_loop(HttpSender(control.url, "k", "ua"), clock=lambda: 1234.5)
    loop.run_once()
    assert state.snapshot() == (True, 1234.5)


def test_401_logged_once_and_retried_every_interval(control, caplog):
    caplog.set_level(logging.DEBUG, logger="exporter_agent.heartbeat")
    control.script = [UNAUTHORIZED] * 4
    loop, _ = make_loop(HttpSender(control.url, "wrong", "ua"), interval=45.0)
    assert [loop.run_once() for _ in range(4)] == [45.0] * 4
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "rejected the API key (HTTP 401" in errors[0].getMessage()
    assert "HOMELAB_API_KEY" in errors[0].getMessage()
    assert "wrong" not in errors[0].getMessage()


def test_auth_failure_logged_again_when_it_changes(control, caplog):
    caplog.set_level(logging.INFO, logger="exporter_agent.heartbeat")
    control.script = [UNAUTHORIZED, UNAUTHORIZED, FORBIDDEN, FORBIDDEN, OK]
    loop, state = make_loop(HttpSender(control.url, "k", "ua"))
    for _ in range(5):
        loop.run_once()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert "HTTP 401" in errors[0]
    assert "HTTP 403" in errors[1] and "bound to another server" in errors[1]
    assert state.snapshot()[0] is True


def test_validation_error_logs_the_fields(control, caplog):
    caplog.set_level(logging.INFO, logger="exporter_agent.heartbeat")
    control.script = [INVALID]
    loop, _ = make_loop(HttpSender(control.url, "k", "ua"), interval=60.0)
    assert loop.run_once() == 60.0
    message = next(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "VALIDATION_ERROR" in message and "server_id: String does not match" in message


def test_429_honours_retry_after(control):
    control.script = [(429, {"code": "RATE_LIMITED", "message": "slow down"}, {"Retry-After": "7"})]
    loop, _ = make_loop(HttpSender(control.url, "k", "ua"), rand=lambda: 0.0)
    assert loop.run_once() == 7.0


def test_run_sends_first_heartbeat_at_once_and_stops_when_told(control):
    control.script = [OK, OK]
    loop, _ = make_loop(HttpSender(control.url, "k", "ua"))
    waits = []

    def wait(delay):
        waits.append(delay)
        return len(waits) == 2

    loop.run(wait)
    assert len(control.requests) == 2
    assert waits == [60.0, 60.0]


def test_unexpected_error_does_not_stop_the_loop(control, caplog):
    calls = []

    def flaky_payload():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug while building the payload")
        return sample_payload()

    state = HeartbeatState()
    loop = HeartbeatLoop(
        HttpSender(control.url, "k", "ua"),
        flaky_payload,
        60.0,
        Backoff(1.0, 30.0, lambda: 1.0),
        state,
        lambda: 5.0,
    )
    waits = []
    loop.run(lambda delay: waits.append(delay) or len(waits) == 2)
    assert waits == [1.0, 60.0]
    assert state.snapshot() == (True, 5.0)
    assert "heartbeat failed unexpectedly" in caplog.text


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failed_heartbeat_and_the_key_never_follows_it(control, status, caplog):
    elsewhere = FakeControl()
    try:
        control.script = [(status, {}, {"Location": elsewhere.url + "/steal"})]
        loop, state = make_loop(HttpSender(control.url, "secret-key", "ua"), interval=60.0)
        with caplog.at_level(logging.ERROR, logger="exporter_agent.heartbeat"):
            assert loop.run_once() == 60.0
        assert elsewhere.requests == []  # nothing, and no key, went to the Location
        assert state.snapshot()[0] is False
        assert f"HTTP {status}" in caplog.text and "not following it" in caplog.text
        assert "secret-key" not in caplog.text
    finally:
        elsewhere.close()


def test_os_info_never_carries_undecodable_bytes(tmp_path):
    """os.uname() hands undecodable bytes over as lone surrogates, which control refuses."""
    fake = os.uname_result(("Linux", "box", "6.1.0-\udcff-amd64", "#1", "x86_64\udc80"))
    info = os_info(uname=lambda: fake, rootfs=str(tmp_path))
    assert info["kernel"] == "6.1.0-?-amd64" and info["architecture"] == "x86_64?"
    json.dumps(info).encode("utf-8")  # sendable as UTF-8


def test_the_agent_process_sends_temperature_and_commit(start_agent, control, tmp_path):
    checkout = tmp_path / "app"
    (checkout / ".git" / "refs" / "heads").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / ".git" / "refs" / "heads" / "main").write_text("9F8E7D6C5B4A3\n")
    start_agent("--control-url", control.url, "--commit-file", str(checkout),
                "--path.sysfs", str(SNAPSHOT / "sys"), "--no-collector.packages",
                "--collector.containers.socket", str(tmp_path / "docker.sock"),
                env=agent_env(HOMELAB_API_KEY="k"))  # fmt: skip
    wait_until(lambda: control.requests)
    body = control.requests[0]["body"]
    assert body["commit_hash"] == "9f8e7d6c5b4a3"
    assert body["metrics"]["temperature"] == 45.0  # the snapshot's x86_pkg_temp zone
    # No engine socket, no check run, no watched unit: those fields are left out.
    assert not {"containers", "packages", "services"} & set(body)
    assert "containers_running" not in body["metrics"]


def test_run_starts_the_package_check_with_the_agents_stop_event(monkeypatch):
    from exporter_agent import __main__ as main
    from exporter_agent.config import load_settings

    started = []

    class Packages:
        def start(self, stop):
            started.append(stop)

        def collect(self):
            return iter(())

    monkeypatch.setattr(main, "build_collectors", lambda names, options: {"packages": Packages()})
    argv = ["--listen-address", "127.0.0.1", "--listen-port", str(free_port())]
    settings = load_settings(argv, {})
    stop = threading.Event()
    runner = threading.Thread(target=main.run, args=(settings, stop))
    runner.start()
    wait_until(lambda: started)
    stop.set()
    runner.join()
    assert started == [stop]
