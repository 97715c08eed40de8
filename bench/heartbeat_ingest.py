"""Heartbeat ingest: `homelab-control serve` against a bare Flask app under the same waitress.

N concurrent simulated agents (keep-alive connections, closed loop: each sends its next
heartbeat when the previous one is answered) post seed-001 heartbeats with metrics and
os_info for ~1000 distinct server ids, for T seconds. The same load then hits a bare Flask app
that returns the same JSON under waitress with the same thread count, in a separate process,
so the ratio is what control's validation, auth and database write cost per heartbeat.

Each control server is also measured with seed 002's full heartbeat (`payloads.DEVICE_HEALTH`:
temperature, 20 containers, 5 services, packages, commit hash; target `<db>+dh`) from another
~1000 server ids, in the same run and the same server process, the two payloads alternating;
the report gives control's CPU per heartbeat of each and their ratio (target <= 1.10).
`--profile` runs both payloads in-process instead (Flask's test client, no HTTP): time per
heartbeat of each, then cProfile's top functions of each. `--profile-server` runs waitress and
control (and the baseline) in this process under wrk, with seed-002 heartbeats: CPU per
heartbeat by thread (request threads, waitress's main loop, the group-commit writer), then
cProfile of each.

Control runs with enrollment on, as in production: before the measured window every server id
enrolls once (one heartbeat each with the shared bootstrap key, `HOMELAB_AGENT_KEY`), and each
later heartbeat authenticates with the key bound to its server, as a real agent's does; the
shared key may no longer speak for an enrolled server. The baseline gets the same requests,
with keys of the same length: seed 001's (target `baseline`) and seed 002's (`baseline+dh`),
and each control target's ratio is against the baseline sent its payload.

The load comes from `wrk` (Debian package `wrk`, C, epoll) with a Lua script that varies the
server id and the metrics; without it, from Python processes (heavier on a 2-core box, so the
load generator's own CPU share is printed beside every row).

    .venv/bin/python bench/heartbeat_ingest.py [--duration 10] [--connections 16] [--threads 8]
        [--databases sqlite,postgres] [--runs 2] [--client auto|wrk|python] [--smoke]
    .venv/bin/python bench/heartbeat_ingest.py --profile [--heartbeats 2000]
    .venv/bin/python bench/heartbeat_ingest.py --profile-server [--duration 10]

Exit status 1 when any heartbeat was not answered 200.

Over 300 lines: a self-contained script (load generator, both servers, profiles, report)
that runs from a bare checkout.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The script's own directory, bench/, is on sys.path.
from payloads import CONTAINERS_RUNNING, DEVICE_HEALTH, heartbeat_body

from tests.helpers import free_port
from tests.live import LiveControl
from tests.postgres import PostgresCluster

PATH = "/api/v1/agents/heartbeat"
# The bootstrap agent key control starts with: unbound, so it may only enroll servers.
AGENT_KEY = "bench-agent-key"
RESPONSE = {"status": "ok", "server_registered": False, "pending_commands": []}
# Issue 15: on SQLite, with either payload, against the baseline sent the same payload.
GOALS = {"rate": 2000.0, "p99_ms": 50.0, "ratio": 0.5}
# Control's CPU per seed-002 heartbeat over its CPU per seed-001 heartbeat.
DEVICE_HEALTH_GOAL = 1.10

LUA = r"""
local servers = %(servers)d
local first = %(first)d
-- keys[i + 1] is the key bound to server bench-<first + i>
local keys = {
%(keys)s
}
local counter = 0
local offset = 0
local n = 0
local template = '{"server_id":"%%s","hostname":"%%s.lan","timestamp":"%%s",'
  .. '"agent_version":"0.1.0","metrics_port":9100,'
  .. '"os_info":{"distribution":"Debian GNU/Linux","version":"12",'
  .. '"kernel":"6.1.0-18-amd64","architecture":"x86_64"},'
  .. '"metrics":{"cpu_percent":%%.1f,"memory_percent":%%.1f,"memory_total_mb":16384,'
  .. '"memory_used_mb":%%d,"disk_percent":61.0,"disk_total_gb":500.0,"disk_used_gb":305.0,'
  .. '"network_rx_bytes":%%d,"network_tx_bytes":%%d,"load_1m":0.5,"load_5m":0.7,'
  .. '"load_15m":0.9,"uptime_seconds":%%d%(metrics_extra)s}%(body_extra)s}'

function setup(thread)
  thread:set("offset", n)
  n = n + 1
end

function request()
  counter = counter + 1
  local index = (counter * %(wrk_threads)d + offset) %% servers
  local id = string.format("bench-%%04d", first + index)
  -- A healthy box's figures (memory below the 95 %% threshold, as payloads.py): a health
  -- change is an event, not the usual path. The last value fills the seed-002 template's
  -- temperature (40.0-59.9, as payloads.py).
  local body = string.format(template, id, id, os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ"),
    math.random() * 100, 30 + math.random() * 40, math.random(1000, 16000),
    counter * 1500, counter * 900, 86400 + counter, 40 + (counter %% 200) / 10)
  return wrk.format("POST", "%(path)s",
    {["Content-Type"] = "application/json", ["X-API-Key"] = keys[index + 1]}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"non2xx":%%d,'
    .. '"socket_errors":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass
class Result:
    """One measured run against one target."""

    target: str
    requests: int
    seconds: float
    failures: int
    p50_ms: float
    p99_ms: float
    server_cpu: float  # fraction of one core the server used
    client_cpu: float  # fraction of one core the load generator used
    run: int = 0  # which of the `--runs` rounds

    @property
    def rate(self) -> float:
        """Successful heartbeats per second."""
        return (self.requests - self.failures) / self.seconds

    @property
    def cpu_us(self) -> float:
        """The server's CPU time per successful heartbeat, in µs."""
        return self.server_cpu * self.seconds / max(1, self.requests - self.failures) * 1e6


# --- the baseline server -------------------------------------------------------------------


def serve_baseline(port: int, threads: int) -> None:
    """A bare Flask app answering the heartbeat path with control's response, under waitress."""
    from flask import Flask, jsonify, request
    from waitress.server import create_server

    app = Flask("baseline")

    @app.post(PATH)
    def heartbeat():
        request.get_data()  # read the body, as control does, and nothing more
        return jsonify(RESPONSE)

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "queue depth" noise
    # The same call and settings `homelab-control serve` uses (control/cli.py).
    create_server(app, host="127.0.0.1", port=port, threads=threads, ident="baseline").run()


class Baseline:
    """The baseline server as a subprocess of this script."""

    def __init__(self, threads: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.threads = threads

    def __enter__(self) -> Baseline:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-baseline", str(self.port), str(self.threads)]
        )
        wait_http(self.url + "/health")
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def wait_http(url: str, timeout: float = 30) -> None:
    """Block until `url` answers 200."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


# --- load generators -----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds used by finished child processes of this one (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_id(index: int) -> str:
    """The id of simulated server `index` (the Lua script formats it the same way)."""
    return f"bench-{index:04d}"


@dataclass(frozen=True)
class Load:
    """Who sends what: server `first + i` heartbeats with `keys[i]`; seed 002's body or 001's."""

    keys: list[str]
    first: int = 0
    device_health: bool = False


def _lua_string_text(text: str) -> str:
    """`text` as it may stand inside the Lua script's single-quoted `string.format` template."""
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("%", "%%")


def lua_template_extras(device_health: bool) -> dict[str, str]:
    """The seed-002 parts of the Lua template: extra metrics (the temperature a `%.1f`) and
    the fields beside `metrics`, from payloads.py so both load generators send the same."""
    if not device_health:
        return {"metrics_extra": "", "body_extra": ""}
    fields = json.dumps(DEVICE_HEALTH, separators=(",", ":"))[1:-1]
    return {
        "metrics_extra": ',"temperature":%.1f,'
        f'"containers_running":{CONTAINERS_RUNNING},"containers_failed":0',
        "body_extra": "," + _lua_string_text(fields),
    }


def run_wrk(url: str, load: Load, connections: int, seconds: float) -> dict:
    """Drive `url` with wrk for `seconds`; the Lua `done` hook prints the figures as JSON."""
    wrk_threads = min(2, connections)
    # A Lua table literal, one key a line (json.dumps quotes them as Lua does).
    table = ",\n".join(json.dumps(key) for key in load.keys)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            LUA
            % {
                "servers": len(load.keys),
                "first": load.first,
                "keys": table,
                "path": PATH,
                "wrk_threads": wrk_threads,
                **lua_template_extras(load.device_health),
            }
        )
    try:
        output = subprocess.run(
            [
                "wrk",
                f"-t{wrk_threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                url + PATH,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(x for x in output.splitlines() if x.startswith("WRKJSON "))
    stats = json.loads(line.removeprefix("WRKJSON "))
    return {
        "requests": stats["requests"],
        "seconds": stats["duration_us"] / 1e6,
        "failures": stats["non2xx"] + stats["socket_errors"],
        "p50_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
    }


def _python_worker(url, load, connections, seconds, process_index, queue):
    """One load process: `connections` threads, each one keep-alive connection, closed loop."""
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(url)
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def agent(thread_index: int) -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        mine: list[float] = []
        bad = 0
        counter = thread_index
        while time.perf_counter() < deadline:
            counter += 1
            index = (counter * 97 + process_index) % len(load.keys)
            body = heartbeat_body(server_id(load.first + index), counter, load.device_health)
            # Each server's heartbeats carry its own bound key, as its agent's would.
            headers = {"Content-Type": "application/json", "X-API-Key": load.keys[index]}
            started = time.perf_counter()
            try:
                conn.request("POST", PATH, body, headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    bad += 1
            except OSError:
                bad += 1
                conn.close()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((latencies, failures[0]))


def run_python(url: str, load: Load, connections: int, seconds: float) -> dict:
    """Drive `url` from two Python processes (one per core) when wrk is not installed."""
    processes = min(2, connections)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    started = time.perf_counter()
    workers = [
        multiprocessing.Process(
            target=_python_worker,
            args=(url, load, connections // processes, seconds, i, queue),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    failures = 0
    for _ in workers:
        part, bad = queue.get()
        latencies.extend(part)
        failures += bad
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "failures": failures,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def measure(name: str, url: str, pid: int, args, load: Load, run: int = 0) -> Result:
    """Warm up, then one measured run with CPU accounting."""
    drive = run_wrk if args.client == "wrk" else run_python
    drive(url, load, args.connections, args.warmup)
    server_before, client_before = cpu_seconds(pid), children_cpu()
    figures = drive(url, load, args.connections, args.duration)
    server_cpu = (cpu_seconds(pid) - server_before) / figures["seconds"]
    client_cpu = (children_cpu() - client_before) / figures["seconds"]
    return Result(target=name, server_cpu=server_cpu, client_cpu=client_cpu, run=run, **figures)


def heartbeats_counted(url: str) -> int:
    """Control's own count of heartbeats it stored (homelab_heartbeats_received_total)."""
    import requests

    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("homelab_heartbeats_received_total "):
            return int(float(line.split()[1]))
    return 0


def enroll(
    url: str, servers: int, first: int = 0, device_health: bool = False, connections: int = 4
) -> Load:
    """Enroll servers first..first+servers-1 as new agents do, with the body they will send.

    One heartbeat per server with the shared bootstrap key; control answers each with
    `agent_key`, the only key that may speak for that server from then on. A setup phase,
    not measured; a few connections at once only to make it shorter.
    """
    import http.client
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlparse

    parsed = urlparse(url)
    headers = {"Content-Type": "application/json", "X-API-Key": AGENT_KEY}
    keys = [""] * servers

    def enroll_every_nth(start: int) -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        try:
            for index in range(start, servers, connections):
                name = server_id(first + index)
                conn.request("POST", PATH, heartbeat_body(name, 0, device_health), headers)
                answer = conn.getresponse()
                body = answer.read()
                if answer.status != 200 or b"agent_key" not in body:
                    raise RuntimeError(f"enrolling {name}: HTTP {answer.status} {body.decode()}")
                keys[index] = json.loads(body)["agent_key"]
        finally:
            conn.close()

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(enroll_every_nth, range(connections)))  # list(): re-raise any failure
    return Load(keys, first, device_health)


def run_control(database_url: str, name: str, args, run: int = 0) -> list[Result]:
    """Measure `homelab-control serve` on `database_url` (a fresh data dir) with both payloads.

    Seed-001 agents (servers 0..N-1, target `name`) and seed-002 agents (N..2N-1, target
    `name+dh`) take turns on the same server process; which goes first alternates by `run`,
    so drift during a run hits both alike.
    """
    with tempfile.TemporaryDirectory(prefix="bench-hb-") as data_dir:
        live = LiveControl(
            Path(data_dir),
            database_url=database_url or f"sqlite:///{data_dir}/homelab.db",
            agent_key=AGENT_KEY,
            # The bench is a load test of `--servers` new boxes arriving at once, all enrolled
            # with one shared key within seconds: far past the default of 60 per key and hour,
            # which is there to stop a leaked key from adding boxes without bound.
            enroll_rate=max(60, 2 * args.servers),
            log_level="WARNING",
        )
        live.start("--threads", str(args.threads))
        try:
            began = time.perf_counter()
            seed1 = enroll(live.url, args.servers)
            seed2 = enroll(live.url, args.servers, first=args.servers, device_health=True)
            print(
                f"{name}: enrolled {len(seed1.keys)} of {args.servers} servers (seed 001) and "
                f"{len(seed2.keys)} of {args.servers} (seed 002) in "
                f"{time.perf_counter() - began:.1f} s (setup, not measured); each heartbeat "
                "then sends its server's bound key"
            )
            before = heartbeats_counted(live.url)
            turns = [(name, seed1), (f"{name}+dh", seed2)]
            if run % 2:
                turns.reverse()
            results = [
                measure(target, live.url, live.process.pid, args, load, run)
                for target, load in turns
            ]
            stored = heartbeats_counted(live.url) - before
        finally:
            live.stop()
        # Every answered 200 must have been stored (more may be: warm-ups, requests wrk cut off).
        answered = sum(r.requests - r.failures for r in results)
        if stored < answered:
            print(f"WARNING {name}: {answered} answered 200 but only {stored} stored")
    return results


def print_table(results: list[Result], args) -> None:
    """One row per run, then the per-database ratio of medians against the baseline."""
    print(
        f"\nheartbeat ingest: {args.connections} connections, waitress threads={args.threads}, "
        f"{args.servers} server ids, {args.duration:.0f} s per run, load from {args.client}, "
        "each server's bound (stored) agent key"
    )
    print(
        f"{'target':<12} {'hb/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'srv cpu':>8} {'load cpu':>9}"
    )
    for r in results:
        print(
            f"{r.target:<12} {r.rate:>8.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.failures:>7d} "
            f"{r.server_cpu:>7.0%} {r.client_cpu:>9.0%}"
        )
    bases = {
        suffix: statistics.median(r.rate for r in results if r.target == f"baseline{suffix}")
        for suffix in ("", "+dh")
    }
    print(
        f"\ngoals: >= {GOALS['rate']:.0f} hb/s (SQLite), p99 <= {GOALS['p99_ms']:.0f} ms, "
        f"ratio to the baseline sent the same payload >= {GOALS['ratio']}"
    )
    # Summary lines start "median <target>", so nothing parsing the table above mistakes them
    # for a run's row.
    print(f"{'':<7}{'target':<12} {'hb/s':>6} {'ratio':>6}  p99")
    for target in dict.fromkeys(r.target for r in results if not r.target.startswith("base")):
        rows = [r for r in results if r.target == target]
        base = bases["+dh" if target.endswith("+dh") else ""]
        rate = statistics.median(r.rate for r in rows)
        p99 = statistics.median(r.p99_ms for r in rows)
        wanted = GOALS["rate"] if target.startswith("sqlite") else 0.0
        verdict = (
            "ok"
            if rate >= wanted and p99 <= GOALS["p99_ms"] and rate / base >= GOALS["ratio"]
            else "MISSES GOAL"
        )
        print(f"median {target:<12} {rate:>6.0f} {rate / base:>6.2f}  {p99:.1f} ms  {verdict}")
    print_device_health_cost(results)


def print_device_health_cost(results: list[Result]) -> None:
    """Control's CPU per heartbeat with seed 002's payload against seed 001's, per database."""
    print(
        f"\nseed-002 payload (20 containers, 5 services, packages, commit) / seed-001 payload: "
        f"control CPU per heartbeat, target ratio <= {DEVICE_HEALTH_GOAL:.2f}"
    )
    print(f"{'targets':<18} {'seed-001 µs':>12} {'seed-002 µs':>12} {'ratio':>7}  per run")
    for target in dict.fromkeys(r.target for r in results if "+" not in r.target):
        if target.startswith("baseline"):
            continue
        old = {r.run: r.cpu_us for r in results if r.target == target}
        new = {r.run: r.cpu_us for r in results if r.target == f"{target}+dh"}
        per_run = [new[run] / old[run] for run in sorted(old) if run in new]
        if not per_run:
            continue
        ratio = statistics.median(per_run)
        verdict = "ok" if ratio <= DEVICE_HEALTH_GOAL else "MISSES GOAL"
        runs = ", ".join(f"{value:.2f}" for value in per_run)
        print(
            f"{target + '+dh/' + target:<18} {statistics.median(old.values()):>12.0f} "
            f"{statistics.median(new.values()):>12.0f} {ratio:>7.2f}  ({runs})  {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=16, help="concurrent agents")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads (both servers)")
    parser.add_argument("--servers", type=int, default=1000, help="distinct server ids")
    parser.add_argument("--runs", type=int, default=2, help="runs per target, interleaved")
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--smoke", action="store_true", help="a few seconds, SQLite only")
    parser.add_argument(
        "--profile", action="store_true", help="in-process: time and cProfile both payloads"
    )
    parser.add_argument("--heartbeats", type=int, default=2000, help="per payload (--profile)")
    parser.add_argument(
        "--profile-server",
        action="store_true",
        help="waitress and control in-process under wrk: CPU by thread, then cProfile",
    )
    parser.add_argument("--serve-baseline", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(*args.serve_baseline)
        return 0
    if args.profile:
        from profile_ingest import profile_payloads  # bench/, beside this script

        return profile_payloads(args.servers, args.heartbeats, args.runs)
    if args.profile_server:
        from profile_ingest import profile_server  # bench/, beside this script

        return profile_server(args.servers, args.duration, args.connections, args.threads)
    if args.smoke:
        args.duration, args.warmup, args.runs, args.databases = 1, 0.5, 1, "sqlite"
        args.servers, args.connections = 50, 4
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    databases = [name.strip() for name in args.databases.split(",") if name.strip()]

    cluster = None
    if "postgres" in databases:
        if not PostgresCluster.find_bin("initdb"):
            print("PostgreSQL (initdb) not installed: skipping postgres", file=sys.stderr)
            databases.remove("postgres")
        else:
            cluster = PostgresCluster()
            cluster.start()
    results: list[Result] = []
    # The baseline checks no key, but gets requests of the same size as control's: each
    # payload in turn, as control does.
    baseline_keys = [f"hlc_{secrets.token_urlsafe(32)}" for _ in range(args.servers)]
    baseline_loads = {
        "baseline": Load(baseline_keys),
        "baseline+dh": Load(baseline_keys, args.servers, device_health=True),
    }
    try:
        with Baseline(args.threads) as baseline:
            for run in range(args.runs):
                # Interleave targets so drift on a shared machine hits all alike.
                for target, load in baseline_loads.items():
                    pid = baseline.process.pid
                    results.append(measure(target, baseline.url, pid, args, load, run))
                for name in databases:
                    url = cluster.url if name == "postgres" else ""
                    results.extend(run_control(url, name, args, run))
                    if cluster and name == "postgres":
                        cluster.truncate_all()
    finally:
        if cluster:
            cluster.stop()
    print_table(results, args)
    failed = [r for r in results if r.failures]
    for r in failed:
        print(f"FAIL: {r.target}: {r.failures} of {r.requests} heartbeats not answered 200")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
