"""Containers from the Docker Engine API (Podman's compat API answers the same) on its socket.

One ``GET /containers/json?all=1`` per scrape over the engine's unix socket, with the
standard library only. Without a socket the collector is *absent*, not failed: it exports
only ``homelab_agent_container_engine_present 0``. A socket that refuses, times out or
answers badly fails the collector (``homelab_agent_collector_success{collector="containers"}
0``). The heartbeat sends the same list (``snapshot()``) and counts (``count_states``).

======================================================  ======================================
metric                                                  meaning
======================================================  ======================================
``homelab_agent_container_engine_present``              1 when an engine socket is present
``homelab_agent_container_state{name,image,state}``     one series per Docker state, 1 for the
                                                        current one (as node_systemd_unit_state)
``homelab_agent_container_health{name,image,health}``   one series per health value (starting,
                                                        healthy, unhealthy), 1 for the current
                                                        one; only containers with a healthcheck
``homelab_agent_container_failed{name,image}``          1 when the container is failed: dead,
                                                        restarting, unhealthy, or exited non-zero
``homelab_agent_container_exit_code{name,image}``       last exit code, when the engine says it
``homelab_agent_container_restarts_total{name,image}``  counter: restarts, when the engine says
                                                        (Podman; Docker's list does not carry it)
======================================================  ======================================

At most ``MAX_CONTAINERS`` are reported, failed ones first, so a host with thousands of
containers cannot blow up the scrape or the heartbeat and never hides a failed one.
"""

import http.client
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from exporter_agent.metrics import CounterMetricFamily, GaugeMetricFamily, Metric
from exporter_agent.options import Option

log = logging.getLogger(__name__)

DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/podman/podman.sock")
STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
# Podman's own state words, for an engine that does not translate them to Docker's.
STATE_ALIASES = {"configured": "created", "initialized": "created", "stopped": "exited"}
HEALTH = ("starting", "healthy", "unhealthy")
MAX_CONTAINERS = 500
MAX_IMAGE = 255
MAX_BODY = 64 * 1024 * 1024  # ~20,000 compose containers with their labels
MAX_EXIT_CODE = 1000
MAX_RESTARTS = 1_000_000_000
TIMEOUT_SECONDS = 2.0
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)
_HEALTH_TEXT = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXIT_TEXT = re.compile(r"(?:Exited|Restarting) \((-?\d{1,10})\)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
LABELS = ("name", "image")


def socket_path(text: str) -> str:
    """Converter for the socket option: an absolute path; a DOCKER_HOST-style ``unix://`` is ok."""
    path = text.removeprefix("unix://")
    if not path.startswith("/"):
        raise ValueError("expected an absolute path to a unix socket")
    return path


# This collector's settings; the COLLECTORS table hands them to config's parser.
SOCKET = Option(
    dest="containers_socket",
    flag="--collector.containers.socket",
    env="HOMELAB_CONTAINERS_SOCKET",
    default=None,
    help="Docker Engine API unix socket (Podman's works too); default "
    + ", else ".join(DEFAULT_SOCKETS)
    + ", the first that exists",
    convert=socket_path,
    metavar="PATH",
)
OPTIONS = (SOCKET,)


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket (the engine API is HTTP/1.1 on it)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def fetch(path: str, timeout: float = TIMEOUT_SECONDS) -> Any:
    """GET /containers/json?all=1 on the socket at ``path`` and return the decoded JSON.

    Raises OSError (connection, timeout, HTTP status, malformed HTTP) or ValueError (body too
    large, not JSON) so the exporter marks the collector failed.
    """
    deadline = time.monotonic() + timeout
    conn = _UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", "/containers/json?all=1", headers={"Accept": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            raise OSError(f"container engine at {path} answered HTTP {response.status}")
        chunks, size = [], 0
        # A total deadline, not only a per-read one: a trickling answer must not hold a scrape.
        while chunk := response.read(1 << 20):
            size += len(chunk)
            if size > MAX_BODY:
                raise ValueError(f"container list from {path} is larger than {MAX_BODY} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"container engine at {path} did not answer in {timeout} s")
            chunks.append(chunk)
    except http.client.HTTPException as exc:
        raise OSError(f"malformed HTTP answer from {path}: {exc!r}") from exc
    finally:
        conn.close()
    return json.loads(b"".join(chunks))


def _name(names: Any) -> str | None:
    # Legacy links add "/other/alias" names; the container's own name has no inner "/".
    if not isinstance(names, list):
        return None
    for raw in names:
        if isinstance(raw, str):
            name = raw.removeprefix("/")
            if "/" not in name:
                return name if NAME.fullmatch(name) else None
    return None


def _health(raw: dict[str, Any], status: str) -> str | None:
    health = raw.get("Health")
    if isinstance(health, dict):
        value = health.get("Status")
        if value in HEALTH:
            return str(value)
        if value in ("none", ""):
            return None
    found = _HEALTH_TEXT.search(status)
    if found is None:
        return None
    return "starting" if found.group(1) == "health: starting" else found.group(1)


def _exit_code(raw: dict[str, Any], state: str, status: str) -> int | None:
    if state not in ("exited", "restarting"):
        return None
    found = _EXIT_TEXT.match(status)
    code: Any = int(found.group(1)) if found else raw.get("ExitCode")
    if isinstance(code, int) and not isinstance(code, bool) and abs(code) <= MAX_EXIT_CODE:
        return code
    return None


def _restart_count(raw: dict[str, Any]) -> int | None:
    for key in ("RestartCount", "Restarts"):
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RESTARTS:
            return value
    return None


def parse_container(raw: Any) -> dict[str, Any] | None:
    """One engine list entry as the wire contract's container dict, or None to skip it."""
    if not isinstance(raw, dict):
        return None
    name = _name(raw.get("Names"))
    state = raw.get("State")
    if name is None or not isinstance(state, str):
        return None
    state = STATE_ALIASES.get(state.lower(), state.lower())
    if state not in STATES:
        return None
    status = raw.get("Status")
    status = status if isinstance(status, str) else ""
    image = raw.get("Image")
    # A control character (NUL above all) in free text makes control refuse the heartbeat.
    image = _CONTROL.sub("", image)[:MAX_IMAGE] if isinstance(image, str) else ""
    return {
        "name": name,
        "image": image,
        "state": state,
        "health": _health(raw, status),
        "exit_code": _exit_code(raw, state, status),
        "restart_count": _restart_count(raw),
    }


def is_failed(container: dict[str, Any]) -> bool:
    """The wire contract's FAILED rule: dead, restarting, unhealthy, or exited non-zero."""
    state = container["state"]
    if state in ("dead", "restarting") or container["health"] == "unhealthy":
        return True
    return state == "exited" and container["exit_code"] not in (None, 0)


def count_states(containers: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """(running, failed) for the heartbeat; an unhealthy running container counts in both."""
    running = failed = 0
    for container in containers:
        running += container["state"] == "running"
        failed += is_failed(container)
    return running, failed


def parse_containers(data: Any) -> list[dict[str, Any]]:
    """The engine's whole answer as wire-contract dicts: cleaned, unique, failed first, capped."""
    if not isinstance(data, list):
        raise ValueError("container engine answered JSON that is not a list")
    seen: dict[str, dict[str, Any]] = {}
    skipped = 0
    for raw in data:
        container = parse_container(raw)
        if container is None or container["name"] in seen:
            skipped += 1
            continue
        seen[container["name"]] = container
    if skipped:
        log.debug("skipped %d container entries that break the wire contract", skipped)
    ordered = sorted(seen.values(), key=lambda c: (not is_failed(c), c["name"]))
    return ordered[:MAX_CONTAINERS]


class ContainersCollector:
    """Exports the ``homelab_agent_container_*`` families (module docstring) from the engine."""

    def __init__(
        self,
        socket_path: str | None = None,
        candidates: Sequence[str] = DEFAULT_SOCKETS,
        timeout: float = TIMEOUT_SECONDS,
        exists: Callable[[str], bool] = os.path.exists,
    ) -> None:
        self._configured = socket_path
        self._candidates = tuple(candidates)
        self._timeout = timeout
        self._exists = exists

    def socket(self) -> str | None:
        """The socket to ask: the configured one, else the first candidate that exists."""
        if self._configured:
            return self._configured
        # Looked up on every call, so an engine installed after the agent started is found.
        return next((path for path in self._candidates if self._exists(path)), None)

    def snapshot(self) -> list[dict[str, Any]] | None:
        """The containers as the heartbeat sends them; None without an engine socket.

        Raises OSError/ValueError when the socket is there but the engine fails to answer.
        """
        path = self.socket()
        if path is None:
            return None
        return parse_containers(fetch(path, self._timeout))

    def collect(self) -> Iterator[Metric]:
        """Yield the container families; only engine_present 0 without a socket."""
        containers = self.snapshot()
        yield GaugeMetricFamily(
            "homelab_agent_container_engine_present",
            "Whether a container engine socket (Docker or Podman) is present (1) or not (0).",
            value=0.0 if containers is None else 1.0,
        )
        if containers is not None:
            yield from container_families(containers)


def container_families(containers: Sequence[dict[str, Any]]) -> list[Metric]:
    """The per-container families for already parsed (wire-contract) containers."""
    state = GaugeMetricFamily(
        "homelab_agent_container_state",
        "Container state as the engine reports it, 1 for the current state.",
        labels=(*LABELS, "state"),
    )
    health = GaugeMetricFamily(
        "homelab_agent_container_health",
        "Container healthcheck status, 1 for the current one; only containers with a check.",
        labels=(*LABELS, "health"),
    )
    failed = GaugeMetricFamily(
        "homelab_agent_container_failed",
        "Whether the container is dead, restarting, unhealthy or exited non-zero (1) or not (0).",
        labels=LABELS,
    )
    exit_code = GaugeMetricFamily(
        "homelab_agent_container_exit_code",
        "Exit code of the container's last run, when the engine reports it.",
        labels=LABELS,
    )
    # A counter like kube-state-metrics' restarts_total (promtool rejects a gauge "_count").
    restarts = CounterMetricFamily(
        "homelab_agent_container_restarts",
        "Times the engine restarted the container, when the engine reports it.",
        labels=LABELS,
    )
    for container in containers:
        key = (container["name"], container["image"])
        current = container["state"]
        for value in STATES:
            state.add_metric((*key, value), 1.0 if value == current else 0.0)
        if container["health"] is not None:
            for value in HEALTH:
                health.add_metric((*key, value), 1.0 if value == container["health"] else 0.0)
        failed.add_metric(key, 1.0 if is_failed(container) else 0.0)
        if container["exit_code"] is not None:
            exit_code.add_metric(key, float(container["exit_code"]))
        if container["restart_count"] is not None:
            restarts.add_metric(key, float(container["restart_count"]))
    return [state, health, failed, exit_code, restarts]
