"""The heartbeats the load generators send, shared by the benchmarks.

`heartbeat_body` is seed 001's (metrics and os_info); with `device_health=True` it is the full
seed-002 heartbeat a new agent on a Docker host sends: temperature and container counts in
`metrics`, 20 containers, 5 watched services, packages and a commit hash (`DEVICE_HEALTH`).
"""

from __future__ import annotations

import json
import time

# 20 containers as a compose host lists them: 18 running (4 with a healthcheck), a finished
# one-shot job (exited 0, not failed) and one paused. The same every heartbeat, as on a steady
# box: control then writes the stored JSON once, not per heartbeat.
_IMAGES = ("nginx:1.27", "postgres:16", "redis:7.4-alpine", "ghcr.io/example/app:2.3.1")
CONTAINERS = [
    {
        "name": f"app-{index:02d}",
        "image": _IMAGES[index % len(_IMAGES)],
        "state": "running",
        "health": "healthy" if index % 5 == 0 else None,
        "exit_code": 0,
        "restart_count": index % 3,
    }
    for index in range(18)
] + [
    {
        "name": "migrate",
        "image": "ghcr.io/example/app:2.3.1",
        "state": "exited",
        "health": None,
        "exit_code": 0,
        "restart_count": 0,
    },
    {
        "name": "backup",
        "image": "restic/restic:0.17",
        "state": "paused",
        "health": None,
        "exit_code": 0,
        "restart_count": 0,
    },
]
SERVICES = [
    {"name": "nginx.service", "active_state": "active", "sub_state": "running"},
    {"name": "docker.service", "active_state": "active", "sub_state": "running"},
    {"name": "ssh.service", "active_state": "active", "sub_state": "running"},
    {"name": "cron.service", "active_state": "active", "sub_state": "running"},
    {"name": "backup.timer", "active_state": "active", "sub_state": "waiting"},
]
PACKAGES = {"upgradable": 12, "security": 2, "reboot_required": False}
COMMIT_HASH = "3f9c2a7e5b8d41f6a0c9e2b7d4f1a8c3e6b9d0f2"
# The seed-002 fields beside `metrics`, the same in every heartbeat.
DEVICE_HEALTH = {
    "containers": CONTAINERS,
    "services": SERVICES,
    "packages": PACKAGES,
    "commit_hash": COMMIT_HASH,
}
# The seed-002 metrics: counts from CONTAINERS; the temperature varies (see `temperature`).
CONTAINERS_RUNNING = sum(1 for c in CONTAINERS if c["state"] == "running")


def temperature(counter: int) -> float:
    """A plausible hottest-sensor reading, 40.0-59.9 °C: below every health threshold."""
    return 40 + (counter % 200) / 10


def heartbeat_body(server_id: str, counter: int, device_health: bool = False) -> bytes:
    """The heartbeat one simulated agent sends: metrics and os_info, as a real agent would;
    with `device_health`, seed 002's fields too."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    metrics = {
        "cpu_percent": counter % 100 + 0.5,
        "memory_percent": 45.2,
        "memory_total_mb": 16384,
        "memory_used_mb": 7400,
        "disk_percent": 61.0,
        "disk_total_gb": 500.0,
        "disk_used_gb": 305.0,
        "network_rx_bytes": counter * 1500,
        "network_tx_bytes": counter * 900,
        "load_1m": 0.5,
        "load_5m": 0.7,
        "load_15m": 0.9,
        "uptime_seconds": 86400 + counter,
    }
    body = {
        "server_id": server_id,
        "hostname": f"{server_id}.lan",
        "timestamp": stamp,
        "agent_version": "0.1.0",
        "metrics_port": 9100,
        "os_info": {
            "distribution": "Debian GNU/Linux",
            "version": "12",
            "kernel": "6.1.0-18-amd64",
            "architecture": "x86_64",
        },
        "metrics": metrics,
    }
    if device_health:
        metrics["temperature"] = temperature(counter)
        metrics["containers_running"] = CONTAINERS_RUNNING
        metrics["containers_failed"] = 0
        body.update(DEVICE_HEALTH)
    return json.dumps(body).encode()
