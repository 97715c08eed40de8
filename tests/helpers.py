"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest


def require_binary(path: str | None, what: str) -> str:
    """Return `path` if it is an executable; otherwise fail the test, naming what to install.

    Never a skip: a test that did not run proves nothing. `.ci/run` lists (and installs) the
    Debian packages of every binary the suite needs; `make test-fast` needs none of them.
    """
    found = path if path and os.access(path, os.X_OK) else (shutil.which(path) if path else None)
    if found:
        return found
    pytest.fail(
        f"{what} is not installed ({path or 'not found'}): install the packages .ci/run lists, "
        "or run `make test-fast` (the lanes that need no external binary)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.05):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`.

    A generous deadline for slow machines, not a performance assertion.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


@dataclass(frozen=True)
class AuthHeaders:
    """Request headers carrying each scope's bootstrap key."""

    operator_key: str
    agent_key: str
    viewer_key: str

    @property
    def operator(self) -> dict[str, str]:
        return {"X-API-Key": self.operator_key}

    @property
    def agent(self) -> dict[str, str]:
        return {"X-API-Key": self.agent_key}

    @property
    def viewer(self) -> dict[str, str]:
        return {"X-API-Key": self.viewer_key}

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


HEARTBEAT_URL = "/api/v1/agents/heartbeat"


def send_heartbeat(client, auth: AuthHeaders, body: dict, headers: dict | None = None, **options):
    """POST a heartbeat as a real agent does: with the shared agent key until the server is
    enrolled, then with the key bound to it that the enrolling answer carried.

    The keys are remembered on the test client, so each test starts unenrolled. Explicit
    `headers` are sent as given (and nothing is remembered).
    """
    if headers is not None:
        return client.post(HEARTBEAT_URL, json=body, headers=headers, **options)
    enrolled = client.__dict__.setdefault("enrolled_agent_keys", {})
    server_id = body.get("server_id") if isinstance(body, dict) else None
    key = enrolled.get(server_id, auth.agent_key)
    response = client.post(HEARTBEAT_URL, json=body, headers={"X-API-Key": key}, **options)
    minted = (response.get_json(silent=True) or {}).get("agent_key")
    if response.status_code == 200 and minted:
        enrolled[server_id] = minted
    return response


# The heartbeat `metrics` field names (seed 001): the contract between agent and control, which
# never import each other (tests/test_contract_heartbeat_metrics.py checks both against it).
HEARTBEAT_METRIC_FIELDS = (
    "cpu_percent",
    "memory_percent",
    "memory_total_mb",
    "memory_used_mb",
    "disk_percent",
    "disk_total_gb",
    "disk_used_gb",
    "network_rx_bytes",
    "network_tx_bytes",
    "load_1m",
    "load_5m",
    "load_15m",
    "uptime_seconds",
)


def api_operations(client) -> list[tuple[str, str]]:
    """Every (method, path) of the app's OpenAPI document, path parameters filled with `1`."""
    spec = client.get("/api/openapi.json").json
    return [
        (method, re.sub(r"\{[^}]+\}", "1", path))
        for path, methods in spec["paths"].items()
        for method in methods
        if method in {"get", "post", "put", "delete", "patch"}
    ]


def heartbeat(server_id: str = "pi-1", **fields) -> dict:
    """A minimal valid heartbeat body for `server_id`, plus `fields` (seed 001's three keys)."""
    return {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": "2026-01-18T10:30:00Z",
        **fields,
    }


def container(name: str = "web", state: str = "running", **fields) -> dict:
    """One item of a heartbeat's `containers` (seed 002's wire contract, all six keys)."""
    return {
        "name": name,
        "image": "nginx:1.27",
        "state": state,
        "health": None,
        "exit_code": None,
        "restart_count": 0,
        **fields,
    }


def service(name: str = "nginx.service", active_state: str = "active", **fields) -> dict:
    """One item of a heartbeat's `services` (a watched systemd unit)."""
    sub_state = {"active": "running", "failed": "failed"}.get(active_state, "dead")
    return {"name": name, "active_state": active_state, "sub_state": sub_state, **fields}
