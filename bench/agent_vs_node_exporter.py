"""Benchmark: homelab-agent vs prometheus-node-exporter on the same box, in the same run.

Both exporters are started on 127.0.0.1 (free ports) and scraped alternately, one request
each in turn, with the headers Prometheus 2.x sends (OpenMetrics preferred, gzip accepted)
and a fresh connection per scrape. Prints, for each: median and p90 scrape latency, peak
RSS, and CPU seconds (user + system of the exporter process) per 1,000 scrapes, plus the
agent/node_exporter ratios and whether the goals hold (issue 15: median latency <= 0.9x
node_exporter's on the same collectors, <= 1.0x against its defaults; RSS <= 25 MB).

`--same-collectors` runs both with exactly the collectors they share (the agent's defaults
that node_exporter also has; the agent's own containers, packages and systemd are off);
without it each runs its defaults (node_exporter 1.5's are ~45 collectors).
`--heartbeat` runs the agent as deployed, heartbeating every second to a stub control in this
process (which answers 200), so its RSS includes the heartbeat's modules;
without it the agent runs exporter-only, as node_exporter does.

    .venv/bin/python bench/agent_vs_node_exporter.py            # 1,000 scrapes each
    .venv/bin/python bench/agent_vs_node_exporter.py --smoke    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
GOAL_LATENCY_RATIO = {"same": 0.9, "defaults": 1.0}
GOAL_RSS_MB = 25.0
# The agent's default collectors that node_exporter also has, under the same names.
SAME_COLLECTORS = ("arp", "bonding", "conntrack", "cpu", "diskstats", "edac", "entropy",
                   "filefd", "filesystem", "hwmon", "loadavg", "mdadm", "meminfo", "netclass",
                   "netdev", "netstat", "os", "pressure", "sockstat", "softnet", "stat",
                   "textfile", "thermal_zone", "time", "timex", "udp_queues", "uname",
                   "vmstat")  # fmt: skip
# The agent's own default collectors, which node_exporter does not have (or, for systemd,
# runs only when enabled): off in --same-collectors.
AGENT_ONLY = ("containers", "packages", "systemd")


class StubControl(ThreadingHTTPServer):
    """Answers every heartbeat POST with 200, as control does for a known server; counts them."""

    daemon_threads = True
    heartbeats = 0

    def __init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({"status": "ok", "server_registered": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                server.heartbeats += 1

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: one heartbeat a second."""

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def free_port() -> int:
    """A currently unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    """Current resident set size in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Target:
    """One exporter process being benchmarked."""

    name: str
    argv: list[str]
    port: int
    env: dict | None = None
    latencies: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    process: subprocess.Popen | None = None
    log: IO[bytes] | None = None

    def start(self) -> None:
        """Launch and wait (up to 30 s) until /metrics answers."""
        # A log file, not a pipe: node_exporter logs failing collectors on every scrape and
        # would block once an unread pipe fills up.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"{self.name} exited: {self.log.read().decode()}")
            try:
                self.scrape()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{self.name} did not answer on port {self.port}")

    def scrape(self) -> float:
        """One Prometheus-like scrape on a fresh connection; returns seconds taken."""
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                "GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
            )
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{self.name} answered {response.status}")
        finally:
            conn.close()
        return time.perf_counter() - start

    def sample_rss(self) -> None:
        """Track the peak RSS seen so far."""
        self.peak_rss_mb = max(self.peak_rss_mb, rss_mb(self.process.pid))

    def stop(self) -> None:
        """Terminate the process."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.log:
            self.log.close()

    def summary(self) -> dict:
        """Median/p90 latency (ms), peak RSS (MB) and CPU seconds per 1,000 scrapes."""
        ordered = sorted(self.latencies)
        return {
            "scrapes": len(ordered),
            "median_ms": statistics.median(ordered) * 1000,
            "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000,
            "peak_rss_mb": self.peak_rss_mb,
            "cpu_s_per_1000": (self.cpu_end - self.cpu_start) / len(ordered) * 1000,
        }


def run(
    scrapes: int,
    warmup: int,
    node_exporter: str,
    same_collectors: bool = False,
    heartbeat: bool = False,
) -> dict:
    """Start both exporters, scrape them alternately, and return both summaries and ratios."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    env["PYTHONPATH"] = str(REPO)
    agent_port, node_port = free_port(), free_port()
    agent_argv = [sys.executable, "-m", "exporter_agent", "--listen-address", "127.0.0.1",
                  "--listen-port", str(agent_port)]  # fmt: skip
    control = state_dir = None
    if heartbeat:
        control = StubControl()
        state_dir = tempfile.TemporaryDirectory()  # cleaned up below
        agent_argv += ["--control-url", control.url, "--server-id", "bench-box",
                       "--interval", "1", "--state-dir", state_dir.name]  # fmt: skip
        env["HOMELAB_API_KEY"] = "bench-agent-key"
    node_argv = [node_exporter, f"--web.listen-address=127.0.0.1:{node_port}"]
    if same_collectors:
        agent_argv += [f"--no-collector.{c}" for c in AGENT_ONLY]
        node_argv += [
            "--collector.disable-defaults",
            *(f"--collector.{c}" for c in SAME_COLLECTORS),
        ]
    agent = Target("homelab-agent", agent_argv, agent_port, env)
    node = Target("node_exporter", node_argv, node_port)
    targets = (agent, node)
    try:
        for target in targets:
            target.start()
        for _ in range(warmup):
            for target in targets:
                target.scrape()
        for target in targets:
            target.cpu_start = cpu_seconds(target.process.pid)
            target.sample_rss()
        for i in range(scrapes):
            # Alternate which one goes first so neither always runs on a warmer cache.
            for target in targets if i % 2 == 0 else reversed(targets):
                target.latencies.append(target.scrape())
            if i % 50 == 0:
                for target in targets:
                    target.sample_rss()
        for target in targets:
            target.cpu_end = cpu_seconds(target.process.pid)
            target.sample_rss()
    finally:
        for target in targets:
            target.stop()
        if control is not None:
            control.shutdown()
            control.server_close()
        if state_dir is not None:
            state_dir.cleanup()
    a, n = agent.summary(), node.summary()
    ratios = {key: a[key] / n[key] if n[key] else float("inf") for key in a if key != "scrapes"}
    latency_goal = GOAL_LATENCY_RATIO["same" if same_collectors else "defaults"]
    return {
        "agent": a,
        "node_exporter": n,
        "ratio": ratios,
        "latency_goal": latency_goal,
        "goals": {
            "latency_ratio": ratios["median_ms"] <= latency_goal,
            "agent_rss_le_25mb": a["peak_rss_mb"] <= GOAL_RSS_MB,
        },
        "node_exporter_collectors": "the shared ones, on both" if same_collectors else "defaults",
        "agent_heartbeats": control.heartbeats if control is not None else None,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def print_table(result: dict) -> None:
    """Human-readable report."""
    rows = (
        ("median scrape latency (ms)", "median_ms", "{:.2f}"),
        ("p90 scrape latency (ms)", "p90_ms", "{:.2f}"),
        ("peak RSS (MB)", "peak_rss_mb", "{:.1f}"),
        ("CPU seconds / 1,000 scrapes", "cpu_s_per_1000", "{:.2f}"),
    )
    a, n, r = result["agent"], result["node_exporter"], result["ratio"]
    print(f"{a['scrapes']} alternating scrapes each, {result['cpus']} CPUs, "
          f"Python {result['python']}, collectors: "
          f"{result['node_exporter_collectors']}")  # fmt: skip
    if result["agent_heartbeats"] is not None:
        print(f"agent heartbeating every 1 s to a stub control: "
              f"{result['agent_heartbeats']} heartbeats accepted")  # fmt: skip
    print(f"{'':30} {'agent':>10} {'node_exp':>10} {'ratio':>8}")
    for label, key, fmt in rows:
        print(f"{label:30} {fmt.format(a[key]):>10} {fmt.format(n[key]):>10} {r[key]:>7.2f}x")
    goals = {
        "latency_ratio": f"median latency <= {result['latency_goal']}x node_exporter's",
        "agent_rss_le_25mb": f"agent peak RSS <= {GOAL_RSS_MB:.0f} MB",
    }
    for goal, met in result["goals"].items():
        print(f"goal {goals[goal]}: {'met' if met else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=1000, help="scrapes per exporter")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured scrapes first")
    parser.add_argument("--smoke", action="store_true", help="30 scrapes: checks it runs")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--node-exporter", default=NODE_EXPORTER, help="node_exporter binary")
    parser.add_argument(
        "--same-collectors",
        action="store_true",
        help="run both with only the collectors they share (default: each its defaults)",
    )
    parser.add_argument(
        "--heartbeat",
        action="store_true",
        help="the agent also heartbeats every second to a stub control (as deployed)",
    )
    args = parser.parse_args(argv)
    binary = args.node_exporter if os.access(args.node_exporter, os.X_OK) else None
    binary = binary or shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if not binary:
        print("node_exporter not found (apt install prometheus-node-exporter)", file=sys.stderr)
        return 2
    scrapes, warmup = (30, 3) if args.smoke else (args.scrapes, args.warmup)
    result = run(scrapes, warmup, binary, args.same_collectors, args.heartbeat)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
