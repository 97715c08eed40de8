"""The pieces of `serve --workers`' shared metrics that need no process of their own: the
private directory's life, the dead-worker bookkeeping on real files, and the in-memory mode
that every in-process app (the test suite's) keeps. The whole, really run, is in
test_workers_metrics.py.
"""

from __future__ import annotations

import os
import stat

import pytest

from control.metrics import MULTIPROC_ENV, ControlMetrics, multiprocess_dir
from control.workers import DeadWorkerSweeper, shared_metrics_dir

# Linux's PID_MAX_LIMIT: PIDs stay below pid_max, which is at most this, so it is never a PID.
NEVER_A_PID = 4194304


def test_the_metrics_directory_is_private_fresh_per_run_and_removed_after():
    environ = {MULTIPROC_ENV: "/var/lib/someone-elses-dir"}
    with shared_metrics_dir(environ) as first:
        assert environ[MULTIPROC_ENV] == str(first)
        assert stat.S_IMODE(first.stat().st_mode) == 0o700
        assert first.stat().st_uid == os.getuid()
        (first / "counter_123.db").write_bytes(b"a previous run's counts")
    assert not first.exists()
    assert environ == {MULTIPROC_ENV: "/var/lib/someone-elses-dir"}

    environ = {}
    with pytest.raises(RuntimeError), shared_metrics_dir(environ) as second:
        assert second != first and list(second.iterdir()) == []
        raise RuntimeError("serve failed")
    assert not second.exists()
    assert environ == {}


def test_a_dead_worker_loses_its_live_gauges_and_keeps_its_counters(tmp_path):
    dead, alive = NEVER_A_PID, os.getpid()
    names = [
        f"counter_{dead}.db",
        f"histogram_{dead}.db",
        f"gauge_all_{dead}.db",
        f"gauge_livesum_{dead}.db",
        f"gauge_liveall_{dead}.db",
        f"counter_{alive}.db",
        f"gauge_livesum_{alive}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    sweeper = DeadWorkerSweeper(tmp_path)
    assert sweeper.pids() == {dead, alive}

    assert sweeper.sweep() == [dead]
    gone = {f"gauge_livesum_{dead}.db", f"gauge_liveall_{dead}.db"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(names) - gone)
    assert sweeper.sweep() == []  # marked once, not at every sweep


def test_in_process_apps_keep_their_metrics_in_memory_and_apart():
    assert multiprocess_dir() is None, f"the test process must not have {MULTIPROC_ENV} set"
    first, second = ControlMetrics(), ControlMetrics()
    first.heartbeats.inc(3)
    second.heartbeats.inc()
    assert first.registry.get_sample_value("homelab_heartbeats_received_total") == 3
    assert second.registry.get_sample_value("homelab_heartbeats_received_total") == 1
    assert first.multiprocess_dir is None
