"""The kernel-facts collectors (vmstat, timex, pressure, entropy, filefd).

Each runs on the recorded Debian 12 snapshot in a fresh registry (timex on a recorded
adjtimex(2) answer), and on a broken or missing source, where it must fail alone.
"""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest
from prometheus_client import CollectorRegistry

from exporter_agent.collectors import build_collectors
from exporter_agent.collectors.pressure import PressureCollector
from exporter_agent.collectors.timex import STA_NANO, TIME_ERROR, Timex, TimexCollector, adjtimex
from exporter_agent.collectors.vmstat import DEFAULT_FIELDS
from exporter_agent.config import load_settings
from exporter_agent.exporter import AgentCollector, build_registry
from tests.agent.conftest import REPO, SNAPSHOT, snapshot_options

PROC = SNAPSHOT / "proc"


def registry_for(options, *names: str) -> CollectorRegistry:
    """A fresh registry running the named collectors on ``options``."""
    return build_registry(AgentCollector(build_collectors(names, options), "test"), False)


def success(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value("homelab_agent_collector_success", {"collector": name})


def proc_copy(tmp_path, *relative: str):
    """A procfs holding copies of the snapshot's files at ``relative`` (others missing)."""
    for path in relative:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROC / path, tmp_path / path)
    return snapshot_options(procfs=str(tmp_path))


def recorded_adjtimex(**changes):
    """adjtimex(2) as recorded on the snapshot box (chrony-synced), with ``changes`` applied."""
    fields = json.loads((SNAPSHOT / "adjtimex.json").read_text()) | changes
    state = fields.pop("state")
    return lambda: (state, Timex(**fields))


# --- vmstat --------------------------------------------------------------------------------


def test_vmstat_exports_node_exporters_default_fields(snapshot):
    registry = registry_for(snapshot, "vmstat")
    get = registry.get_sample_value
    assert get("node_vmstat_oom_kill") == 1
    assert get("node_vmstat_pgfault") == 2214603
    assert get("node_vmstat_pgmajfault") == 1374
    assert get("node_vmstat_pgpgin") == 361948
    assert get("node_vmstat_pgpgout") == 118356
    assert get("node_vmstat_pswpin") == 0
    assert get("node_vmstat_pswpout") == 0
    names = {m.name for m in registry.collect() if m.name.startswith("node_vmstat_")}
    assert len(names) == 7
    family = next(m for m in registry.collect() if m.name == "node_vmstat_pgfault")
    assert family.type == "unknown"
    assert family.documentation == "/proc/vmstat information field pgfault."


def test_vmstat_default_filter_is_node_exporters():
    assert DEFAULT_FIELDS == "^(oom_kill|pgpg|pswp|pg.*fault).*"


def test_vmstat_fields_flag(snapshot):
    settings = load_settings(["--collector.vmstat.fields", "^nr_dirty"], env={})
    options = snapshot_options(values=dict(settings.collector_options.values))
    registry = registry_for(options, "vmstat")
    assert registry.get_sample_value("node_vmstat_nr_dirty_threshold") == 1212722
    assert registry.get_sample_value("node_vmstat_pgfault") is None


def test_vmstat_missing_or_malformed_fails(tmp_path):
    assert success(registry_for(proc_copy(tmp_path), "vmstat"), "vmstat") == 0
    (tmp_path / "vmstat").write_text("pgfault many\n")
    assert success(registry_for(snapshot_options(procfs=str(tmp_path)), "vmstat"), "vmstat") == 0


# --- timex ---------------------------------------------------------------------------------


def test_timex_converts_like_node_exporter():
    registry = registry_for(snapshot_options(adjtimex=recorded_adjtimex()), "timex")
    get = registry.get_sample_value
    assert get("node_timex_sync_status") == 1
    # STA_NANO is set (status 8193), so offset is in nanoseconds.
    assert get("node_timex_offset_seconds") == pytest.approx(-48210e-9)
    assert get("node_timex_frequency_adjustment_ratio") == pytest.approx(1 - 1137422 / 65536e6)
    assert get("node_timex_maxerror_seconds") == pytest.approx(0.01225)
    assert get("node_timex_estimated_error_seconds") == pytest.approx(410e-6)
    assert get("node_timex_status") == 8193
    assert get("node_timex_loop_time_constant") == 6
    assert get("node_timex_tick_seconds") == pytest.approx(0.01)
    assert get("node_timex_tai_offset_seconds") == 37
    assert get("node_timex_pps_calibration_total") == 0
    assert get("node_timex_pps_frequency_hertz") == 0


def test_timex_exports_all_of_node_exporters_names_and_types():
    families = {
        f.name: f.type for f in TimexCollector(recorded_adjtimex()).collect()
    }  # fmt: skip
    counters = {"pps_calibration", "pps_error", "pps_jitter", "pps_stability_exceeded"}
    gauges = {
        "estimated_error_seconds", "frequency_adjustment_ratio", "loop_time_constant",
        "maxerror_seconds", "offset_seconds", "pps_frequency_hertz", "pps_jitter_seconds",
        "pps_shift_seconds", "pps_stability_hertz", "status", "sync_status",
        "tai_offset_seconds", "tick_seconds",
    }  # fmt: skip
    assert families == {f"node_timex_{n}": "counter" for n in counters} | {
        f"node_timex_{n}": "gauge" for n in gauges
    }


def test_timex_unsynchronised_clock_and_microsecond_offsets():
    """TIME_ERROR is what HostClockNotSynchronising alerts on; without STA_NANO, µs."""
    fake = recorded_adjtimex(state=TIME_ERROR, status=0x0040, offset=-1500, jitter=20)
    registry = registry_for(snapshot_options(adjtimex=fake), "timex")
    assert registry.get_sample_value("node_timex_sync_status") == 0
    assert registry.get_sample_value("node_timex_offset_seconds") == pytest.approx(-1500e-6)
    assert registry.get_sample_value("node_timex_pps_jitter_seconds") == pytest.approx(20e-6)
    assert STA_NANO == 0x2000


def test_timex_syscall_error_fails_the_collector():
    def denied():
        raise OSError(errno.EPERM, "Operation not permitted")

    registry = registry_for(snapshot_options(adjtimex=denied), "timex")
    assert success(registry, "timex") == 0
    assert registry.get_sample_value("node_timex_sync_status") is None


def test_real_adjtimex_reads_this_kernel():
    """The ctypes struct matches libc's: tick is one USER_HZ tick in microseconds."""
    state, timex = adjtimex()
    assert 0 <= state <= TIME_ERROR
    assert timex.tick == 1_000_000 // os.sysconf("SC_CLK_TCK")
    assert timex.modes == 0  # we only read; nothing was set


# --- pressure ------------------------------------------------------------------------------


def test_pressure_totals_in_seconds(snapshot):
    registry = registry_for(snapshot, "pressure")
    get = registry.get_sample_value
    assert get("node_pressure_cpu_waiting_seconds_total") == pytest.approx(3.120457)
    assert get("node_pressure_memory_waiting_seconds_total") == pytest.approx(0.018822)
    assert get("node_pressure_memory_stalled_seconds_total") == pytest.approx(0.009931)
    assert get("node_pressure_io_waiting_seconds_total") == pytest.approx(2.410982)
    assert get("node_pressure_io_stalled_seconds_total") == pytest.approx(1.876540)
    assert get("node_pressure_irq_stalled_seconds_total") == pytest.approx(0.040251)
    # The kernel's cpu "full" line is not exported by node_exporter 1.5; neither by us.
    assert get("node_pressure_cpu_stalled_seconds_total") is None


def test_pressure_help_is_node_exporters(snapshot):
    families = {f.name: f for f in PressureCollector(snapshot.procfs).collect()}
    assert families["node_pressure_cpu_waiting_seconds"].documentation == (
        "Total time in seconds that processes have waited for CPU time"
    )
    assert {f.type for f in families.values()} == {"counter"}


def test_pressure_before_kernel_6_1_has_no_irq(tmp_path):
    options = proc_copy(tmp_path, "pressure/cpu", "pressure/memory", "pressure/io")
    registry = registry_for(options, "pressure")
    assert success(registry, "pressure") == 1
    assert registry.get_sample_value("node_pressure_irq_stalled_seconds_total") is None


def test_pressure_unavailable_fails_like_node_exporter(tmp_path):
    """No /proc/pressure (CONFIG_PSI off): node_exporter returns ErrNoData, success 0."""
    assert success(registry_for(proc_copy(tmp_path), "pressure"), "pressure") == 0


def test_pressure_line_without_total_fails(tmp_path):
    options = proc_copy(tmp_path, "pressure/memory", "pressure/io")
    (tmp_path / "pressure" / "cpu").write_text("some avg10=0.00 avg60=0.00 avg300=0.00\n")
    assert success(registry_for(options, "pressure"), "pressure") == 0


# --- entropy and filefd --------------------------------------------------------------------


def test_entropy_bits(snapshot):
    registry = registry_for(snapshot, "entropy")
    assert registry.get_sample_value("node_entropy_available_bits") == 256
    assert registry.get_sample_value("node_entropy_pool_size_bits") == 256


def test_entropy_missing_pool_size_fails(tmp_path):
    options = proc_copy(tmp_path, "sys/kernel/random/entropy_avail")
    assert success(registry_for(options, "entropy"), "entropy") == 0


def test_filefd_allocated_and_maximum(snapshot):
    registry = registry_for(snapshot, "filefd")
    assert registry.get_sample_value("node_filefd_allocated") == 1408
    # Debian 12's systemd raises fs.file-max to LONG_MAX.
    assert registry.get_sample_value("node_filefd_maximum") == float(2**63 - 1)


@pytest.mark.parametrize("content", [None, "1408 0\n", "many 0 100\n"])
def test_filefd_missing_or_malformed_fails(tmp_path, content):
    options = proc_copy(tmp_path)
    if content is not None:
        (tmp_path / "sys" / "fs").mkdir(parents=True)
        (tmp_path / "sys" / "fs" / "file-nr").write_text(content)
    assert success(registry_for(options, "filefd"), "filefd") == 0


# --- defaults ------------------------------------------------------------------------------

ISSUE_16_COLLECTORS = (
    "arp", "conntrack", "entropy", "filefd", "netstat", "pressure", "sockstat", "softnet",
    "timex", "udp_queues", "vmstat",
)  # fmt: skip


def test_enabled_by_default_as_in_node_exporter_and_switchable():
    assert set(ISSUE_16_COLLECTORS) <= set(load_settings([], env={}).collectors)
    off = load_settings(["--no-collector.timex"], env={"HOMELAB_COLLECTOR_NETSTAT": "false"})
    assert {"timex", "netstat"}.isdisjoint(off.collectors)
    assert "vmstat" in off.collectors


def test_shipped_unit_lets_timex_read_the_clock():
    """adjtimex is only in systemd's @clock set (which @privileged includes): where the unit's
    filter leaves it out, or with ``ProtectClock=yes``, seccomp kills the agent (SIGSYS) at
    the first scrape. Reading needs the syscall, not CAP_SYS_TIME, which the unit never grants.
    Later SystemCallFilter= lines add to or remove from the earlier ones, so the last line
    naming adjtimex or a set holding it must allow it."""
    unit = (REPO / "exporter_agent" / "homelab-agent.service").read_text().splitlines()
    settings = [line.partition("=") for line in unit if "=" in line and line[0] != "#"]
    holding_adjtimex = {"adjtimex", "@clock", "@privileged", "@known"}
    verdicts = [
        not value.startswith("~")
        for key, _, value in settings
        if key == "SystemCallFilter" and holding_adjtimex & set(value.lstrip("~").split())
    ]
    assert verdicts and verdicts[-1], "the unit's SystemCallFilter= must end up allowing adjtimex"
    assert ("ProtectClock", "=", "yes") not in settings
    assert ("CapabilityBoundingSet", "=", "") in settings  # so the clock still cannot be set
