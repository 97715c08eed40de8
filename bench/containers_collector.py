"""Benchmark: one containers-collector scrape with 100 containers, against its own round trip.

A Docker-Engine-API-shaped HTTP server runs in this process on a real unix socket and
answers ``GET /containers/json?all=1`` with 100 containers as Docker 27 lists them (compose
labels, ports, networks, mounts; a mix of running, exited, unhealthy, restarting). Alternating,
in the same run:

- collector: ``ContainersCollector.collect()`` and the exposition of a registry holding only
  it, encoded as the agent's /metrics does (``exporter_agent.exposition.encode``), i.e. what
  the collector adds to a scrape;
- collector_generate_latest: the same with prometheus_client's ``generate_latest`` (slower;
  shown for comparison, the agent does not serve it);
- baseline: the same HTTP round trip on the same socket returning the same JSON, only
  ``json.loads``-ed (``containers.fetch``), i.e. the floor any engine-API collector pays.

Prints median and p90 of each, the ratio of the medians, and whether the goal holds
(collector median <= 5 ms per scrape). ``--profile`` prints cProfile's top functions.

    .venv/bin/python bench/containers_collector.py               # 2,000 scrapes each
    .venv/bin/python bench/containers_collector.py --smoke       # a few, for the tests
    .venv/bin/python bench/containers_collector.py --profile     # where a scrape's time goes
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import socketserver
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporter_agent.collectors.containers import ContainersCollector, fetch
from exporter_agent.exposition import encode

GOAL_MS = 5.0
CONTAINERS = 100


def docker_entry(i: int) -> dict:
    """One realistic /containers/json entry (Docker 27, a compose service)."""
    kinds = [
        ("running", "Up 3 hours (healthy)"),
        ("running", "Up 2 days"),
        ("exited", "Exited (0) 4 hours ago"),
        ("exited", "Exited (1) 12 minutes ago"),
        ("running", "Up 10 minutes (unhealthy)"),
        ("restarting", "Restarting (137) 2 seconds ago"),
    ]
    state, status = kinds[i % len(kinds)] if i % 10 < 6 else kinds[1]
    name = f"home-service{i:03d}-1"
    return {
        "Id": f"{i:064x}",
        "Names": [f"/{name}"],
        "Image": f"ghcr.io/homelab/service{i:03d}:1.{i % 7}.{i % 13}",
        "ImageID": "sha256:" + f"{i:x}".rjust(64, "0"),
        "Command": "/usr/local/bin/docker-entrypoint.sh serve --port 8080",
        "Created": 1764000000 + i,
        "Ports": [{"IP": "0.0.0.0", "PrivatePort": 8080, "PublicPort": 18000 + i, "Type": "tcp"}],
        "Labels": {
            "com.docker.compose.config-hash": "f" * 64,
            "com.docker.compose.container-number": "1",
            "com.docker.compose.depends_on": "",
            "com.docker.compose.image": "sha256:" + "e" * 64,
            "com.docker.compose.oneoff": "False",
            "com.docker.compose.project": "home",
            "com.docker.compose.project.config_files": "/srv/home/compose.yaml",
            "com.docker.compose.project.working_dir": "/srv/home",
            "com.docker.compose.service": f"service{i:03d}",
            "com.docker.compose.version": "2.29.7",
        },
        "State": state,
        "Status": status,
        "HostConfig": {"NetworkMode": "home_default"},
        "NetworkSettings": {
            "Networks": {
                "home_default": {
                    "IPAMConfig": None,
                    "Links": None,
                    "Aliases": None,
                    "MacAddress": "02:42:ac:12:00:02",
                    "NetworkID": "a" * 64,
                    "EndpointID": "b" * 64,
                    "Gateway": "172.18.0.1",
                    "IPAddress": f"172.18.{i // 250}.{i % 250 + 2}",
                    "IPPrefixLen": 16,
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "DriverOpts": None,
                    "DNSNames": None,
                }
            }
        },
        "Mounts": [
            {
                "Type": "volume",
                "Name": f"home_data{i:03d}",
                "Source": f"/var/lib/docker/volumes/home_data{i:03d}/_data",
                "Destination": "/data",
                "Driver": "local",
                "Mode": "z",
                "RW": True,
                "Propagation": "",
            }
        ],
    }


class Engine:
    """The engine stand-in: HTTP/1.1 on a unix socket, in a thread of this process."""

    def __init__(self, path: str, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = socketserver.UnixStreamServer(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def summary(samples: list[float]) -> dict:
    """Median and p90 in milliseconds."""
    ordered = sorted(samples)
    return {
        "scrapes": len(samples),
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1] * 1000, 3),
    }


def run(scrapes: int, warmup: int, profile: bool) -> dict:
    """Measure both sides alternately against one in-process engine; optionally profile."""
    workdir = tempfile.mkdtemp(prefix="bench-engine-", dir="/tmp")
    path = os.path.join(workdir, "docker.sock")
    body = json.dumps([docker_entry(i) for i in range(CONTAINERS)]).encode()
    engine = Engine(path, body)
    try:
        collector = ContainersCollector(candidates=[path])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)

        def scrape() -> bytes:
            return encode(registry.collect())

        def scrape_generate_latest() -> bytes:
            return generate_latest(registry)

        def baseline() -> object:
            return fetch(path)

        exposition = scrape()
        assert exposition == scrape_generate_latest()  # the same bytes either way
        sides = (
            ("baseline", baseline),
            ("collector", scrape),
            ("collector_generate_latest", scrape_generate_latest),
        )
        times: dict[str, list[float]] = {name: [] for name, _ in sides}
        for i in range(warmup + scrapes):
            for name, func in sides:
                start = time.perf_counter()
                func()
                elapsed = time.perf_counter() - start
                if i >= warmup:
                    times[name].append(elapsed)
        report = {name: summary(samples) for name, samples in times.items()}
        report["ratio_median"] = round(
            report["collector"]["median_ms"] / report["baseline"]["median_ms"], 2
        )
        report["goal_ms"] = GOAL_MS
        report["goal_met"] = report["collector"]["median_ms"] <= GOAL_MS
        report["containers"] = CONTAINERS
        report["json_bytes"] = len(body)
        report["exposition_bytes"] = len(exposition)
        report["machine"] = {"nproc": os.cpu_count(), "python": platform.python_version()}
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(scrapes):
                scrape()
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
            report["profile"] = out.getvalue()
        return report
    finally:
        engine.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run, print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=2000, help="measured scrapes per side")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured scrapes per side")
    parser.add_argument("--smoke", action="store_true", help="10 scrapes: checks it runs")
    parser.add_argument("--profile", action="store_true", help="cProfile the collector's scrapes")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    scrapes, warmup = (10, 1) if args.smoke else (args.scrapes, args.warmup)
    report = run(scrapes, warmup, args.profile)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    machine = report["machine"]
    print(f"{CONTAINERS} containers, {report['json_bytes']} B of JSON, "
          f"{report['exposition_bytes']} B of exposition, {scrapes} scrapes per side "
          f"(nproc {machine['nproc']}, Python {machine['python']})")  # fmt: skip
    print(f"{'side':<26} {'median ms':>10} {'p90 ms':>10}")
    for side in ("baseline", "collector", "collector_generate_latest"):
        print(f"{side:<26} {report[side]['median_ms']:>10.3f} {report[side]['p90_ms']:>10.3f}")
    print(f"ratio (collector / baseline, medians): {report['ratio_median']:.2f}x")
    verdict = "met" if report["goal_met"] else "MISSED"
    print(f"goal: collector median <= {GOAL_MS} ms per scrape: {verdict}")
    if args.profile:
        print(report["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
