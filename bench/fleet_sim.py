"""Fleet simulation: 10,000 agents heartbeating every 60 s against one `homelab-control serve`.

Time is compressed by `--speedup`: the heartbeat interval, `HOMELAB_OFFLINE_AFTER` and
`HOMELAB_OFFLINE_CHECK_INTERVAL` are all divided by it, so the ratio that decides whether a
healthy server is ever wrongly marked offline (180 s / 60 s = 3 missed heartbeats) is the real
one, while the request rate is the real fleet's times the speedup. Every agent starts at a
random phase within one interval (as a fleet that booted over time) and then sends its
seed-001 heartbeat on a fixed schedule. Control runs with enrollment on, as in production:
each agent's first heartbeat carries the shared bootstrap key and enrolls its server, and the
agent sends the bound key from control's answer (`agent_key`) from then on, as a real agent does.

A few agents (`--silent`) register and then fall silent: control must mark exactly those
offline, which shows the offline detector ran; any other offline transition is a false one.

The load comes from one asyncio process over raw keep-alive HTTP/1.1 connections; its own CPU
share and how late it sent each heartbeat against the schedule are printed, so a saturated
client is visible rather than mistaken for a slow control.

    .venv/bin/python bench/fleet_sim.py [--agents 10000] [--speedup 2] [--minutes 6]
        [--connections 64] [--threads 8] [--database sqlite|postgres] [--workers N] [--smoke]

`--database postgres` runs control on a throwaway PostgreSQL cluster (tests/postgres.py);
`--workers N` runs the scale-out layout: `homelab-control serve --workers N --no-scheduler`
beside `homelab-control scheduler` as its own process. CPU and peak RSS then cover every
process of control (main, workers, scheduler) and, separately, PostgreSQL's.

Exit status 1 when any request failed, an agent did not enroll, a healthy agent went offline,
or a silent one did not.

Over 300 lines: a self-contained script (agent simulation, control process, report) that
runs from a bare checkout; splitting it would only add imports between bench files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from payloads import heartbeat_body  # the script's own directory, bench/, is on sys.path

from tests.live import LiveControl
from tests.postgres import PostgresCluster

PATH = "/api/v1/agents/heartbeat"
# The bootstrap agent key control starts with: unbound, so it only enrolls servers.
AGENT_KEY = "fleet-agent-key"
VIEWER_KEY = "fleet-viewer-key"
REAL_INTERVAL = 60
REAL_OFFLINE_AFTER = 180  # control's defaults
REAL_OFFLINE_CHECK = 30
REQUEST_TIMEOUT = 30.0


@dataclass
class Stats:
    """What the load generator saw."""

    sent: int = 0
    ok: int = 0
    enrolled: int = 0  # agents that got their bound key
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    late_by_round: dict[int, float] = field(default_factory=dict)  # worst lateness per round

    def error(self, kind: str) -> None:
        """Count one failed heartbeat by kind (HTTP status or exception name)."""
        self.errors[kind] = self.errors.get(kind, 0) + 1

    @property
    def failed(self) -> int:
        """Heartbeats that did not get a 200."""
        return sum(self.errors.values())


def heartbeat(server_id: str, seq: int, key: str) -> bytes:
    """The raw HTTP/1.1 request one agent sends: seed-001 body with metrics and os_info."""
    body = heartbeat_body(server_id, seq)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: control\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Read one HTTP/1.1 response: (status, whether the server keeps the connection, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close", body


class Connection:
    """One keep-alive HTTP/1.1 connection to control, reopened when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send `raw`, return (status, body); raises OSError/asyncio errors on failure."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            self.writer.write(raw)
            status, keep, body = await asyncio.wait_for(read_response(self.reader), REQUEST_TIMEOUT)
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return status, body

    def close(self) -> None:
        """Drop the connection; the next request opens a new one."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def drive(
    port: int, agents: list[str], silent: set[str], interval: float, seconds: float, conns: int
) -> Stats:
    """Send each agent's heartbeat every `interval` s from a random phase for `seconds`.

    An agent sends the shared key until a 200 answer hands it its bound key, then that key.
    """
    stats = Stats()
    bound_keys: dict[str, str] = {}
    # One heartbeat in flight per agent, as a real agent sends them: were the next one sent
    # before the enrolling answer arrived, it would carry the shared key and get a 403.
    busy = {server_id: asyncio.Lock() for server_id in agents}
    rng = random.Random(1)
    phases = sorted((rng.uniform(0, interval), server_id) for server_id in agents)
    queue: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def schedule() -> None:
        round_ = 0
        while True:
            for phase, server_id in phases:
                due = start + round_ * interval + phase
                if due - start >= seconds:
                    return
                if round_ > 0 and server_id in silent:
                    continue  # registered once, then the box died
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                queue.put_nowait((due, server_id, round_))
            round_ += 1

    async def worker() -> None:
        conn = Connection(port)
        while True:
            item = await queue.get()
            if item is None:
                conn.close()
                return
            due, server_id, seq = item
            async with busy[server_id]:
                await beat(conn, due, server_id, seq)

    async def beat(conn: Connection, due: float, server_id: str, seq: int) -> None:
        """Send one heartbeat of `server_id`: its bound key once it has one, else the shared."""
        began = loop.time()
        stats.lateness.append(began - due)
        stats.late_by_round[seq] = max(stats.late_by_round.get(seq, 0.0), began - due)
        stats.sent += 1
        key = bound_keys.get(server_id, AGENT_KEY)
        try:
            status, body = await conn.request(heartbeat(server_id, seq, key))
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            stats.error(type(exc).__name__)
            return
        stats.latencies.append(loop.time() - began)
        if status != 200:
            stats.error(f"HTTP {status}")
            return
        stats.ok += 1
        if server_id not in bound_keys:
            # The enrolling answer: keep the bound key it carries, shown this once.
            agent_key = json.loads(body).get("agent_key")
            if agent_key:
                bound_keys[server_id] = agent_key
                stats.enrolled += 1

    workers = [asyncio.create_task(worker()) for _ in range(conns)]
    await schedule()
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return stats


class ProcessWatch:
    """CPU seconds and peak RSS of some processes and their children over the measured window."""

    def __init__(self, *pids: int) -> None:
        self.roots = [psutil.Process(pid) for pid in pids]
        self.cpu_start = self._cpu()

    def processes(self) -> list[psutil.Process]:
        """The watched processes and all their children, as they are now."""
        found = []
        for root in self.roots:
            try:
                found += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return found

    def _cpu(self) -> float:
        total = 0.0
        for proc in self.processes():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def cpu_seconds(self) -> float:
        """CPU seconds used since this watch was created (by processes still alive)."""
        return self._cpu() - self.cpu_start

    def peak_rss_mb(self) -> list[float]:
        """Each watched process's high-water resident set (VmHWM), in MiB, largest first."""
        peaks = []
        for proc in self.processes():
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return sorted(peaks, reverse=True)


class SchedulerProcess:
    """`homelab-control scheduler` as its own process, with control's environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "scheduler"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        """SIGTERM, wait, close the log."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def offline_events(url: str) -> list[dict]:
    """Every status_changed event that took a server offline, from control's event API."""
    found, offset = [], 0
    headers = {"X-API-Key": VIEWER_KEY}
    while True:
        page = requests.get(
            f"{url}/api/v1/events",
            params={"type": "status_changed", "limit": 100, "offset": offset},
            headers=headers,
            timeout=30,
        ).json()
        events = page["events"]
        found += [e for e in events if (e.get("details") or {}).get("status") == "offline"]
        offset += len(events)
        if not events or offset >= page["total"]:
            return found


def _when(event: dict) -> dt.datetime:
    stamp = dt.datetime.fromisoformat(event["created_at"].replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def server_count(url: str, status: str) -> int:
    """How many servers control lists with `status`."""
    return requests.get(
        f"{url}/api/v1/servers",
        params={"status": status},
        headers={"X-API-Key": VIEWER_KEY},
        timeout=60,
    ).json()["total"]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def run(args: argparse.Namespace) -> int:
    """Start control, drive the fleet, check offline transitions, print the table."""
    interval = REAL_INTERVAL / args.speedup
    offline_after = max(1, round(REAL_OFFLINE_AFTER / args.speedup))
    check = max(1, round(REAL_OFFLINE_CHECK / args.speedup))
    seconds = args.minutes * 60 / args.speedup
    agents = [f"fleet-{i:05d}" for i in range(args.agents)]
    silent = set(random.Random(2).sample(agents, args.silent))
    cluster = PostgresCluster() if args.database == "postgres" else None
    if cluster:
        cluster.start()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="fleet-sim-") as tmp:
        if cluster:
            stack.callback(cluster.stop)  # last, after control and the scheduler stopped
        database = {"database_url": cluster.url} if cluster else {}
        control = LiveControl(
            Path(tmp),
            **database,
            agent_key=AGENT_KEY,
            viewer_key=VIEWER_KEY,
            # The simulation is a load test of `--agents` new boxes booting at once, all
            # enrolling with one shared key within one interval: far past the default of 60
            # per key and hour, which is there to stop a leaked key adding boxes without bound.
            enroll_rate=max(60, args.agents),
            offline_after=offline_after,
            offline_check_interval=check,
        )
        layout = ("--workers", str(args.workers), "--no-scheduler") if args.workers else ()
        control.start("--threads", str(args.threads), *layout)
        scheduler = (
            SchedulerProcess(control.env, Path(tmp) / "scheduler.log") if args.workers else None
        )
        try:
            watch = ProcessWatch(
                control.process.pid, *([scheduler.process.pid] if scheduler else [])
            )
            db_watch = ProcessWatch(cluster.process.pid) if cluster else None
            client_before = resource.getrusage(resource.RUSAGE_SELF)
            began = time.monotonic()
            stats = asyncio.run(
                drive(control.port, agents, silent, interval, seconds, args.connections)
            )
            wall = time.monotonic() - began
            ended = dt.datetime.now(dt.UTC)
            client_after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = watch.cpu_seconds()
            rss = watch.peak_rss_mb()
            db_cpu = db_watch.cpu_seconds() if db_watch else 0.0
            online = server_count(control.url, "online")
            # Once the load stops every server goes silent; a healthy one can legitimately go
            # offline from `ended + offline_after - interval` on, so only count events before.
            horizon = ended + dt.timedelta(seconds=offline_after - interval)
            offline = [e for e in offline_events(control.url) if _when(e) < horizon]
        finally:
            if scheduler:
                scheduler.stop()
            control.stop()
    offline_ids = {e["server_id"] for e in offline}
    false_offline = [e for e in offline if e["server_id"] not in silent]
    missed_silent = silent - offline_ids
    client_cpu = (
        client_after.ru_utime
        + client_after.ru_stime
        - client_before.ru_utime
        - client_before.ru_stime
    )
    target = (args.agents - args.silent) / interval
    rows = [
        ("agents (silent after registering)", f"{args.agents} ({args.silent})"),
        ("heartbeat interval, real -> run", f"{REAL_INTERVAL} s -> {interval:g} s"),
        ("offline after / check, run", f"{offline_after} s / {check} s"),
        ("simulated time (wall)", f"{args.minutes:g} min ({wall:.0f} s)"),
        ("agents enrolled (bound key kept)", f"{stats.enrolled} of {args.agents}"),
        ("heartbeats sent", f"{stats.sent}"),
        ("requests/s achieved (scheduled)", f"{stats.sent / wall:.0f} ({target:.0f})"),
        ("errors", f"{stats.failed} {stats.errors or ''}".strip()),
        (
            "latency p50 / p99 / max",
            f"{percentile(stats.latencies, 50) * 1000:.1f} / "
            f"{percentile(stats.latencies, 99) * 1000:.1f} / "
            f"{max(stats.latencies, default=0) * 1000:.0f} ms",
        ),
        (
            "client lateness p99 / max",
            f"{percentile(stats.lateness, 99) * 1000:.1f} / "
            f"{max(stats.lateness, default=0) * 1000:.0f} ms",
        ),
        (
            "worst lateness, 1st round / later",
            f"{stats.late_by_round.get(0, 0) * 1000:.0f} / "
            f"{max((v for k, v in stats.late_by_round.items() if k), default=0) * 1000:.0f} ms",
        ),
        ("false offline transitions", f"{len(false_offline)}"),
        ("silent agents marked offline", f"{len(silent & offline_ids)} of {len(silent)}"),
        ("servers online at the end", f"{online} of {args.agents - args.silent}"),
        ("control CPU", f"{cpu:.1f} s ({cpu / wall:.0%} of one core; all its processes)"),
        ("control peak RSS", " / ".join(f"{mb:.0f}" for mb in rss) + " MiB (per process)"),
        *(
            [("PostgreSQL CPU", f"{db_cpu:.1f} s ({db_cpu / wall:.0%} of one core)")]
            if cluster
            else []
        ),
        ("load generator CPU", f"{client_cpu:.1f} s ({client_cpu / wall:.0%} of one core)"),
    ]
    width = max(len(name) for name, _ in rows)
    layout = (
        f"`serve --workers {args.workers} --no-scheduler` + `homelab-control scheduler`"
        if args.workers
        else "one `homelab-control serve`"
    )
    print(f"\nfleet simulation: {os.cpu_count()} CPUs, {args.database}, {layout}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if stats.latencies:
        print(f"(mean latency {statistics.fmean(stats.latencies) * 1000:.1f} ms)")
    problems = []
    if stats.failed:
        problems.append(f"{stats.failed} heartbeats failed")
    if stats.enrolled != args.agents:
        problems.append(f"{stats.enrolled} agents enrolled, expected {args.agents}")
    if false_offline:
        problems.append(f"{len(false_offline)} healthy servers went offline")
    if missed_silent:
        problems.append(f"{len(missed_silent)} silent servers were never marked offline")
    if online != args.agents - args.silent:
        problems.append(f"{online} servers online, expected {args.agents - args.silent}")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


def main() -> int:
    """Parse flags and run the simulation."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--speedup", type=float, default=2.0, help="time compression factor")
    parser.add_argument("--minutes", type=float, default=6.0, help="simulated minutes")
    parser.add_argument("--silent", type=int, default=10, help="agents that die after one beat")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--threads", type=int, default=8, help="control's threads (per worker)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--workers", type=int, default=0, help="API worker processes (0: one embedded serve)"
    )
    parser.add_argument("--smoke", action="store_true", help="200 agents, 6 min at 30x (~12 s)")
    args = parser.parse_args()
    if args.smoke:
        args.agents, args.speedup, args.minutes, args.silent = 200, 30.0, 6.0, 3
        args.connections = min(args.connections, 8)
    if not 0 <= args.silent < args.agents or args.speedup <= 0 or args.minutes <= 0:
        parser.error("need 0 <= --silent < --agents, --speedup > 0 and --minutes > 0")
    if args.minutes * 60 < REAL_OFFLINE_AFTER + 2 * REAL_OFFLINE_CHECK + REAL_INTERVAL:
        parser.error("--minutes must cover a silent server's detection (at least 5)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
