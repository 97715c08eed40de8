"""The containers collector against a real Docker-API-shaped HTTP server on a unix socket."""

from __future__ import annotations

import json
import re
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter_agent.collectors import CollectorOptions, build_collectors
from exporter_agent.collectors.containers import (
    MAX_CONTAINERS,
    SOCKET,
    ContainersCollector,
    count_states,
    is_failed,
    socket_path,
)
from exporter_agent.exporter import AgentCollector, build_registry


def docker(name, image, state, status, **extra):
    """One /containers/json entry shaped like Docker Engine 27 answers it."""
    entry = {
        "Id": f"{abs(hash(name)):064x}"[:64],
        "Names": [f"/{name}"],
        "Image": image,
        "ImageID": "sha256:" + "ab" * 32,
        "Command": "/docker-entrypoint.sh",
        "Created": 1764000000,
        "Ports": [],
        "Labels": {"com.docker.compose.project": "home"},
        "State": state,
        "Status": status,
        "HostConfig": {"NetworkMode": "bridge"},
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}},
        "Mounts": [],
    }
    entry.update(extra)
    return entry


RECORDED = [
    docker("web", "nginx:1.27", "running", "Up 2 hours (healthy)"),
    docker("db", "postgres:16", "running", "Up 3 days"),
    docker("backup", "restic/restic:0.17", "exited", "Exited (0) 5 hours ago"),
    docker("worker", "home/worker:latest", "exited", "Exited (1) 2 minutes ago"),
    docker("old", "busybox", "dead", "Dead"),
    docker("flappy", "home/flappy", "restarting", "Restarting (137) 3 seconds ago"),
    docker("api", "home/api:2", "running", "Up 10 minutes (unhealthy)"),
    docker("cache", "redis:7", "running", "Up 4 seconds (health: starting)"),
    # Docker 28+ also carries a Health object; it wins over the Status text.
    docker("proxy", "traefik:3", "running", "Up 1 hour", Health={"Status": "healthy"}),
    # Podman's compat API: Restarts instead of Docker's (absent) RestartCount.
    docker("pod-app", "quay.io/home/app", "running", "Up 1 hour", Restarts=3),
    docker("paused", "alpine", "paused", "Up 1 hour (Paused)"),
    docker("new", "alpine", "created", "Created"),
]

EXPECTED = {
    "web": ("running", "healthy", None, None),
    "db": ("running", None, None, None),
    "backup": ("exited", None, 0, None),
    "worker": ("exited", None, 1, None),
    "old": ("dead", None, None, None),
    "flappy": ("restarting", None, 137, None),
    "api": ("running", "unhealthy", None, None),
    "cache": ("running", "starting", None, None),
    "proxy": ("running", "healthy", None, None),
    "pod-app": ("running", None, None, 3),
    "paused": ("paused", None, None, None),
    "new": ("created", None, None, None),
}
FAILED = {"worker", "old", "flappy", "api"}

WIRE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)
WIRE_STATES = {"created", "running", "paused", "restarting", "removing", "exited", "dead"}


def assert_wire_contract(containers: list[dict]) -> None:
    """Every item is exactly what control accepts for a heartbeat's ``containers``."""
    assert len(containers) <= 500
    for c in containers:
        assert set(c) == {"name", "image", "state", "health", "exit_code", "restart_count"}
        assert isinstance(c["name"], str) and WIRE_NAME.fullmatch(c["name"]), c
        assert isinstance(c["image"], str) and len(c["image"]) <= 255, c
        assert not re.search(r"[\x00-\x1f\x7f]", c["image"]), c
        assert c["state"] in WIRE_STATES, c
        assert c["health"] in (None, "starting", "healthy", "unhealthy"), c
        for key, high in (("exit_code", 1000), ("restart_count", 1_000_000_000)):
            value = c[key]
            assert value is None or (type(value) is int and -1000 * (key == "exit_code") <= value
                                     <= high), c  # fmt: skip
    assert len({c["name"] for c in containers}) == len(containers)


class Engine:
    """A Docker Engine API stand-in: an HTTP/1.1 server on a real unix socket, in a thread."""

    def __init__(self, path: str, body: bytes, status: int = 200) -> None:
        self.path = path
        self.body, self.status = body, status
        self.requests: list[tuple[str, str]] = []
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                engine.requests.append((self.command, self.path))
                self.send_response(engine.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(engine.body)))
                self.end_headers()
                self.wfile.write(engine.body)

            def log_message(self, *args):  # unix peers have no address to log
                pass

        self.server = socketserver.UnixStreamServer(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and remove the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def socket_dir():
    """A short directory for sockets (sun_path holds 108 bytes; pytest's tmp_path can be longer)."""
    path = tempfile.mkdtemp(prefix="engine-", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def engine(socket_dir):
    """Factory: start an Engine answering ``data`` (JSON-encoded unless bytes) on a new socket."""
    started: list[Engine] = []

    def start(data=RECORDED, status: int = 200) -> Engine:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        server = Engine(str(socket_dir / f"docker{len(started)}.sock"), body, status)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def registry_for(collector):
    """A fresh registry running only ``collector`` under the name "containers"."""
    return build_registry(AgentCollector({"containers": collector}, "test"), False)


def success(registry) -> float | None:
    return registry.get_sample_value("homelab_agent_collector_success", {"collector": "containers"})


def test_recorded_docker_answer_maps_to_the_wire_contract(engine):
    server = engine()
    containers = ContainersCollector(candidates=[server.path]).snapshot()
    assert server.requests == [("GET", "/containers/json?all=1")]
    assert_wire_contract(containers)
    by_name = {c["name"]: c for c in containers}
    assert {
        name: (c["state"], c["health"], c["exit_code"], c["restart_count"])
        for name, c in by_name.items()
    } == EXPECTED
    assert by_name["web"]["image"] == "nginx:1.27"
    # Failed ones first (a cap never hides them), then by name.
    assert [c["name"] for c in containers[:4]] == sorted(FAILED)
    assert count_states(containers) == (6, 4)


def test_state_health_failed_exit_code_and_restarts_as_metrics(engine):
    server = engine()
    registry = registry_for(ContainersCollector(candidates=[server.path]))
    get = registry.get_sample_value
    assert success(registry) == 1
    assert get("homelab_agent_container_engine_present") == 1
    web = {"name": "web", "image": "nginx:1.27"}
    states = {s: get("homelab_agent_container_state", {**web, "state": s}) for s in WIRE_STATES}
    assert states == {s: (1.0 if s == "running" else 0.0) for s in WIRE_STATES}
    assert get("homelab_agent_container_health", {**web, "health": "healthy"}) == 1
    assert get("homelab_agent_container_health", {**web, "health": "unhealthy"}) == 0
    assert get("homelab_agent_container_failed", web) == 0
    worker = {"name": "worker", "image": "home/worker:latest"}
    assert get("homelab_agent_container_failed", worker) == 1
    assert get("homelab_agent_container_exit_code", worker) == 1
    assert get("homelab_agent_container_exit_code", web) is None  # running: unknown
    db = {"name": "db", "image": "postgres:16"}
    assert get("homelab_agent_container_health", {**db, "health": "healthy"}) is None  # no check
    assert get("homelab_agent_container_restarts_total", db) is None  # Docker's list lacks it
    pod = {"name": "pod-app", "image": "quay.io/home/app"}
    assert get("homelab_agent_container_restarts_total", pod) == 3
    failed = {
        s.labels["name"]
        for family in registry.collect()
        for s in family.samples
        if s.name == "homelab_agent_container_failed" and s.value == 1
    }
    assert failed == FAILED


@pytest.mark.parametrize(
    ("state", "health", "exit_code", "failed"),
    [
        ("running", None, None, False),
        ("running", "healthy", None, False),
        ("running", "starting", None, False),
        ("running", "unhealthy", None, True),
        ("exited", None, 0, False),
        ("exited", None, 1, True),
        ("exited", None, -1, True),
        ("exited", None, None, False),  # unknown exit code is not evidence of failure
        ("dead", None, None, True),
        ("restarting", None, 0, True),
        ("paused", None, None, False),
        ("created", None, None, False),
        ("removing", None, None, False),
    ],
)
def test_failed_rule_of_the_wire_contract(state, health, exit_code, failed):
    container = {"name": "c", "image": "i", "state": state, "health": health,
                 "exit_code": exit_code, "restart_count": None}  # fmt: skip
    assert is_failed(container) is failed
    assert count_states([container]) == (int(state == "running"), int(failed))


def test_no_socket_is_absent_not_failed(socket_dir):
    collector = ContainersCollector(candidates=[str(socket_dir / "docker.sock")])
    assert collector.snapshot() is None
    registry = registry_for(collector)
    assert success(registry) == 1
    assert registry.get_sample_value("homelab_agent_container_engine_present") == 0
    assert "homelab_agent_container_state" not in generate_latest(registry).decode()


def test_second_candidate_is_used_when_the_first_is_missing(engine, socket_dir):
    server = engine()
    collector = ContainersCollector(candidates=[str(socket_dir / "missing.sock"), server.path])
    assert collector.socket() == server.path
    assert len(collector.snapshot()) == len(RECORDED)


def test_table_row_reads_the_socket_option_and_the_candidate_list(engine, socket_dir):
    server = engine()
    configured = CollectorOptions(values={"containers_socket": server.path}, container_sockets=())
    assert build_collectors(["containers"], configured)["containers"].socket() == server.path
    found = CollectorOptions(container_sockets=(server.path,))
    assert len(build_collectors(["containers"], found)["containers"].snapshot()) == 12
    absent = CollectorOptions(container_sockets=(str(socket_dir / "none.sock"),))
    assert build_collectors(["containers"], absent)["containers"].snapshot() is None


def test_socket_option_takes_a_path_or_a_docker_host_url():
    assert SOCKET.flag == "--collector.containers.socket"
    assert SOCKET.env == "HOMELAB_CONTAINERS_SOCKET"
    assert socket_path("unix:///run/user/1000/podman/podman.sock") == (
        "/run/user/1000/podman/podman.sock"
    )
    with pytest.raises(ValueError):
        socket_path("tcp://127.0.0.1:2375")


def test_configured_socket_that_is_missing_fails_rather_than_looking_absent(socket_dir):
    collector = ContainersCollector(str(socket_dir / "gone.sock"), candidates=())
    with pytest.raises(OSError):
        collector.snapshot()
    assert success(registry_for(collector)) == 0


def test_refused_socket_fails_the_collector(socket_dir):
    path = str(socket_dir / "refused.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)  # bound, never listening: connect() is refused
        collector = ContainersCollector(candidates=[path])
        with pytest.raises(ConnectionRefusedError):
            collector.snapshot()
        registry = registry_for(collector)
        assert success(registry) == 0
        assert registry.get_sample_value("homelab_agent_container_engine_present") is None


def test_silent_engine_times_out_and_fails_the_collector(socket_dir):
    path = str(socket_dir / "silent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)
        sock.listen(4)  # accepts into the backlog, never answers
        collector = ContainersCollector(candidates=[path], timeout=0.2)
        with pytest.raises(TimeoutError):
            collector.snapshot()


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b'{"message": "server error"}', 500, OSError),
        (b"[{", 200, ValueError),
        (b"\xff\xfe not json", 200, ValueError),
        (b'{"message": "page not found"}', 404, OSError),
        (b'{"Names": ["/a"]}', 200, ValueError),  # JSON, but not a list
    ],
)
def test_bad_answers_fail_the_collector(engine, body, status, error):
    collector = ContainersCollector(candidates=[engine(body, status).path])
    with pytest.raises(error):
        collector.snapshot()
    assert success(registry_for(collector)) == 0


def test_not_http_at_all_fails_with_an_oserror(socket_dir):
    path = str(socket_dir / "garbage.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def answer_garbage():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        with pytest.raises(OSError):
            ContainersCollector(candidates=[path]).snapshot()
    finally:
        thread.join()
        listener.close()


HOSTILE = [
    docker("ok", "alpine", "running", "Up"),
    docker("evil\nname", "alpine", "running", "Up"),
    docker("evil\nname 2", "alpine", "running", "Up"),
    docker("sp ace", "alpine", "running", "Up"),
    docker("-dash-first", "alpine", "running", "Up"),
    docker("x" * 129, "alpine", "running", "Up"),
    docker("ünïcode", "alpine", "running", "Up"),
    docker("huge", "i" * 100_000, "running", "Up"),
    docker("nul", 'a\x00b\nc"d\\e', "running", "Up"),
    docker("weird", "alpine", "zombie", "Up"),
    docker("nostate", "alpine", None, "Up"),
    docker("ok", "alpine", "exited", "Exited (1) now"),  # duplicate name: first one wins
    docker("bigexit", "alpine", "exited", "Exited (4294967295) now"),
    docker("boolrestarts", "alpine", "running", "Up", RestartCount=True),
    docker("negrestarts", "alpine", "running", "Up", RestartCount=-5),
    docker("badhealth", "alpine", "running", "Up", Health={"Status": "<script>"}),
    docker("noimage", None, "running", "Up"),
    {**docker("nonames", "alpine", "running", "Up"), "Names": None},
    {**docker("linked", "alpine", "running", "Up"), "Names": ["/web/linked", "/linked"]},
    {**docker("podman", "alpine", "stopped", "Exited (2) now")},
    "not an object",
    None,
    42,
]


def test_hostile_values_are_cleaned_or_skipped_and_never_break_the_exposition(engine):
    server = engine(HOSTILE)
    collector = ContainersCollector(candidates=[server.path])
    containers = collector.snapshot()
    assert_wire_contract(containers)
    by_name = {c["name"]: c for c in containers}
    assert set(by_name) == {"ok", "huge", "nul", "bigexit", "boolrestarts", "negrestarts",
                            "badhealth", "noimage", "linked", "podman"}  # fmt: skip
    assert by_name["ok"]["state"] == "running"
    assert by_name["huge"]["image"] == "i" * 255
    assert by_name["nul"]["image"] == 'abc"d\\e'
    assert by_name["bigexit"]["exit_code"] is None
    assert by_name["boolrestarts"]["restart_count"] is None
    assert by_name["negrestarts"]["restart_count"] is None
    assert by_name["badhealth"]["health"] is None
    assert by_name["noimage"]["image"] == ""
    assert (by_name["podman"]["state"], by_name["podman"]["exit_code"]) == ("exited", 2)
    text = generate_latest(registry_for(collector)).decode()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    names = {s.labels["name"] for s in parsed["homelab_agent_container_failed"].samples}
    assert names == set(by_name)
    # One line per series: no label value broke a line.
    failed_lines = [
        line for line in text.splitlines() if line.startswith("homelab_agent_container_failed{")
    ]
    assert len(failed_lines) == len(by_name)


def test_ten_thousand_containers_are_capped_keeping_every_failed_one(engine):
    crowd = [docker(f"c{i:05d}", "alpine", "running", "Up") for i in range(10_000)]
    crowd[7_777] = docker("c07777", "alpine", "exited", "Exited (3) now")
    crowd[9_999] = docker("c09999", "alpine", "dead", "Dead")
    collector = ContainersCollector(candidates=[engine(crowd).path])
    containers = collector.snapshot()
    assert len(containers) == MAX_CONTAINERS
    assert_wire_contract(containers)
    assert [c["name"] for c in containers[:2]] == ["c07777", "c09999"]
    registry = registry_for(collector)
    assert success(registry) == 1
    text = generate_latest(registry).decode()
    samples = [
        s
        for f in text_string_to_metric_families(text)
        if f.name == "homelab_agent_container_state"
        for s in f.samples
    ]
    assert len(samples) == MAX_CONTAINERS * len(WIRE_STATES)


def test_empty_engine_is_present_with_no_containers(engine):
    collector = ContainersCollector(candidates=[engine([]).path])
    assert collector.snapshot() == []
    registry = registry_for(collector)
    assert registry.get_sample_value("homelab_agent_container_engine_present") == 1
    assert count_states([]) == (0, 0)


def test_container_metrics_pass_promtool(engine, promtool):
    registry = registry_for(ContainersCollector(candidates=[engine().path]))
    result = subprocess.run(
        [promtool, "check", "metrics"], input=generate_latest(registry), capture_output=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
