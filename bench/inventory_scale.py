"""Inventory scale: 10,000 servers with metrics history, on SQLite and PostgreSQL.

Measures, in-process against the real app and domain functions:

- `GET /api/v1/servers` (all 10,000, each with `latest_metrics` and seed 002's inventory and
  health columns filled as on a real fleet: role, segment, tags, metadata, packages, commit,
  health and, for one server in ten, its reasons): p50/p95 and SQL statements per request
  (goal p95 <= 100 ms, one query, no N+1); `--profile` adds cProfile's top functions of
  the list requests. The first request of the process, whose render cache is cold
  (control/api/server_list_cache.py), is shown apart; the timed ones reuse it. `--churn N`:
  N servers heartbeat (the real ingest path, untimed) before each timed request, as between
  two polls of a UI; the last listing is checked byte for byte against a fresh render;
- the offline tick, `control.fleet.offline.mark_offline` (goal <= 50 ms): a quiet tick (nothing to
  change) and one that takes 1% of the fleet offline;
- the retention prune, `control.fleet.retention.prune_history`,
  deleting a day of samples for every server;
- storage per server-month at 60 s heartbeats (goal <= 2 MB): bytes per sample, measured on a
  day of samples for a sample of servers (full heartbeat-sized rows, indexes included), times the
  rows a server keeps for a month after hourly thinning (1,440 + 29 x 24; 43,200 unthinned is
  shown beside it).

    .venv/bin/python bench/inventory_scale.py [--servers 10000] [--history 10]
        [--databases sqlite,postgres] [--runs 20] [--list-only] [--churn N] [--profile]
        [--smoke]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import logging
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import peewee

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from payloads import CONTAINERS, SERVICES  # bench/, the script's own directory

from control.api.server_schemas import server_rows_to_json
from control.app import create_app
from control.config import load_settings
from control.db import db
from control.fleet import heartbeats, offline, retention, servers
from control.jsonprovider import OPTIONS
from control.models import METRIC_FIELDS, MetricsSample, Server, ServerStatus, utcnow
from tests.postgres import PostgresCluster

KEY = "bench-viewer-key"
GOALS = {"list_p95_ms": 100.0, "offline_ms": 50.0, "mb_per_server_month": 2.0}
CHUNK = 500


class StatementCounter(logging.Handler):
    """Counts the SQL statements peewee runs (it logs each one at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def sample_row(server_id: str, received: dt.datetime) -> dict:
    """One heartbeat's metrics row, every field filled (the largest a sample gets)."""
    row = {f: round(random.uniform(0, 100), 1) for f in METRIC_FIELDS}
    row.update(
        memory_total_mb=16384,
        memory_used_mb=random.randint(1000, 16000),
        network_rx_bytes=random.randint(10**9, 10**12),
        network_tx_bytes=random.randint(10**9, 10**12),
        uptime_seconds=random.randint(10**4, 10**7),
    )
    return {"server": server_id, "timestamp": received, "received_at": received, **row}


CONTAINERS_JSON, SERVICES_JSON = json.dumps(CONTAINERS), json.dumps(SERVICES)


def health_columns(index: int, now: dt.datetime) -> dict:
    """Seed 002's inventory and device-health columns of server `index`, as a fleet has them:
    every box with a role, segment, tags, metadata, packages and commit, and the 20 containers
    and 5 services of bench/payloads.py (not listed, but stored in the row the list reads);
    one in ten degraded with two reasons. JSON columns as control stores them: JSON text."""
    degraded = index % 10 == 0
    reasons = ["temperature 81 °C ≥ 75", "container web exited (1)"] if degraded else []
    return {
        "role": ("web", "db", "nas", "k8s-node")[index % 4],
        "branch": "main",
        "segment": f"lan.{index % 4}",
        "tags": json.dumps(sorted(["prod", f"rack_{index % 8}"])),
        "metadata": json.dumps({"rack": index % 8, "u": index % 42}, separators=(",", ":")),
        "current_commit_hash": f"{index:07x}1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9"[:40],
        "packages": json.dumps(
            {"upgradable": index % 7, "security": index % 3, "reboot_required": degraded}
        ),
        "health": "degraded" if degraded else "healthy",
        "health_reasons": json.dumps(reasons) if reasons else None,
        "health_changed_at": now - dt.timedelta(minutes=index % 600, microseconds=index),
        "containers": CONTAINERS_JSON,
        "services": SERVICES_JSON,
    }


def populate(servers: int, history: int, now: dt.datetime) -> None:
    """`servers` online servers, each with `history` samples a minute apart, plus one day-old
    sample each (what the prune will delete); `latest_sample_id` set as heartbeats set it."""
    with db.atomic():
        for start in range(0, servers, CHUNK):
            Server.insert_many(
                [
                    {
                        "id": f"srv-{i:05d}",
                        "hostname": f"srv-{i:05d}.lan",
                        "status": ServerStatus.ONLINE,
                        "last_seen": now - dt.timedelta(seconds=random.randint(0, 60)),
                        "os_distribution": "Debian GNU/Linux",
                        "os_version": "12",
                        "kernel_version": "6.1.0-18-amd64",
                        "architecture": "x86_64",
                        "agent_version": "0.1.0",
                        "metrics_port": 9100,
                        "tdp_watts": 35,
                        "created_at": now,
                        "updated_at": now,
                        **health_columns(i, now),
                    }
                    for i in range(start, min(start + CHUNK, servers))
                ]
            ).execute()
        rows = []
        for i in range(servers):
            old = now - dt.timedelta(days=31, minutes=i % 60)
            rows.append(sample_row(f"srv-{i:05d}", old))
            rows += [
                sample_row(f"srv-{i:05d}", now - dt.timedelta(minutes=m)) for m in range(history)
            ]
            if len(rows) >= CHUNK * 4:
                MetricsSample.insert_many(rows).execute()
                rows = []
        if rows:
            MetricsSample.insert_many(rows).execute()
        latest = MetricsSample.select(peewee.fn.MAX(MetricsSample.id)).where(
            MetricsSample.server == Server.id
        )
        Server.update(latest_sample_id=latest).execute()


def timed_ms(call) -> float:
    """Wall time of one call, in milliseconds."""
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def database_bytes(url: str) -> int:
    """What the database occupies: the SQLite file (after a checkpoint) or the PostgreSQL DB."""
    if url.startswith("sqlite"):
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        page_count = db.execute_sql("PRAGMA page_count").fetchone()[0]
        page_size = db.execute_sql("PRAGMA page_size").fetchone()[0]
        return page_count * page_size
    db.execute_sql("VACUUM ANALYZE")  # settle visibility map/free space, as a live DB would
    return db.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0]


# Rows a server keeps for a month of 60 s heartbeats: a full day, then one per hour
# (control.fleet.retention.thin_history), against 43,200 if nothing were thinned.
ROWS_PER_MONTH_RAW = 60 * 24 * 30
ROWS_PER_MONTH_KEPT = 60 * 24 + 24 * 29


def storage_per_server_month(url: str, sample_servers: int, minutes: int) -> float:
    """Bytes per stored sample (indexes included), measured on `minutes` of samples."""
    ids = [f"srv-{i:05d}" for i in range(sample_servers)]
    before = database_bytes(url)
    start = utcnow()
    with db.atomic():
        rows = []
        for minute in range(minutes):
            stamp = start + dt.timedelta(minutes=minute + 1)
            rows += [sample_row(server_id, stamp) for server_id in ids]
            if len(rows) >= CHUNK * 4:
                MetricsSample.insert_many(rows).execute()
                rows = []
        if rows:
            MetricsSample.insert_many(rows).execute()
    grown = database_bytes(url) - before
    return grown / (sample_servers * minutes)


def churn(servers_total: int, count: int) -> None:
    """`count` random servers heartbeat once each, through the real ingest path (new sample,
    server row updated: what changes between two polls of the list)."""
    for index in random.sample(range(servers_total), count):
        metrics = sample_row("", utcnow())
        beat = {
            "server_id": f"srv-{index:05d}",
            "hostname": f"srv-{index:05d}.lan",
            "timestamp": metrics["received_at"],
            "metrics": {field: metrics[field] for field in METRIC_FIELDS},
        }
        heartbeats.ingest_heartbeat(beat)


def fresh_body() -> bytes:
    """GET /servers' body as rendered without the cache: every row read and rendered now."""
    rows, total = servers.list_server_rows()
    body = {"servers": server_rows_to_json(rows), "total": total, "limit": None, "offset": 0}
    return orjson.dumps(body, option=OPTIONS)


def list_figures(
    name: str,
    list_ms: list[float],
    cpu_ms: list[float],
    statements: list[int],
    populate_s: float,
    cold_ms: float,
) -> dict:
    """The list request's figures: p50 and p95 of the runs, the CPU this process spent per
    request (median: what the code costs, whatever else the machine runs; PostgreSQL's own
    work is in its server process, not here), the SQL statements and the first (cold)
    request."""
    list_ms = sorted(list_ms)
    return {
        "name": name,
        "populate_s": populate_s,
        "cold_ms": cold_ms,
        "list_p50": statistics.median(list_ms),
        "list_p95": list_ms[max(0, int(len(list_ms) * 0.95) - 1)],
        "list_cpu_p50": statistics.median(cpu_ms),
        "statements": max(statements),
    }


def profile_list(client, name: str, requests: int = 5) -> None:
    """cProfile of `requests` list requests: the top functions by own time."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(requests):
        client.get("/api/v1/servers", headers={"X-API-Key": KEY}).close()
    profile.disable()
    print(f"\n{name}: cProfile of {requests} x GET /api/v1/servers, by own time")
    pstats.Stats(profile).sort_stats("tottime").print_stats(12)


def run(name: str, url: str, args) -> dict:
    """Populate a fresh database at `url` and take every measurement."""
    with tempfile.TemporaryDirectory(prefix="bench-inv-") as data_dir:
        app = create_app(
            load_settings(environ={}, data_dir=data_dir, database_url=url, viewer_key=KEY)
        )
        client = app.test_client()
        now = utcnow()
        started = time.perf_counter()
        populate(args.servers, args.history, now)
        populate_s = time.perf_counter() - started
        if not url.startswith("sqlite"):
            # As autovacuum leaves a live database: setting every server's latest_sample_id
            # left a dead copy of each row, and the planner has no statistics yet.
            db.execute_sql("VACUUM ANALYZE")

        counter = StatementCounter()
        peewee_log = logging.getLogger("peewee")
        peewee_log.addHandler(counter)
        peewee_log.setLevel(logging.DEBUG)
        list_ms, cpu_ms, statements = [], [], []

        def get() -> None:
            client.get("/api/v1/servers", headers={"X-API-Key": KEY}).close()

        cold_ms = timed_ms(get)  # the render cache is empty: every row read and rendered
        for _ in range(args.runs):
            if args.churn:
                churn(args.servers, args.churn)
            counter.count = 0
            cpu_started = time.process_time()
            elapsed = timed_ms(get)
            cpu_ms.append((time.process_time() - cpu_started) * 1000)
            list_ms.append(elapsed)
            statements.append(counter.count)
        peewee_log.removeHandler(counter)
        peewee_log.setLevel(logging.WARNING)
        response = client.get("/api/v1/servers", headers={"X-API-Key": KEY})
        assert response.data == fresh_body(), "the cached listing differs from a fresh render"
        body = response.get_json()
        assert body["total"] == args.servers, body.get("total")
        assert body["servers"][0]["latest_metrics"] is not None
        assert body["servers"][0]["health_reasons"], "server 0 is degraded, with reasons"
        if args.profile:
            profile_list(client, name)
        if args.list_only:
            db.close()
            return list_figures(name, list_ms, cpu_ms, statements, populate_s, cold_ms)

        quiet = [timed_ms(lambda: offline.mark_offline(180, now=now)) for _ in range(5)]
        # Push 1% of the fleet past the threshold, then time the tick that catches them.
        silent = [f"srv-{i:05d}" for i in range(0, args.servers, 100)]
        Server.update(last_seen=now - dt.timedelta(hours=1)).where(Server.id.in_(silent)).execute()
        changed_ms = timed_ms(lambda: offline.mark_offline(180, now=now))
        assert Server.select().where(Server.status == ServerStatus.OFFLINE).count() == len(silent)

        samples_before = MetricsSample.select().count()
        pruned: dict = {}
        prune_ms = timed_ms(lambda: pruned.update(retention.prune_history(30, now=now)))
        assert pruned["samples"] == args.servers, pruned

        per_sample = storage_per_server_month(url, args.size_servers, args.size_minutes)
        db.close()
    return {
        **list_figures(name, list_ms, cpu_ms, statements, populate_s, cold_ms),
        "samples": samples_before,
        "offline_quiet": statistics.median(quiet),
        "offline_changed": changed_ms,
        "offline_changed_n": len(silent),
        "prune_ms": prune_ms,
        "pruned": pruned["samples"],
        "per_sample": per_sample,
        "mb_month": per_sample * ROWS_PER_MONTH_KEPT / 1e6,
        "mb_month_raw": per_sample * ROWS_PER_MONTH_RAW / 1e6,
    }


def print_table(results: list[dict], args) -> None:
    """One block per run: every figure beside its goal."""
    print(
        f"\ninventory scale: {args.servers} servers, {args.history + 1} samples each, "
        f"GET /servers x{args.runs}; storage from {args.size_servers} servers x "
        f"{args.size_minutes} min"
        + (f"; {args.churn} servers heartbeat before each request" if args.churn else "")
    )
    print(f"{'database':<9} {'figure':<34} {'value':>12}  goal")
    for r in results:
        rows = [
            ("GET /servers p50", f"{r['list_p50']:.1f} ms", ""),
            ("GET /servers p95", f"{r['list_p95']:.1f} ms", "<= 100 ms"),
            ("GET /servers CPU p50, this process", f"{r['list_cpu_p50']:.1f} ms", ""),
            ("GET /servers SQL statements", f"{r['statements']}", "1 (+1 rows changed)"),
            ("GET /servers first (cache cold)", f"{r['cold_ms']:.1f} ms", ""),
        ]
        if "offline_quiet" not in r:  # --list-only
            rows += [("populating the database", f"{r['populate_s']:.0f} s", "")]
            for figure, value, goal in rows:
                print(f"{r['name']:<9} {figure:<34} {value:>12}  {goal}")
            continue
        rows += [
            ("offline tick, nothing to change", f"{r['offline_quiet']:.2f} ms", "<= 50 ms"),
            (
                f"offline tick, {r['offline_changed_n']} go offline",
                f"{r['offline_changed']:.2f} ms",
                "<= 50 ms",
            ),
            (f"retention prune ({r['pruned']} of {r['samples']})", f"{r['prune_ms']:.1f} ms", ""),
            ("bytes per stored sample", f"{r['per_sample']:.0f} B", ""),
            ("storage per server-month, kept", f"{r['mb_month']:.2f} MB", "<= 2 MB"),
            ("  (if nothing were thinned)", f"{r['mb_month_raw']:.2f} MB", ""),
        ]
        for figure, value, goal in rows:
            print(f"{r['name']:<9} {figure:<34} {value:>12}  {goal}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=10, help="recent samples per server")
    parser.add_argument("--runs", type=int, default=20, help="GET /servers requests to time")
    parser.add_argument("--size-servers", type=int, default=100, help="servers for storage")
    parser.add_argument("--size-minutes", type=int, default=1440, help="minutes of samples")
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated")
    parser.add_argument("--list-only", action="store_true", help="only time GET /servers")
    parser.add_argument("--profile", action="store_true", help="cProfile the list requests")
    parser.add_argument(
        "--churn", type=int, default=0, help="servers heartbeating before each list request"
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds, SQLite only")
    args = parser.parse_args()
    if args.smoke:
        args.servers, args.history, args.runs = 300, 2, 3
        args.size_servers, args.size_minutes, args.databases = 10, 60, "sqlite"
    random.seed(6)
    databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    results = []
    for name in databases:
        if name == "postgres":
            if not PostgresCluster.find_bin("initdb"):
                print("PostgreSQL (initdb) not installed: skipping postgres", file=sys.stderr)
                continue
            cluster = PostgresCluster()
            cluster.start()
            try:
                results.append(run(name, cluster.url, args))
            finally:
                cluster.stop()
        else:
            with tempfile.TemporaryDirectory(prefix="bench-inv-db-") as tmp:
                results.append(run(name, f"sqlite:///{os.path.join(tmp, 'homelab.db')}", args))
    print_table(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
