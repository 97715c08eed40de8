"""The seed-001 heartbeat the load generators send, shared by the benchmarks."""

from __future__ import annotations

import json
import time


def heartbeat_body(server_id: str, counter: int) -> bytes:
    """The heartbeat one simulated agent sends: metrics and os_info, as a real agent would."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps(
        {
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
            "metrics": {
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
            },
        }
    ).encode()
