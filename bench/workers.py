"""Scale-out: heartbeat throughput of control with 1, 2 and 4 API worker processes.

Each target is a real server started as a subprocess on a free port: `homelab-control serve
--workers N` (the command operators run: granian workers plus the scheduler in the main
process; N = 0 is `serve` without `--workers`, one waitress process), or, to choose between
the two multi-process servers, `control.wsgi:app` under gunicorn's threaded worker (`-k gthread
--threads 8 -w N`) or granian (`--workers N --blocking-threads 8`). The load is
bench/heartbeat_ingest.py's: server ids enrolled first with the shared bootstrap key (not
measured), then `wrk` posting seed-001 heartbeats, each with its server's bound key, on
keep-alive connections (closed loop) for `--duration` seconds after a warm-up. PostgreSQL is a
throwaway cluster (tests/postgres.py, fsync off), emptied between targets. Each row gives
heartbeats/s, p50/p99, the CPU of the server (all its processes) and of PostgreSQL in cores,
how many of the server's processes held load connections, and the ratio to the same server's
first worker count in the same run.

    .venv/bin/python bench/workers.py [--servers serve,gunicorn,granian] [--workers 0,1,2,4]
        [--databases postgres,sqlite] [--duration 10] [--connections 32] [--runs 2]
        [--enroll 1000] [--smoke]

Exit status 1 when any heartbeat was not answered 200.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# bench/, the script's directory, is on sys.path: the load generator and enrollment are
# heartbeat_ingest's, so both benchmarks send the same requests.
from heartbeat_ingest import AGENT_KEY, enroll, run_wrk  # noqa: E402

from tests.helpers import free_port  # noqa: E402 - after the sys.path line above
from tests.postgres import PostgresCluster  # noqa: E402

THREADS = 8  # per worker, as `serve`'s default


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> bool:
    """Whether `url` answered 200 before `timeout` (False at once if `process` exited).

    Workers may accept before their app is built, so a slow answer is a retry, not a failure.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False


@dataclass
class Row:
    """One measured run of one target."""

    server: str
    database: str
    workers: int
    run: int
    requests: int
    failures: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # cores, all the server's processes
    db_cpu: float  # cores, PostgreSQL's processes (0 for SQLite: it runs inside the server)
    answered_by: int  # worker processes that held a load connection at the end

    @property
    def rate(self) -> float:
        """Heartbeats answered 200 per second."""
        return (self.requests - self.failures) / self.seconds


def command(server: str, port: int, workers: int) -> list[str]:
    """The argv that starts `server` with `workers` API processes on 127.0.0.1:`port`."""
    python = sys.executable
    if server == "serve":
        # 0 workers: the embedded default, API and scheduler in one waitress process.
        extra = ["--workers", str(workers)] if workers else []
        return [python, "-m", "control.cli", "serve", "--port", str(port), *extra]
    if server == "gunicorn":
        return [python, "-m", "gunicorn", "-k", "gthread", "--threads", str(THREADS),
                "-w", str(workers), "-b", f"127.0.0.1:{port}", "control.wsgi:app"]  # fmt: skip
    return [python, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--blocking-threads", str(THREADS),
            "--no-ws", "control.wsgi:app"]  # fmt: skip


class Target:
    """One server with its workers, on a fresh data dir and the given database."""

    def __init__(self, server: str, workers: int, database_url: str, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = command(server, self.port, workers)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
        self.env.update(
            HOMELAB_DATA_DIR=str(workdir),
            HOMELAB_DATABASE_URL=database_url,
            HOMELAB_AGENT_KEY=AGENT_KEY,
            HOMELAB_ENROLL_RATE="100000",  # all servers are new boxes at once (heartbeat_ingest)
            HOMELAB_LOG_LEVEL="WARNING",
            PYTHONPATH=str(REPO),
        )
        self.log = workdir / "server.log"

    def __enter__(self) -> Target:
        self._log = open(self.log, "wb")  # closed in __exit__
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO
        )
        if not wait_healthy(self.url + "/health", self.process):
            self.__exit__()
            raise RuntimeError(f"{self.argv} did not come up:\n{self.log.read_text()}")
        return self

    def processes(self) -> list[psutil.Process]:
        """The server's main process and all its children."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def serving_processes(self) -> int:
        """How many of the server's processes hold an established connection on its port."""
        count = 0
        for proc in self.processes():
            try:
                conns = proc.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            if any(c.status == "ESTABLISHED" and c.laddr.port == self.port for c in conns):
                count += 1
        return count

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for proc in self.processes():
                proc.kill()
            self.process.wait()
        self._log.close()


def tree_cpu(pid: int | None) -> float:
    """CPU seconds used so far by process `pid` and its children (0 without a pid)."""
    if pid is None:
        return 0.0
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(target: Target, args: argparse.Namespace, db_pid: int | None) -> dict:
    """Enroll the servers, warm up, then one measured wrk run with CPU accounting."""
    load = enroll(target.url, args.enroll)
    run_wrk(target.url, load, args.connections, args.warmup)
    before, db_before = tree_cpu(target.process.pid), tree_cpu(db_pid)
    # wrk keeps its connections open for the whole run: see who holds them half-way.
    holders: list[int] = []
    sampler = threading.Timer(args.duration / 2, lambda: holders.append(target.serving_processes()))
    sampler.start()
    figures = run_wrk(target.url, load, args.connections, args.duration)
    sampler.join()
    figures["server_cpu"] = (tree_cpu(target.process.pid) - before) / figures["seconds"]
    figures["db_cpu"] = (tree_cpu(db_pid) - db_before) / figures["seconds"]
    figures["answered_by"] = holders[0] if holders else 0
    return figures


def run(args: argparse.Namespace) -> list[Row]:
    """Every server, database, worker count and run (runs outermost, so drift hits all)."""
    rows: list[Row] = []
    cluster = PostgresCluster() if "postgres" in args.databases else None
    if cluster:
        cluster.start()
    try:
        for run_index in range(args.runs):
            for server in args.servers:
                for database in args.databases:
                    for workers in args.workers:
                        if server != "serve" and not workers:
                            continue  # "0 workers" is serve's embedded one-process mode
                        with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
                            url = (
                                cluster.url
                                if database == "postgres" and cluster
                                else (f"sqlite:///{tmp}/homelab.db")
                            )
                            postgres = database == "postgres" and cluster
                            db_pid = cluster.process.pid if postgres else None
                            with Target(server, workers, url, Path(tmp)) as target:
                                figures = measure(target, args, db_pid)
                            if database == "postgres" and cluster:
                                cluster.truncate_all()
                        row = Row(server, database, workers, run_index, **figures)
                        rows.append(row)
                        print(
                            f"  {server:<8} {database:<8} {workers} worker(s), run {run_index}: "
                            f"{row.rate:.0f} hb/s, p99 {row.p99_ms:.1f} ms, "
                            f"cpu {row.server_cpu:.2f} + db {row.db_cpu:.2f} cores, "
                            f"failures {row.failures}",
                            flush=True,
                        )
    finally:
        if cluster:
            cluster.stop()
    return rows


def report(rows: list[Row], servers: int) -> None:
    """One line per server/database/workers: every run's figures, then the ratio of medians."""
    print(
        f"\nscale-out: {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}, "
        f"{THREADS} threads per worker, {servers} enrolled servers"
    )
    header = (
        f"{'server':<9}{'db':<9}{'workers':>7}  {'hb/s (runs)':<18}{'p50 ms':<14}"
        f"{'p99 ms':<14}{'cpu cores':<13}{'db cores':<13}{'procs busy':<11}{'x base':>7}"
    )
    print(header)
    print("-" * len(header))
    groups: dict[tuple[str, str], dict[int, list[Row]]] = {}
    for row in rows:
        groups.setdefault((row.server, row.database), {}).setdefault(row.workers, []).append(row)
    for (server, database), by_workers in groups.items():
        # The base: the one-process embedded serve (0) if measured, else 1 worker.
        first = by_workers.get(0) or by_workers.get(1)
        base = statistics.median(r.rate for r in first) if first else None
        for workers, runs in sorted(by_workers.items()):
            median = statistics.median(r.rate for r in runs)
            ratio = f"{median / base:.2f}" if base else "-"
            print(
                f"{server:<9}{database:<9}{workers:>7}  "
                f"{' / '.join(f'{r.rate:.0f}' for r in runs):<18}"
                f"{' / '.join(f'{r.p50_ms:.1f}' for r in runs):<14}"
                f"{' / '.join(f'{r.p99_ms:.1f}' for r in runs):<14}"
                f"{' / '.join(f'{r.server_cpu:.2f}' for r in runs):<13}"
                f"{' / '.join(f'{r.db_cpu:.2f}' for r in runs):<13}"
                f"{' / '.join(str(r.answered_by) for r in runs):<11}{ratio:>7}"
            )


def main() -> int:
    """Parse flags, run every target, print the table; 1 when a heartbeat failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="serve", help="serve,gunicorn,granian")
    parser.add_argument(
        "--workers",
        default="0,1,2,4",
        help="worker counts, comma-separated; 0 = `serve` without --workers (one process)",
    )
    parser.add_argument("--databases", default="postgres", help="postgres,sqlite")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--enroll", type=int, default=1000, help="server ids (each enrolls)")
    parser.add_argument(
        "--smoke", action="store_true", help="0 and 2 workers, 50 servers, 2 s, 1 run"
    )
    args = parser.parse_args()
    args.servers = args.servers.split(",")
    args.workers = [int(n) for n in args.workers.split(",")]
    args.databases = args.databases.split(",")
    if args.smoke:
        args.workers, args.duration, args.warmup, args.runs = [0, 2], 2.0, 1.0, 1
        args.enroll = 50
    rows = run(args)
    report(rows, args.enroll)
    failed = sum(r.failures for r in rows)
    if failed:
        print(f"FAIL: {failed} heartbeats not answered 200")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
