"""The heartbeat's figures from /proc (ProcSource) are psutil's, which the agent no longer needs.

psutil stays the reference: pointed at the same fixture /proc tree (``psutil.PROCFS_PATH``) it
must give exactly the same numbers, formula by formula, and on this box the two summaries
agree within what changes between two reads.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import psutil
import pytest

from exporter_agent.heartbeat_metrics import Summary
from exporter_agent.heartbeat_source import ProcSource
from tests.helpers import HEARTBEAT_METRIC_FIELDS

MEMINFO = """\
MemTotal:        8049700 kB
MemFree:          412340 kB
MemAvailable:    5003020 kB
Buffers:          201112 kB
Cached:          4102004 kB
SwapCached:            0 kB
Active:          3100000 kB
Inactive:        3800000 kB
Active(anon):     900000 kB
Inactive(anon):   100000 kB
Active(file):    2200000 kB
Inactive(file):  3700000 kB
Shmem:             61234 kB
Slab:             400000 kB
SReclaimable:     300000 kB
SUnreclaim:       100000 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""
ZONEINFO = """\
Node 0, zone      DMA
  pages free     3840
        min      33
        low      41
        high     49
Node 0, zone    DMA32
  pages free     100000
        min      5000
        low      6250
        high     7500
Node 0, zone   Normal
  pages free     20000
        min      9000
        low      11250
        high     13500
"""
NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
{lines}"""  # noqa: E501 - /proc/net/dev's own header


def meminfo(**fields: int | None) -> str:
    """MEMINFO with some fields changed (kB) or left out (None)."""
    lines = []
    for line in MEMINFO.splitlines():
        key = line.split(":")[0].replace("(", "_").replace(")", "")
        if key in fields:
            if fields[key] is None:
                continue
            line = f"{line.split(':')[0]}: {fields[key]} kB"
        lines.append(line)
    return "\n".join(lines) + "\n"


def stat(*ticks: int, btime: int = 1_762_000_000) -> str:
    """A /proc/stat whose system-wide cpu line has ``ticks`` (USER_HZ) per mode."""
    cpu = " ".join(map(str, ticks))
    return f"cpu  {cpu}\ncpu0 {cpu}\nintr 1 2 3\nctxt 123\nbtime {btime}\nprocesses 99\n"


def net_dev(**nics: tuple[int, int]) -> str:
    """A /proc/net/dev with (received, sent) bytes per interface."""
    rows = [
        f"{name:>6}: {rx} 10 0 0 0 0 0 0 {tx} 20 0 0 0 0 0 0" for name, (rx, tx) in nics.items()
    ]
    return NET_DEV.format(lines="\n".join(rows) + "\n")


@pytest.fixture
def proc(tmp_path, monkeypatch):
    """A fixture /proc tree, and psutil pointed at it too."""
    root = tmp_path / "proc"
    (root / "net").mkdir(parents=True)
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(root))
    return root


@pytest.mark.filterwarnings("ignore:cached memory stats:RuntimeWarning")  # psutil's, expected
@pytest.mark.parametrize(
    ("fields", "zoneinfo"),
    [
        ({}, None),  # MemAvailable as the kernel gives it
        ({"MemAvailable": 0}, ZONEINFO),  # 0 (a kernel bug): the kernel's estimate, as free
        ({"MemAvailable": None}, ZONEINFO),  # before Linux 3.14: the estimate
        ({"MemAvailable": None}, None),  # no zoneinfo: free + cached
        ({"MemAvailable": None, "Active_file": None}, ZONEINFO),  # no LRU lists: free + cached
        ({"MemAvailable": None, "Cached": None, "SReclaimable": None}, ZONEINFO),
        ({"MemAvailable": 9_000_000}, None),  # above MemTotal (a container): MemFree
        ({"MemAvailable": None, "MemFree": 10, "Active_file": 1, "Inactive_file": 1}, ZONEINFO),
    ],
)
def test_memory_is_psutils_virtual_memory(proc, fields, zoneinfo):
    (proc / "meminfo").write_text(meminfo(**fields))
    if zoneinfo:
        (proc / "zoneinfo").write_text(zoneinfo)
    ours, theirs = ProcSource(str(proc)).virtual_memory(), psutil.virtual_memory()
    assert (ours.total, ours.available) == (theirs.total, theirs.available)
    used = ours.total - ours.available
    assert round(100.0 * used / ours.total, 1) == theirs.percent


def test_cpu_percent_is_psutils_over_the_same_readings(proc):
    source = ProcSource(str(proc))
    readings = [
        (1000, 20, 300, 8000, 50, 5, 7, 0, 0, 0),
        (1100, 20, 330, 8150, 60, 6, 8, 1, 0, 0),
        (1250, 45, 360, 8160, 60, 6, 9, 4, 90, 20),  # guest time (counted in user and nice)
        (1240, 45, 400, 8300, 55, 6, 9, 4, 90, 20),  # user and iowait going backwards
        (1240, 45, 400, 8300, 55, 6, 9, 4, 90, 20),  # nothing elapsed
        (1333, 47, 431, 8377, 61, 7, 11, 5, 95, 21),
    ]
    (proc / "stat").write_text(stat(*readings[0]))
    source.cpu_percent(None), psutil.cpu_percent(None)  # both start from this reading
    for ticks in readings[1:]:
        (proc / "stat").write_text(stat(*ticks))
        assert source.cpu_percent(None) == psutil.cpu_percent(None), ticks


def test_first_cpu_percent_blocks_for_the_interval(proc):
    """Summary primes with a blocking call: two readings ``interval`` apart, then since it."""
    before, after, later = (100, 0, 100, 800, 0, 0, 0, 0, 0, 0), (150, 0, 150, 850, 0, 0, 0, 0,
                            0, 0), (150, 0, 150, 950, 0, 0, 0, 0, 0, 0)  # fmt: skip
    (proc / "stat").write_text(stat(*before))
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        (proc / "stat").write_text(stat(*after))

    source = ProcSource(str(proc), sleep=sleep)
    assert source.cpu_percent(0.2) == 66.7 and slept == [0.2]
    (proc / "stat").write_text(stat(*later))
    assert source.cpu_percent(None) == 0.0


def test_network_counters_are_psutils_with_wraps_carried(proc):
    psutil.net_io_counters.cache_clear()
    source = ProcSource(str(proc))
    readings = [
        {"lo": (500, 500), "eth0": (1_000, 2_000), "wlan0": (10, 20)},
        {"lo": (600, 600), "eth0": (1_500, 2_600), "wlan0": (30, 40)},
        {"lo": (700, 700), "eth0": (100, 2_700), "wlan0": (35, 45)},  # eth0 rx wrapped
        {"lo": (800, 800), "eth0": (200, 50), "veth1": (5, 6)},  # tx too; wlan0 gone, veth1 new
        {"lo": (900, 900), "eth0": (300, 60), "wlan0": (1, 2), "veth1": (7, 8)},  # wlan0 back
    ]
    for nics in readings:
        (proc / "net" / "dev").write_text(net_dev(**nics))
        ours = source.net_io_counters(pernic=True)
        theirs = psutil.net_io_counters(pernic=True)
        assert {name: (c.bytes_sent, c.bytes_recv) for name, c in ours.items()} == {
            name: (c.bytes_sent, c.bytes_recv) for name, c in theirs.items()
        }, nics
    assert ours["eth0"].bytes_recv == 1_500 + 300  # the value before the wrap carried on top
    psutil.net_io_counters.cache_clear()


@pytest.mark.parametrize(
    "fs",
    [
        {"f_frsize": 4096, "f_blocks": 61_000_000, "f_bfree": 45_000_000, "f_bavail": 42_000_000},
        {"f_frsize": 1024, "f_blocks": 3, "f_bfree": 1, "f_bavail": 0},
        {"f_frsize": 4096, "f_blocks": 0, "f_bfree": 0, "f_bavail": 0},  # an empty pseudo fs
    ],
)
def test_disk_usage_is_psutils(monkeypatch, fs):
    answer = SimpleNamespace(f_bsize=65536, **fs)  # psutil, like statfs(2) df, uses f_frsize
    monkeypatch.setattr(os, "statvfs", lambda path: answer)
    ours = ProcSource(statvfs=lambda path: answer).disk_usage("/")
    assert tuple(ours) == tuple(psutil.disk_usage("/")[:4])


def test_boot_time_and_load_come_from_the_given_proc(proc):
    (proc / "stat").write_text(stat(*[1] * 10, btime=1_700_000_123))
    (proc / "loadavg").write_text("0.42 0.35 0.30 1/234 5678\n")
    source = ProcSource(str(proc))
    assert source.boot_time() == psutil.boot_time() == 1_700_000_123.0
    assert source.getloadavg() == (0.42, 0.35, 0.30)


def test_an_unreadable_proc_sends_every_proc_figure_as_null(tmp_path):
    def no_statvfs(path):
        raise OSError(5, "Input/output error", path)

    source = ProcSource(str(tmp_path / "absent"), statvfs=no_statvfs, sleep=lambda s: None)
    metrics = Summary(source).metrics()
    assert set(metrics) == set(HEARTBEAT_METRIC_FIELDS)
    assert set(metrics.values()) == {None}


def test_malformed_files_are_null_figures_not_a_failed_heartbeat(proc):
    (proc / "stat").write_text("intr 1\n")
    (proc / "meminfo").write_text("MemFree: 1 kB\n")
    (proc / "net" / "dev").write_text(NET_DEV.format(lines="  eth0: 1 2 3\n"))
    (proc / "loadavg").write_text("0.1\n")
    metrics = Summary(ProcSource(str(proc), sleep=lambda s: None)).metrics()
    assert metrics["disk_total_gb"] is not None  # statvfs of / still answers
    assert {k for k, v in metrics.items() if v is None} == set(HEARTBEAT_METRIC_FIELDS) - {
        "disk_percent", "disk_total_gb", "disk_used_gb"}  # fmt: skip


def test_on_this_box_the_summary_matches_psutils():
    """The live box: same figures as psutil's, within what moves between two reads."""
    source = ProcSource()
    ours, theirs = Summary(source), Summary(psutil)
    ours.metrics(), theirs.metrics()  # both primed (each blocks 0.2 s, one after the other)
    source.cpu_percent(), psutil.cpu_percent()  # so both start the next interval now
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # some CPU work to measure, not a timing
        sum(range(1000))
    a, b = ours.metrics(), theirs.metrics()
    assert set(a) == set(b) == set(HEARTBEAT_METRIC_FIELDS)
    assert None not in a.values()
    assert a["cpu_percent"] == pytest.approx(b["cpu_percent"], abs=15)
    total = b["memory_total_mb"]
    assert a["memory_total_mb"] == total
    assert a["memory_used_mb"] == pytest.approx(b["memory_used_mb"], abs=total * 0.02 + 8)
    assert a["memory_percent"] == pytest.approx(b["memory_percent"], abs=2.5)
    assert a["disk_total_gb"] == b["disk_total_gb"]
    assert a["disk_used_gb"] == pytest.approx(b["disk_used_gb"], abs=0.5)
    assert a["disk_percent"] == pytest.approx(b["disk_percent"], abs=1.0)
    for key in ("network_rx_bytes", "network_tx_bytes"):  # read first: never more than psutil's
        assert 0 <= b[key] - a[key] <= 50_000_000, key
    for key in ("load_1m", "load_5m", "load_15m"):
        assert a[key] == pytest.approx(b[key], abs=1.0), key
    assert a["uptime_seconds"] == pytest.approx(b["uptime_seconds"], abs=2)
