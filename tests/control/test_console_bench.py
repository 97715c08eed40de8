"""bench/console_pages.py still runs end to end (--smoke: seconds); no figure is judged here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "console_pages.py"


def test_console_page_bench_runs_and_prints_pages_beside_their_baselines():
    result = subprocess.run(
        [sys.executable, str(BENCH), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for row in ("fleet ", "fleet baseline", "server ", "server baseline", "ratio p95"):
        assert row in result.stdout
