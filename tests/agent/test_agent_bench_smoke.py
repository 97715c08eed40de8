"""The benchmark runs end to end (--smoke) and reports both exporters and the ratios."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.agent.conftest import NODE_EXPORTER, REPO
from tests.helpers import require_binary

pytestmark = pytest.mark.integration


def test_benchmark_smoke_reports_latency_rss_and_cpu_for_both():
    require_binary(NODE_EXPORTER, "prometheus-node-exporter")
    result = subprocess.run(
        [sys.executable, "bench/agent_vs_node_exporter.py", "--smoke", "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for side in ("agent", "node_exporter"):
        assert report[side]["scrapes"] == 30
        assert report[side]["median_ms"] > 0
        assert report[side]["peak_rss_mb"] > 0
    assert set(report["ratio"]) == {"median_ms", "p90_ms", "peak_rss_mb", "cpu_s_per_1000"}
    assert set(report["goals"]) == {"latency_ratio", "agent_rss_le_25mb"}
    assert report["latency_goal"] == 1.0  # against node_exporter's defaults


def test_containers_bench_smoke_reports_both_sides_ratio_and_goal():
    result = subprocess.run(
        [sys.executable, "bench/containers_collector.py", "--smoke", "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for side in ("baseline", "collector", "collector_generate_latest"):
        assert report[side]["scrapes"] == 10
        assert report[side]["median_ms"] > 0
    assert report["ratio_median"] > 0
    assert report["containers"] == 100
    assert report["goal_ms"] == 5.0
    assert isinstance(report["goal_met"], bool)
