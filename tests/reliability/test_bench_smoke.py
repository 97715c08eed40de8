"""The control benchmarks still run: each in --smoke mode (seconds), exit 0, table printed.

Not a performance test: no figure is compared with a goal here; bench/README.md holds those.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import require_binary

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.integration
def test_heartbeat_ingest_bench_runs():
    require_binary(shutil.which("wrk"), "wrk (Debian package wrk)")
    out = run_bench("heartbeat_ingest.py")
    assert "baseline" in out and "sqlite" in out and "ratio" in out
    # Control is started with enrollment on, as in production: each simulated server enrolls
    # once with the shared key, and every measured heartbeat must then be accepted with the
    # key bound to its server (a shared key would get 403 for an enrolled server).
    assert "sqlite: enrolled 50 of 50 servers" in out
    table = [
        line.split() for line in out.splitlines() if line.split()[:1] in (["baseline"], ["sqlite"])
    ]
    errors = {row[0]: row[4] for row in table if len(row) == 7}
    assert errors == {"baseline": "0", "sqlite": "0"}, out


def test_inventory_scale_bench_runs():
    out = run_bench("inventory_scale.py")
    for figure in ("GET /servers p95", "offline tick", "retention prune", "server-month"):
        assert figure in out


@pytest.mark.integration
def test_ssh_latency_bench_runs():
    require_binary("/usr/sbin/sshd", "OpenSSH server (Debian package openssh-server)")
    out = run_bench("ssh_latency.py")
    assert "paramiko" in out.lower() and "ratio" in out.lower()
