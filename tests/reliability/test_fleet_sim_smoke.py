"""`bench/fleet_sim.py --smoke` keeps working: a few seconds, 200 agents enroll, exit 0, table.

Not a timed test: the script itself fails (exit 1) on any error, any false offline transition,
or a silent agent control never marked offline; the figures are only printed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fleet_sim.py"


def test_fleet_sim_smoke_runs_clean_and_prints_its_table():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "fleet simulation:" in out
    rows = dict(line.rsplit("  ", 1) for line in out.splitlines() if "  " in line)
    rows = {name.strip(): value.strip() for name, value in rows.items()}
    # Every agent enrolled on its first heartbeat with the shared key and kept the bound key
    # it got back: later heartbeats with the shared key would be refused (403).
    assert rows["agents enrolled (bound key kept)"] == "200 of 200"
    assert rows["errors"] == "0"
    assert rows["false offline transitions"] == "0"
    assert rows["silent agents marked offline"] == "3 of 3"
    assert rows["servers online at the end"] == "197 of 197"
    assert "MiB" in rows["control peak RSS"]
