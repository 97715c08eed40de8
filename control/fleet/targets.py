"""Prometheus service discovery: which agents to scrape, and the labels to give them.

One http_sd target group per server that has reported a `metrics_port` and whose address is
known (its `ip_address`, else the address its heartbeats come from). Paused servers stay
targets; offline ones too (so `HostDown` can fire); a deleted server is simply gone from the list.

Target labels are only what identifies the box and rarely changes: `server_id`, `hostname` and
its tags. A target label is copied onto every series scraped from the box, so a label that
changes at run time (status, pause, display name) would start a new series for every metric of
that box at each change. Those live on control's own `/metrics` instead
(`homelab_server_status`, `homelab_server_paused`, `homelab_server_info`), and rules join them
`on (server_id)`.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, cast

from control.models import Server


def server_tags(server: Server) -> list[str]:
    """The server's tags (stored as a JSON list; NULL means none)."""
    return json.loads(server.tags) if server.tags else []


def target_address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets and an IPv4-mapped one unwrapped."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"{address.ipv4_mapped}:{port}"
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def target_labels(server: Server) -> dict[str, str]:
    """The labels Prometheus attaches to every series scraped from the server's agent.

    Stable identity only (see the module docstring): status, pause and display name are
    exported as metrics of control, not as labels here.
    """
    labels = {"server_id": server.id, "hostname": server.hostname}
    for tag in server_tags(server):
        labels[f"tag_{tag}"] = "true"
    return labels


def http_sd_groups() -> list[dict[str, Any]]:
    """The http_sd document: `[{"targets": ["host:port"], "labels": {...}}, ...]` by server id."""
    query = Server.select().where(Server.metrics_port.is_null(False)).order_by(Server.id)
    groups = []
    for server in query:
        host = server.ip_address or server.last_seen_address
        if host:
            groups.append(
                {
                    # Never None here: the query keeps only servers with a metrics_port.
                    "targets": [target_address(host, cast(int, server.metrics_port))],
                    "labels": target_labels(server),
                }
            )
    return groups
