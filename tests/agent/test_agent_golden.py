"""End-to-end exposition test like node_exporter's: a recorded snapshot against a golden file.

Regenerate the golden file after an intended change with:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/agent/test_agent_golden.py

and review the diff of ``tests/agent/fixtures/golden.prom`` before committing it.
"""

from __future__ import annotations

import itertools
import os
import subprocess

from prometheus_client import generate_latest

from exporter_agent.collectors import build_collectors
from exporter_agent.exporter import AgentCollector, build_registry
from exporter_agent.heartbeat_state import HeartbeatState
from tests.agent.conftest import FIXTURES, SNAPSHOT_TIME

GOLDEN = FIXTURES / "golden.prom"


def snapshot_exposition(options, names) -> bytes:
    """The agent's whole /metrics body for the snapshot, with deterministic timings."""
    ticks = itertools.count(0, 0.5)
    state = HeartbeatState()
    state.record(True, SNAPSHOT_TIME - 30)
    agent = AgentCollector(
        build_collectors(names, options),
        "1.2.3",
        state,
        timer=lambda: next(ticks),
        python_version="3.x",
    )
    return generate_latest(build_registry(agent, process_metrics=False))


def test_snapshot_exposition_matches_golden_file(snapshot, all_collector_names):
    output = snapshot_exposition(snapshot, all_collector_names)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(output)
    assert output.decode() == GOLDEN.read_text()


def test_golden_file_passes_promtool_except_node_exporters_own_names(promtool):
    """promtool's only complaints are names node_exporter itself has and dashboards depend on:
    the camelCase /proc/meminfo and netstat names, and entropy counted in bits."""
    result = subprocess.run(
        [promtool, "check", "metrics"], input=GOLDEN.read_bytes(), capture_output=True
    )
    problems = (result.stdout + result.stderr).decode().splitlines()
    assert problems, "expected promtool to flag node_exporter's camelCase meminfo names"
    camel_case = "metric names should be written in 'snake_case' not 'camelCase'"
    for line in problems:
        if line.startswith("node_entropy_"):
            assert "bits" in line, line
        else:
            assert line.startswith(("node_memory_", "node_netstat_")), line
            assert line.endswith(camel_case), line
