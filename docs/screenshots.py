"""`make screenshots`: PNGs of the console's fleet, server and approvals pages, from a demo fleet.

Seeds a throwaway SQLite database with a made-up homelab (a dozen boxes in every state of
health, a day of minute heartbeats for one of them, containers, services, packages, actions
waiting and decided), serves it with `homelab-control serve --no-scheduler` (so nothing ages
while the pictures are taken) and photographs the pages with Debian's chromium through
Playwright. Nothing is fetched from the network.

    .venv/bin/python docs/screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control.app import create_app  # noqa: E402
from control.config import load_settings  # noqa: E402
from control.db import db  # noqa: E402
from control.fleet import events  # noqa: E402
from control.models import Action, AuditEntry, MetricsSample, Server, utcnow  # noqa: E402

OPERATOR_KEY = "hlc_screenshot-operator-key"
# id, display name, role, tags, health, reasons, status, cpu, memory, disk, °C, running, failed
FLEET = [
    ("nas-1", "NAS (basement)", "storage", ["prod"], "failed",
     ["temperature 87 °C ≥ 85", "container immich exited (1)"], "online", 71, 64, 82, 87, 9, 1),
    ("pve-2", "Proxmox 2", "hypervisor", ["prod"], "offline",
     ["no heartbeat for 6 min"], "offline", None, None, None, None, None, None),
    ("db-1", None, "database", ["prod"], "degraded", ["disk / 93 % ≥ 90"],
     "online", 34, 71, 93, 52, 2, 0),
    ("media", "Media server", "media", ["lab"], "degraded",
     ["service jellyfin.service inactive"], "online", 18, 48, 77, 61, 4, 0),
    ("pi-garden", "Pi in the garden shed", "sensor", ["iot"], "unknown", [], "unknown",
     None, None, None, None, None, None),
    ("pve-1", "Proxmox 1", "hypervisor", ["prod"], "healthy", [], "online", 22, 58, 41, 49, 0, 0),
    ("router", "OPNsense", "network", ["prod"], "healthy", [], "online", 6, 31, 12, 45, 0, 0),
    ("dns-1", "Pi-hole", "network", ["prod"], "healthy", [], "online", 3, 27, 35, 41, 2, 0),
    ("ha", "Home Assistant", "automation", ["iot"], "healthy", [], "online", 9, 44, 29, 47, 6, 0),
    ("backup", "Offsite backup", "storage", ["offsite"], "healthy", [], "online",
     12, 22, 67, 38, 1, 0),
    ("dev-box", "Dev workstation", "dev", ["lab"], "healthy", [], "online", 41, 62, 55, 58, 12, 0),
]  # fmt: skip


def seed(data_dir: Path) -> None:
    """Write the demo fleet into the SQLite database in `data_dir`."""
    create_app(load_settings(environ={}, data_dir=str(data_dir), operator_key=OPERATOR_KEY))
    now = utcnow()
    with db.atomic():
        for (server_id, display, role, tags, health, reasons, status, cpu, memory, disk,
             temperature, running, failed) in FLEET:  # fmt: skip
            seen = now - dt.timedelta(seconds=40 if status == "online" else 400)
            Server.create(
                id=server_id,
                hostname=f"{server_id}.home.arpa",
                display_name=display,
                role=role,
                tags=json.dumps(tags),
                health=health,
                health_reasons=json.dumps(reasons) if reasons else None,
                status=status,
                tdp_watts=65,
                os_distribution="Debian GNU/Linux",
                os_version="12",
                kernel_version="6.1.0-28-amd64",
                architecture="x86_64",
                agent_version="0.1.0",
                last_seen=seen if status != "unknown" else None,
                is_paused=server_id == "nas-1",
                paused_at=now - dt.timedelta(minutes=20) if server_id == "nas-1" else None,
            )
            if cpu is None:
                continue
            sample = MetricsSample.create(
                server=server_id, timestamp=seen, received_at=seen, cpu_percent=cpu,
                memory_percent=memory, disk_percent=disk, temperature=temperature,
                containers_running=running, containers_failed=failed, memory_total_mb=16384,
                memory_used_mb=int(16384 * memory / 100), disk_total_gb=3700.0,
                disk_used_gb=37.0 * disk, load_1m=1.2, load_5m=1.0, load_15m=0.9,
                uptime_seconds=1_300_000,
            )  # fmt: skip
            Server.update(latest_sample_id=sample.id).where(Server.id == server_id).execute()
        _nas_details(now)


def _nas_details(now: dt.datetime) -> None:
    """A day of minute heartbeats, the device-health facts, actions and events of nas-1."""
    rows = []
    for minute in range(1, 24 * 60):
        at = now - dt.timedelta(minutes=minute)
        if 600 < minute < 640:
            continue  # forty minutes offline last night: the chart shows the gap
        wave = math.sin(minute / 90)
        rows.append({
            "server": "nas-1", "timestamp": at, "received_at": at,
            "cpu_percent": max(0.0, 35 + 25 * wave + 10 * math.sin(minute / 7)),
            "memory_percent": 60 + 4 * math.sin(minute / 300),
            "disk_percent": 82 - minute / 1440,
            "temperature": 70 + 12 * max(0.0, wave) + (10 if minute < 30 else 0),
        })  # fmt: skip
    MetricsSample.insert_many(rows).execute()
    containers = [
        {"name": "immich", "image": "ghcr.io/immich-app/immich-server:v1.121",
         "state": "exited", "health": None, "exit_code": 1, "restart_count": 3},
        {"name": "samba", "image": "dperson/samba", "state": "running", "health": "healthy",
         "exit_code": 0, "restart_count": 0},
        {"name": "syncthing", "image": "syncthing/syncthing:1.28", "state": "running",
         "health": None, "exit_code": 0, "restart_count": 0},
    ]  # fmt: skip
    Server.update(
        containers=json.dumps(containers),
        services=json.dumps([
            {"name": "zfs-zed.service", "active_state": "active", "sub_state": "running"},
            {"name": "smartd.service", "active_state": "active", "sub_state": "running"},
        ]),
        packages=json.dumps({"upgradable": 14, "security": 3, "reboot_required": True}),
        current_commit_hash="1a2b3c4d",
    ).where(Server.id == "nas-1").execute()  # fmt: skip
    asked = now - dt.timedelta(minutes=4)
    for action_type, params, command in (
        ("restart_container", {"name": "immich"}, "docker restart -- immich"),
        ("reboot", {}, "systemctl --no-block reboot"),
    ):
        Action.create(server_id="nas-1", action_type=action_type, parameters=json.dumps(params),
                      command=command, status="pending", created_by="alertmanager",
                      created_at=asked)  # fmt: skip
    Action.create(
        server_id="db-1", action_type="clear_logs", command="journalctl --vacuum-time=7d",
        status="completed", created_by="bootstrap-operator", created_at=now - dt.timedelta(hours=2),
        approved_by="auto", approved_at=now - dt.timedelta(hours=2), exit_code=0,
        stdout="Vacuuming done, freed 1.9G of archived journals from /var/log/journal.",
        completed_at=now - dt.timedelta(hours=2),
    )  # fmt: skip
    Action.create(
        server_id="media", action_type="upgrade_packages", command="apt-get -y upgrade",
        status="rejected", created_by="bootstrap-operator", created_at=now - dt.timedelta(hours=5),
        rejected_by="alice", rejected_at=now - dt.timedelta(hours=5),
        rejection_reason="Not during movie night; Sunday morning instead.",
    )  # fmt: skip
    AuditEntry.create(actor="dispatcher", source="action", server_id="db-1",
                      action_type="clear_logs", argv='["journalctl", "--vacuum-time=7d"]',
                      allowed=True, result="completed", exit_code=0, duration_ms=812)  # fmt: skip
    events.record("health_changed", "nas-1 health degraded → failed (temperature 87 °C ≥ 85)",
                  server_id="nas-1", severity="error")  # fmt: skip
    events.record("server_paused", "server nas-1 paused (maintenance mode) by alice",
                  server_id="nas-1")  # fmt: skip


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(data_dir: Path, port: int) -> subprocess.Popen:
    """`homelab-control serve --no-scheduler` on the demo database, once it answers /health."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    env.update(HOMELAB_DATA_DIR=str(data_dir), HOMELAB_OPERATOR_KEY=OPERATOR_KEY)
    process = subprocess.Popen(
        [sys.executable, "-m", "control.cli", "serve", "--no-scheduler", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    sys.exit("control did not start")


def photograph(url: str, out: Path, chromium: str) -> list[Path]:
    """Sign in and save the fleet, server and approvals pages (and the fleet on a phone)."""
    from playwright.sync_api import sync_playwright

    shots = [
        ("console-fleet.png", "/ui/", {"width": 1280, "height": 800}),
        ("console-server.png", "/ui/servers/nas-1", {"width": 1280, "height": 800}),
        ("console-approvals.png", "/ui/approvals", {"width": 1280, "height": 800}),
        ("console-fleet-phone.png", "/ui/", {"width": 390, "height": 844}),
    ]
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for name, path, viewport in shots:
            context = browser.new_context(viewport=viewport, color_scheme="light")
            page = context.new_page()
            page.goto(url + "/ui/login")
            page.get_by_label("API key").fill(OPERATOR_KEY)
            page.get_by_role("button", name="Sign in").click()
            page.goto(url + path)
            target = out / name
            page.screenshot(path=str(target), full_page=True)
            written.append(target)
            context.close()
        browser.close()
    return written


def main() -> int:
    """Seed, serve, photograph; print the files written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    if not os.access(args.chromium, os.X_OK):
        sys.exit(f"{args.chromium} not found: install Debian's chromium (or pass --chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="homelab-screenshots-") as tmp:
        data_dir = Path(tmp)
        seed(data_dir)
        db.close()
        port = free_port()
        process = serve(data_dir, port)
        try:
            for path in photograph(f"http://127.0.0.1:{port}", args.out, args.chromium):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        finally:
            process.terminate()
            process.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
