"""Heartbeat ingest: `homelab-control serve` against a bare Flask app under the same waitress.

N concurrent simulated agents (keep-alive connections, closed loop: each sends its next
heartbeat when the previous one is answered) post seed-001 heartbeats with metrics and
os_info for ~1000 distinct server ids, for T seconds. The same load then hits a bare Flask app
that returns the same JSON under waitress with the same thread count, in a separate process,
so the ratio is what control's validation, auth and database write cost per heartbeat.

The load comes from `wrk` (Debian package `wrk`, C, epoll) with a Lua script that varies the
server id and the metrics; without it, from Python processes (heavier on a 2-core box, so the
load generator's own CPU share is printed beside every row).

    .venv/bin/python bench/heartbeat_ingest.py [--duration 10] [--connections 16] [--threads 8]
        [--databases sqlite,postgres] [--runs 2] [--client auto|wrk|python] [--smoke]

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

from payloads import heartbeat_body  # the script's own directory, bench/, is on sys.path

from tests.helpers import free_port
from tests.live import LiveControl
from tests.postgres import PostgresCluster

PATH = "/api/v1/agents/heartbeat"
AGENT_KEY = "bench-agent-key"
RESPONSE = {"status": "ok", "server_registered": False, "pending_commands": []}
GOALS = {"rate": 1000.0, "p99_ms": 50.0, "ratio": 0.5}

LUA = r"""
local servers = %(servers)d
local key = "%(key)s"
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
  .. '"load_15m":0.9,"uptime_seconds":%%d}}'

function setup(thread)
  thread:set("offset", n)
  n = n + 1
end

function request()
  counter = counter + 1
  local id = string.format("bench-%%04d", (counter * %(wrk_threads)d + offset) %% servers)
  local body = string.format(template, id, id, os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ"),
    math.random() * 100, math.random() * 100, math.random(1000, 16000),
    counter * 1500, counter * 900, 86400 + counter)
  return wrk.format("POST", "%(path)s",
    {["Content-Type"] = "application/json", ["X-API-Key"] = key}, body)
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

    @property
    def rate(self) -> float:
        """Successful heartbeats per second."""
        return (self.requests - self.failures) / self.seconds


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


def run_wrk(url: str, key: str, connections: int, seconds: float, servers: int) -> dict:
    """Drive `url` with wrk for `seconds`; the Lua `done` hook prints the figures as JSON."""
    wrk_threads = min(2, connections)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            LUA % {"servers": servers, "key": key, "path": PATH, "wrk_threads": wrk_threads}
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


def _python_worker(url, key, connections, seconds, servers, index, queue):
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
        headers = {"Content-Type": "application/json", "X-API-Key": key}
        while time.perf_counter() < deadline:
            counter += 1
            body = heartbeat_body(f"bench-{(counter * 97 + index) % servers:04d}", counter)
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


def run_python(url: str, key: str, connections: int, seconds: float, servers: int) -> dict:
    """Drive `url` from two Python processes (one per core) when wrk is not installed."""
    processes = min(2, connections)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    started = time.perf_counter()
    workers = [
        multiprocessing.Process(
            target=_python_worker,
            args=(url, key, connections // processes, seconds, servers, i, queue),
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


def measure(name: str, url: str, pid: int, args, key: str = AGENT_KEY) -> Result:
    """Warm up (registers the server ids), then one measured run with CPU accounting."""
    load = run_wrk if args.client == "wrk" else run_python
    load(url, key, args.connections, args.warmup, args.servers)
    server_before, client_before = cpu_seconds(pid), children_cpu()
    figures = load(url, key, args.connections, args.duration, args.servers)
    server_cpu = (cpu_seconds(pid) - server_before) / figures["seconds"]
    client_cpu = (children_cpu() - client_before) / figures["seconds"]
    return Result(target=name, server_cpu=server_cpu, client_cpu=client_cpu, **figures)


def heartbeats_counted(url: str) -> int:
    """Control's own count of heartbeats it stored (homelab_heartbeats_received_total)."""
    import requests

    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("homelab_heartbeats_received_total "):
            return int(float(line.split()[1]))
    return 0


def run_control(database_url: str, name: str, args) -> Result:
    """Measure `homelab-control serve` on `database_url` (a fresh data dir)."""
    with tempfile.TemporaryDirectory(prefix="bench-hb-") as data_dir:
        live = LiveControl(
            Path(data_dir),
            database_url=database_url or f"sqlite:///{data_dir}/homelab.db",
            agent_key=AGENT_KEY,
            log_level="WARNING",
        )
        key = AGENT_KEY
        if args.stored_key:
            # The production path: a key made by `homelab-control keys create`, found by hash
            # in the database, not a bootstrap key from the environment.
            key = subprocess.run(
                [sys.executable, "-m", "control.cli", "keys", "create", "--scope", "agent"],
                env=live.env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        live.start("--threads", str(args.threads))
        try:
            result = measure(name, live.url, live.process.pid, args, key)
            stored = heartbeats_counted(live.url)
        finally:
            live.stop()
        # Every answered 200 must have been stored (more may be: requests wrk cut off).
        answered = result.requests - result.failures
        if stored < answered:
            print(f"WARNING {name}: {answered} answered 200 but only {stored} stored")
    return result


def print_table(results: list[Result], args) -> None:
    """One row per run, then the per-database ratio of medians against the baseline."""
    print(
        f"\nheartbeat ingest: {args.connections} connections, waitress threads={args.threads}, "
        f"{args.servers} server ids, {args.duration:.0f} s per run, load from {args.client}, "
        f"{'stored' if args.stored_key else 'bootstrap'} agent key"
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
    base = statistics.median(r.rate for r in results if r.target == "baseline")
    print("\ngoals (SQLite): >= 1000 hb/s, p99 <= 50 ms, ratio to baseline >= 0.5")
    print(f"{'target':<12} {'median hb/s':>12} {'ratio':>7}  median p99")
    for target in dict.fromkeys(r.target for r in results if r.target != "baseline"):
        rows = [r for r in results if r.target == target]
        rate = statistics.median(r.rate for r in rows)
        p99 = statistics.median(r.p99_ms for r in rows)
        verdict = (
            "ok"
            if rate >= GOALS["rate"] and p99 <= GOALS["p99_ms"] and rate / base >= GOALS["ratio"]
            else "MISSES GOAL"
        )
        print(f"{target:<12} {rate:>12.0f} {rate / base:>7.2f}  p99 {p99:.1f} ms  {verdict}")


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
    parser.add_argument(
        "--bootstrap-key",
        dest="stored_key",
        action="store_false",
        help="authenticate with HOMELAB_AGENT_KEY instead of a stored key",
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds, SQLite only")
    parser.add_argument("--serve-baseline", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(*args.serve_baseline)
        return 0
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
    try:
        with Baseline(args.threads) as baseline:
            for _ in range(args.runs):
                # Interleave targets so drift on a shared machine hits all alike.
                results.append(measure("baseline", baseline.url, baseline.process.pid, args))
                for name in databases:
                    url = cluster.url if name == "postgres" else ""
                    results.append(run_control(url, name, args))
                    if cluster and name == "postgres":
                        cluster.truncate_all()
    finally:
        if cluster:
            cluster.stop()
    print_table(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
