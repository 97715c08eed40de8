"""Where an agent scrape's CPU and the agent's memory go: the profile behind bench/README.md.

In-process, with the agent's default collectors (or the given flags), no HTTP:

- CPU per scrape split into collect (every collector, the agent's own families and its
  process_* collector), encode (exporter_agent.exposition) and gzip at the
  level the agent serves it with;
- each collector's own median `collect()` time, slowest first;
- cProfile of `--scrapes` scrapes, the top functions by own time;
- RSS import by import in a fresh interpreter (what each import adds: first the standard
  modules the exporter needs, then the agent's, then what only the heartbeat imports), and
  tracemalloc's total of the Python heap after the imports.

    .venv/bin/python bench/agent_profile.py [--scrapes 300] [agent flags, e.g.
        --no-collector.containers --no-collector.packages --no-collector.systemd]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gzip
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exporter_agent.collectors import build_collectors  # noqa: E402
from exporter_agent.config import load_settings  # noqa: E402
from exporter_agent.exporter import AgentCollector, build_registry  # noqa: E402
from exporter_agent.exposition import encode  # noqa: E402

GZIP_LEVEL = 6  # exporter_agent/server.py's
# Imported one after another in a fresh interpreter: what each adds to the RSS. The standard
# modules the exporter needs (ssl comes with http.client, which wsgiref's server imports), the
# agent's own, then what only the heartbeat path imports (__main__ imports those lazily).
IMPORTS = ("ssl", "http.client", "wsgiref.simple_server", "logging", "argparse", "typing",
           "ctypes", "subprocess", "exporter_agent.metrics", "exporter_agent.collectors",
           "exporter_agent.config", "exporter_agent.exporter", "exporter_agent.server",
           "exporter_agent.__main__", "exporter_agent.heartbeat",
           "exporter_agent.heartbeat_metrics", "exporter_agent.heartbeat_source",
           "exporter_agent.device_health", "exporter_agent.identity")  # fmt: skip
RSS_PROBE = """
import importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
last = rss()
print(f"  {'interpreter':28} {last:5.1f} MB")
for name in sys.argv[1:]:
    importlib.import_module(name)
    now = rss()
    print(f"  + {name:26} {now - last:+5.1f} MB = {now:.1f}")
    last = now
"""


def median_ms(samples: list[float]) -> float:
    """The median of `samples` (seconds), in milliseconds."""
    return statistics.median(samples) * 1000


def main() -> int:
    """Print the split, the per-collector times, the profile and the memory figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=300)
    args, agent_flags = parser.parse_known_args()
    settings = load_settings(agent_flags, env={})
    collectors = build_collectors(settings.collectors, settings.collector_options)
    registry = build_registry(AgentCollector(collectors, "bench", None))
    for _ in range(30):
        encode(registry.collect())
    split: dict[str, list[float]] = {"collect": [], "encode": [], "gzip": []}
    for _ in range(args.scrapes):
        started = time.process_time()
        families = list(registry.collect())
        collected = time.process_time()
        body = encode(families)
        encoded = time.process_time()
        gzip.compress(body, compresslevel=GZIP_LEVEL)
        split["collect"].append(collected - started)
        split["encode"].append(encoded - collected)
        split["gzip"].append(time.process_time() - encoded)
    samples = sum(len(family.samples) for family in families)
    print(f"CPU per scrape (median of {args.scrapes}), {samples} samples in {len(families)} "
          f"families, {len(body)} bytes:")  # fmt: skip
    for part, times in split.items():
        print(f"  {part:8} {median_ms(times):6.3f} ms")
    print(f"  {'total':8} {sum(median_ms(times) for times in split.values()):6.3f} ms")

    print("each collector alone (median of 200 collect() calls):")
    alone = {}
    for name, collector in collectors.items():
        times = []
        for _ in range(200):
            started = time.perf_counter()
            with contextlib.suppress(OSError, ValueError):  # a failure costs what it costs
                list(collector.collect())
            times.append(time.perf_counter() - started)
        alone[name] = median_ms(times) * 1000
    for name, micros in sorted(alone.items(), key=lambda item: -item[1]):
        print(f"  {name:14} {micros:7.1f} µs")

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.scrapes):
        gzip.compress(encode(registry.collect()), compresslevel=GZIP_LEVEL)
    profile.disable()
    print(f"cProfile of {args.scrapes} scrapes, by own time:")
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)

    print("RSS, import by import (fresh interpreter):")
    subprocess.run([sys.executable, "-c", RSS_PROBE, *IMPORTS], cwd=REPO, check=True)
    tracemalloc_probe = (
        "import tracemalloc; tracemalloc.start(); import sys; sys.argv = ['x'];"
        "import exporter_agent.__main__;"
        "current, peak = tracemalloc.get_traced_memory();"
        "print(f'  tracemalloc: Python heap after the imports {current / 2**20:.1f} MB')"
    )
    subprocess.run([sys.executable, "-c", tracemalloc_probe], cwd=REPO, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
