"""The packages collector: a background check against fake apt-get/dnf executables in PATH."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter_agent.collectors import CollectorOptions, build_collectors
from exporter_agent.collectors.packages import (
    MAX_ORIGIN,
    CommandRunner,
    PackagesCollector,
    parse_apt,
    parse_dnf_security,
    parse_dnf_updates,
)
from exporter_agent.exporter import AgentCollector, build_registry

# Tests that run the fake tools start processes: they belong to the integration lane.
spawns = pytest.mark.integration

# Recorded from `LC_ALL=C apt-get --just-print dist-upgrade` on a Debian 12 box (trimmed),
# plus a newly installed kernel (no [old] version) and the lines that must not count.
APT_WITH_SECURITY = """\
NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following packages have been kept back:
  held-pkg
The following NEW packages will be installed:
  linux-image-6.1.0-41-amd64
The following packages will be upgraded:
  base-files bash libgcrypt20 liblzma-dev tzdata
5 upgraded, 1 newly installed, 0 to remove and 1 not upgraded.
Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])
Inst libgcrypt20-dev [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64]) []
Inst liblzma-dev [5.4.1-1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64]) []
Inst linux-image-6.1.0-41-amd64 (6.1.158-1 Debian-Security:12/oldstable-security [amd64])
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u2 Debian:12.15/oldstable-updates [all])
Inst odd-line-without-parentheses
Instant coffee (not a package line [amd64])
Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Conf bash (5.2.15-2+b13 Debian:12.15/oldstable [amd64])
Remv old-pkg [1.0]
"""  # noqa: E501 - recorded lines are long
APT_NO_SECURITY = """\
Reading package lists...
Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])
Inst bash-doc [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [all])
Conf bash (5.2.15-2+b13 Debian:12.15/oldstable [amd64])
"""
APT_NONE = """\
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.
"""
STABLE = "Debian:12.15/oldstable"
SECURITY = "Debian-Security:12/oldstable-security"

DNF_UPDATES = """\

kernel.x86_64                        6.11.4-301.fc41                 updates
openssl-libs.x86_64                  1:3.2.2-9.fc41                  updates
a-very-long-package-name-that-wraps.noarch
                                     1.2-3.fc41                      updates-testing
Obsoleting Packages
grub2-tools.x86_64                   1:2.12-10.fc41                  updates
    grub2-tools.x86_64               1:2.12-9.fc41                   @updates
"""
DNF_SECURITY = """\
FEDORA-2024-0a1b2c3d4e Important/Sec. kernel-6.11.4-301.fc41.x86_64
FEDORA-2024-0a1b2c3d4e Important/Sec. kernel-core-6.11.4-301.fc41.x86_64
FEDORA-2024-9f8e7d6c5b Moderate/Sec.  openssl-libs-3.2.2-9.fc41.x86_64
"""


def write_script(bin_dir: Path, name: str, body: str) -> None:
    """An executable ``name`` in ``bin_dir`` that logs its arguments and LC_ALL, then runs body."""
    script = bin_dir / name
    log_line = f'printf "%s LC_ALL=%s\\n" "$*" "$LC_ALL" >> "{bin_dir}/calls.log"'
    script.write_text(f"#!/bin/sh\n{log_line}\n{body}")
    script.chmod(0o755)


def write_tool(bin_dir: Path, name: str, stdout: str = "", status: int = 0, sleep: bool = False):
    """A fake ``name`` that prints ``stdout`` and exits ``status`` (or hangs, with ``sleep``)."""
    (bin_dir / f"{name}.out").write_text(stdout)
    body = "exec /bin/sleep 60\n" if sleep else f'/bin/cat "{bin_dir}/{name}.out"\nexit {status}\n'
    write_script(bin_dir, name, body)


def calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def bin_dir(tmp_path):
    """An empty directory that is the package check's whole PATH."""
    path = tmp_path / "bin"
    path.mkdir()
    return path


@pytest.fixture
def root(tmp_path):
    """A root filesystem with /run, where /run/reboot-required may appear."""
    (tmp_path / "root" / "run").mkdir(parents=True)
    return tmp_path / "root"


def collector_for(bin_dir, root, **kwargs) -> PackagesCollector:
    return PackagesCollector(str(root), CommandRunner(str(bin_dir)), clock=lambda: 1_764_000_000.0,
                             **kwargs)  # fmt: skip


def registry_for(collector):
    return build_registry(AgentCollector({"packages": collector}, "test"), False)


def test_apt_lines_parse_like_the_community_script():
    pending, upgradable, security = parse_apt(APT_WITH_SECURITY)
    assert pending == {
        (STABLE, "amd64"): 2,
        (f"{STABLE},{SECURITY}", "amd64"): 1,
        (SECURITY, "amd64"): 2,
        ("Debian:12.15/oldstable-updates", "all"): 1,
    }
    assert (upgradable, security) == (6, 3)
    assert parse_apt(APT_NO_SECURITY) == (
        {(STABLE, "amd64"): 1, (STABLE, "all"): 1}, 2, 0,
    )  # fmt: skip
    assert parse_apt(APT_NONE) == ({}, 0, 0)


def test_long_origins_are_cut():
    line = f"Inst x [1] (2 {'o' * 5000}:1/stable-security [{'a' * 100}])\n"
    ((origin, arch),) = parse_apt(line)[0]
    assert len(origin) == MAX_ORIGIN and len(arch) == 32


def test_dnf_output_parses_like_yum_sh():
    assert parse_dnf_updates(DNF_UPDATES) == {("updates",): 2, ("updates-testing",): 1}
    assert parse_dnf_updates("") == {}
    assert parse_dnf_security(DNF_SECURITY) == 3


@spawns
def test_apt_upgrades_with_security_pending(bin_dir, root):
    write_tool(bin_dir, "apt-get", APT_WITH_SECURITY)
    collector = collector_for(bin_dir, root)
    collector.check_now()
    assert calls(bin_dir) == ["--just-print dist-upgrade LC_ALL=C"]
    assert collector.report() == {"upgradable": 6, "security": 3, "reboot_required": False}
    registry = registry_for(collector)
    get = registry.get_sample_value
    assert get("apt_upgrades_pending", {"origin": SECURITY, "arch": "amd64"}) == 2
    assert get("apt_upgrades_pending", {"origin": f"{STABLE},{SECURITY}", "arch": "amd64"}) == 1
    assert get("node_reboot_required") == 0
    assert get("homelab_agent_packages_check_success") == 1
    assert get("homelab_agent_packages_last_check_timestamp_seconds") == 1_764_000_000.0
    assert get("homelab_agent_collector_success", {"collector": "packages"}) == 1


@spawns
def test_apt_upgrades_without_security(bin_dir, root):
    write_tool(bin_dir, "apt-get", APT_NO_SECURITY)
    collector = collector_for(bin_dir, root)
    collector.check_now()
    assert collector.report() == {"upgradable": 2, "security": 0, "reboot_required": False}


@spawns
def test_nothing_pending_still_exports_a_zero_series(bin_dir, root):
    write_tool(bin_dir, "apt-get", APT_NONE)
    collector = collector_for(bin_dir, root)
    collector.check_now()
    assert collector.report() == {"upgradable": 0, "security": 0, "reboot_required": False}
    registry = registry_for(collector)
    assert registry.get_sample_value("apt_upgrades_pending", {"origin": "", "arch": ""}) == 0


@spawns
@pytest.mark.parametrize("present", [True, False])
def test_reboot_required_file(bin_dir, root, present):
    write_tool(bin_dir, "apt-get", APT_NONE)
    if present:
        (root / "run" / "reboot-required").write_text("*** System restart required ***\n")
    collector = collector_for(bin_dir, root)
    collector.check_now()
    assert collector.report()["reboot_required"] is present
    assert registry_for(collector).get_sample_value("node_reboot_required") == float(present)


@spawns
def test_failing_apt_keeps_the_last_good_report_and_says_so(bin_dir, root):
    write_tool(bin_dir, "apt-get", APT_WITH_SECURITY)
    collector = collector_for(bin_dir, root)
    collector.check_now()
    write_tool(bin_dir, "apt-get", "E: Could not open lock file\n", status=100)
    collector.check_now()
    assert len(calls(bin_dir)) == 2
    assert collector.report() == {"upgradable": 6, "security": 3, "reboot_required": False}
    registry = registry_for(collector)
    assert registry.get_sample_value("homelab_agent_packages_check_success") == 0
    assert (
        registry.get_sample_value("apt_upgrades_pending", {"origin": STABLE, "arch": "amd64"}) == 2
    )
    assert (
        registry.get_sample_value("homelab_agent_collector_success", {"collector": "packages"}) == 1
    )


@spawns
def test_failing_first_check_has_no_report(bin_dir, root):
    write_tool(bin_dir, "apt-get", "", status=100)
    collector = collector_for(bin_dir, root)
    collector.check_now()
    assert collector.report() is None
    registry = registry_for(collector)
    assert registry.get_sample_value("homelab_agent_packages_check_success") == 0
    assert registry.get_sample_value("homelab_agent_packages_last_check_timestamp_seconds") == 0
    assert "apt_upgrades_pending" not in generate_latest(registry).decode()


@spawns
def test_hanging_apt_is_killed_at_the_timeout(bin_dir, root):
    write_tool(bin_dir, "apt-get", sleep=True)
    collector = PackagesCollector(str(root), CommandRunner(str(bin_dir), timeout=0.3))
    collector.check_now()
    assert collector.report() is None
    assert registry_for(collector).get_sample_value("homelab_agent_packages_check_success") == 0


def test_no_package_tool_is_absent_not_failed(bin_dir, root):
    collector = collector_for(bin_dir, root)
    collector.check_now()
    assert collector.report() is None
    registry = registry_for(collector)
    text = generate_latest(registry).decode()
    assert "apt_upgrades_pending" not in text
    assert "homelab_agent_packages" not in text
    assert "node_reboot_required" not in text
    assert (
        registry.get_sample_value("homelab_agent_collector_success", {"collector": "packages"}) == 1
    )


def test_nothing_is_exported_before_the_first_check(bin_dir, root):
    write_tool(bin_dir, "apt-get", APT_NONE)
    registry = registry_for(collector_for(bin_dir, root))
    text = generate_latest(registry).decode()
    for name in ("apt_upgrades_pending", "node_reboot_required", "homelab_agent_packages_"):
        assert name not in text
    assert calls(bin_dir) == []  # a scrape never runs the tool


@spawns
def test_dnf_updates_security_and_needs_restarting(bin_dir, root):
    (bin_dir / "updates.out").write_text(DNF_UPDATES)
    (bin_dir / "security.out").write_text(DNF_SECURITY)
    write_script(bin_dir, "dnf", (
        f'case "$*" in *updateinfo*) exec /bin/cat "{bin_dir}/security.out";; esac\n'
        f'/bin/cat "{bin_dir}/updates.out"\nexit 100\n'
    ))  # fmt: skip
    write_tool(bin_dir, "needs-restarting", "Reboot is required\n", status=1)
    collector = collector_for(bin_dir, root)
    collector.check_now()
    assert calls(bin_dir) == [
        "-q check-update LC_ALL=C",
        "-q updateinfo list --security LC_ALL=C",
        "-r LC_ALL=C",
    ]
    assert collector.report() == {"upgradable": 3, "security": 3, "reboot_required": True}
    registry = registry_for(collector)
    assert registry.get_sample_value("yum_upgrades_pending", {"origin": "updates"}) == 2
    assert registry.get_sample_value("node_reboot_required") == 1


@spawns
def test_dnf_nothing_pending_and_no_reboot(bin_dir, root):
    write_tool(bin_dir, "dnf", "", status=0)
    write_tool(bin_dir, "needs-restarting", "", status=0)
    collector = collector_for(bin_dir, root)
    collector.check_now()
    assert collector.report() == {"upgradable": 0, "security": 0, "reboot_required": False}
    assert registry_for(collector).get_sample_value("yum_upgrades_pending", {"origin": ""}) == 0


@spawns
def test_dnf_error_fails_the_check(bin_dir, root):
    write_tool(bin_dir, "dnf", "Error: Failed to download metadata\n", status=1)
    collector = collector_for(bin_dir, root)
    collector.check_now()
    assert collector.report() is None
    assert registry_for(collector).get_sample_value("homelab_agent_packages_check_success") == 0


class Gate:
    """An injectable wait: records each interval asked for and holds until the test lets go."""

    def __init__(self) -> None:
        self.intervals: list[float] = []
        self.waiting = threading.Semaphore(0)
        self._go = threading.Semaphore(0)

    def __call__(self, stop: threading.Event, seconds: float) -> bool:
        self.intervals.append(seconds)
        self.waiting.release()
        self._go.acquire(timeout=60)  # a safety net for a broken test, never reached otherwise
        return stop.is_set()

    def let_go(self) -> None:
        self._go.release()


@spawns
def test_thread_checks_at_start_and_not_again_before_the_interval(bin_dir, root):
    write_tool(bin_dir, "apt-get", APT_NO_SECURITY)
    gate = Gate()
    collector = collector_for(bin_dir, root, interval=3600, wait=gate)
    stop = threading.Event()
    collector.start(stop)
    collector.start(stop)  # a second start is a no-op: still one thread, one check
    assert gate.waiting.acquire(timeout=60)
    assert calls(bin_dir) == ["--just-print dist-upgrade LC_ALL=C"]
    assert gate.intervals == [3600]
    assert collector.report() == {"upgradable": 2, "security": 0, "reboot_required": False}
    registry_for(collector).get_sample_value("apt_upgrades_pending")  # scrapes run nothing
    assert len(calls(bin_dir)) == 1
    gate.let_go()  # the interval is over
    assert gate.waiting.acquire(timeout=60)
    assert len(calls(bin_dir)) == 2
    stop.set()
    gate.let_go()
    collector.thread.join(timeout=60)
    assert not collector.thread.is_alive()
    assert len(calls(bin_dir)) == 2


@spawns
def test_table_row_uses_the_rootfs_and_the_injected_path(bin_dir, root):
    write_tool(bin_dir, "apt-get", APT_NONE)
    (root / "run" / "reboot-required").touch()
    options = CollectorOptions(rootfs=str(root), packages_path=str(bin_dir))
    collector = build_collectors(["packages"], options)["packages"]
    collector.check_now()
    assert collector.report() == {"upgradable": 0, "security": 0, "reboot_required": True}


def test_package_metrics_pass_promtool(bin_dir, root, promtool):
    write_tool(bin_dir, "apt-get", APT_WITH_SECURITY)
    collector = collector_for(bin_dir, root)
    collector.check_now()
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry_for(collector)),
        capture_output=True,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
