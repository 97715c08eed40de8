"""Console page times: the fleet page with 1,000 servers, a server page with 24 h of history.

Measures, in-process against the real app on SQLite (Flask's test client, signed in as an
operator), p50/p95 over `--runs` requests and the SQL statements each page runs:

- `GET /ui/` with `--servers` servers in every state of health, each with a latest sample
  (goal p95 <= 300 ms); baseline: the same servers through the JSON API, `GET /api/v1/servers`;
- `GET /ui/servers/<id>` for a server with `--hours` of minute heartbeats (1,440 a day) and
  20 events, actions and updates (goal p95 <= 200 ms); baseline: the same server's JSON
  (`GET /api/v1/servers/<id>`, `/events`, `/actions`: three calls; the API has no history
  endpoint, so the chart's 1,440-row read is the page's alone).

Baselines run in the same process, on the same data, interleaved with the pages, so the
ratio (page p95 / baseline p95) holds on a busy machine where the absolute times do not.

    .venv/bin/python bench/console_pages.py [--servers 1000] [--hours 24] [--runs 40] [--smoke]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from control.app import create_app
from control.config import load_settings
from control.db import db
from control.models import Action, Event, MetricsSample, Server, ServerUpdate, utcnow

KEY = "bench-operator-key"
HEADERS = {"X-API-Key": KEY}
GOALS = {"fleet": 300.0, "server": 200.0}
HEALTHS = ["healthy"] * 14 + ["degraded", "degraded", "failed", "offline", "unknown"]
CHUNK = 500
HISTORY_SERVER = "srv-00000"


def populate(servers: int, hours: int, now: dt.datetime) -> None:
    """`servers` servers with a latest sample each; the first also with `hours` of minute
    samples and 20 events, actions and updates."""
    with db.atomic():
        for start in range(0, servers, CHUNK):
            rows = []
            for n in range(start, min(start + CHUNK, servers)):
                health = HEALTHS[n % len(HEALTHS)]
                rows.append({
                    "id": f"srv-{n:05d}", "hostname": f"srv-{n:05d}.lan",
                    "display_name": f"Server {n}", "status": "offline" if health == "offline"
                    else "online", "health": health, "role": ["web", "db", "nas"][n % 3],
                    "tags": json.dumps(["lab"] if n % 2 else ["prod"]),
                    "health_reasons": json.dumps(["disk / 93 % ≥ 90"]) if health != "healthy"
                    else None, "last_seen": now, "created_at": now, "updated_at": now,
                })  # fmt: skip
            Server.insert_many(rows).execute()
            MetricsSample.insert_many(
                [{"server": row["id"], "timestamp": now, "received_at": now,
                  "cpu_percent": random.uniform(0, 100), "memory_percent": random.uniform(0, 100),
                  "disk_percent": random.uniform(0, 100), "temperature": random.uniform(30, 90),
                  "containers_running": 5, "containers_failed": 0} for row in rows]
            ).execute()  # fmt: skip
        history = [
            {"server": HISTORY_SERVER, "timestamp": at, "received_at": at,
             "cpu_percent": 40 + 30 * math.sin(minute / 60), "memory_percent": 60.0,
             "disk_percent": 70.0, "temperature": 55 + 10 * math.sin(minute / 120)}
            for minute in range(1, hours * 60 + 1)
            for at in [now - dt.timedelta(minutes=minute)]
        ]  # fmt: skip
        for start in range(0, len(history), CHUNK):
            MetricsSample.insert_many(history[start : start + CHUNK]).execute()
        for i in range(20):
            Event.create(server_id=HISTORY_SERVER, type="status_changed", message=f"event {i}")
            Action.create(server_id=HISTORY_SERVER, action_type="restart_service",
                          parameters=json.dumps({"service_name": f"u{i}"}),
                          command=f"systemctl restart -- u{i}", status="completed",
                          created_by="bench", exit_code=0, stdout="ok\n" * 20)  # fmt: skip
            ServerUpdate.create(
                server_id=HISTORY_SERVER, kind="agent", from_version=str(i),
                to_version=str(i + 1), detected_at=now, check_due_at=now,
            )  # fmt: skip
        newest = MetricsSample.select(MetricsSample.id).where(
            MetricsSample.server == Server.id
        ).order_by(MetricsSample.received_at.desc()).limit(1)  # fmt: skip
        Server.update(latest_sample_id=newest).execute()


class StatementCounter(logging.Handler):
    """Counts the SQL statements peewee runs (it logs each one at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def timed(calls) -> float:
    """Wall time of a sequence of requests, in milliseconds; each must answer 200."""
    started = time.perf_counter()
    for call in calls:
        response = call()
        assert response.status_code == 200, response.status_code
        response.close()
    return (time.perf_counter() - started) * 1000


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * 0.95) - 1)]


def sign_in(client) -> None:
    """Sign the test client in through the form, CSRF token and all."""
    page = client.get("/ui/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/ui/login", data={"api_key": KEY, "csrf_token": token})
    assert response.status_code == 303, response.status_code


def measure(args) -> dict:
    """Populate a fresh SQLite database and time both pages against their baselines."""
    with tempfile.TemporaryDirectory(prefix="bench-console-") as data_dir:
        app = create_app(load_settings(environ={}, data_dir=data_dir, operator_key=KEY))
        client = app.test_client()
        now = utcnow()
        started = time.perf_counter()
        populate(args.servers, args.hours, now)
        populate_s = time.perf_counter() - started
        sign_in(client)
        server = f"/ui/servers/{HISTORY_SERVER}"
        api = f"/api/v1/servers/{HISTORY_SERVER}"
        cases = {
            "fleet": [lambda: client.get("/ui/")],
            "fleet baseline": [lambda: client.get("/api/v1/servers", headers=HEADERS)],
            "server": [lambda: client.get(server)],
            "server baseline": [
                lambda: client.get(api, headers=HEADERS),
                lambda: client.get(api + "/events", headers=HEADERS),
                lambda: client.get(api + "/actions", headers=HEADERS),
            ],
        }
        page = client.get("/ui/").get_data(as_text=True)
        assert page.count('href="/ui/servers/srv-') == args.servers, "fleet page incomplete"
        assert client.get(server).get_data(as_text=True).count("<svg") == 4
        counter = StatementCounter()
        peewee_log = logging.getLogger("peewee")
        peewee_log.addHandler(counter)
        peewee_log.setLevel(logging.DEBUG)
        statements = {}
        for name, calls in cases.items():
            counter.count = 0
            timed(calls)
            statements[name] = counter.count
        peewee_log.removeHandler(counter)
        peewee_log.setLevel(logging.WARNING)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):  # interleaved: a busy moment slows page and baseline alike
            for name, calls in cases.items():
                times[name].append(timed(calls))
        db.close()
    return {"populate_s": populate_s, "times": times, "statements": statements}


def report(result: dict, args) -> None:
    """The table: each page beside its baseline, the ratio and the goal."""
    times, statements = result["times"], result["statements"]
    print(
        f"\nconsole pages: {args.servers} servers (fleet), {args.hours} h of minute heartbeats "
        f"(server page), SQLite, {args.runs} runs each, populated in {result['populate_s']:.1f} s"
    )
    print(f"{'request':<16} {'p50 ms':>8} {'p95 ms':>8} {'SQL':>4}  {'ratio p95':>9}  goal")
    for page in ("fleet", "server"):
        baseline = f"{page} baseline"
        ratio = p95(times[page]) / p95(times[baseline])
        verdict = "met" if p95(times[page]) <= GOALS[page] else "MISSED"
        for name in (page, baseline):
            line = (
                f"{name:<16} {statistics.median(times[name]):>8.1f} {p95(times[name]):>8.1f} "
                f"{statements[name]:>4}"
            )
            if name == page:
                line += f"  {ratio:>9.2f}  p95 <= {GOALS[page]:.0f} ms: {verdict}"
            print(line)


def main() -> int:
    """Parse arguments, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="50 servers, 1 h, 3 runs")
    args = parser.parse_args()
    if args.smoke:
        args.servers, args.hours, args.runs = 50, 1, 3
    random.seed(1)
    report(measure(args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
