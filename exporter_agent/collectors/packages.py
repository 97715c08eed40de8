"""Pending package upgrades and reboot-required, checked in the background (apt, else dnf).

Asking apt or dnf takes seconds, so it never happens in a scrape: ``start()`` runs a daemon
thread that checks once at start and then every ``interval`` (an hour); ``collect()`` and the
heartbeat's ``report()`` only read the last result. The names are the community textfile
scripts' (node-exporter-textfile-collector-scripts ``apt.sh``/``apt_info.py``, ``yum.sh``), so
their dashboards and alerts work unchanged:

==================================================  =============================================
metric                                              meaning
==================================================  =============================================
``apt_upgrades_pending{origin,arch}``               apt: upgrades ``apt-get dist-upgrade`` would
                                                    install, by origin(s) and architecture;
                                                    ``{origin="",arch=""} 0`` when none
``yum_upgrades_pending{origin}``                    dnf: upgrades by repository
``node_reboot_required``                            1 when /run/reboot-required exists (or, with
                                                    dnf, ``needs-restarting -r`` says so)
``homelab_agent_packages_check_success``            whether the latest check succeeded
``homelab_agent_packages_last_check_timestamp_seconds``  Unix time of the last successful check
==================================================  =============================================

Security upgrades (the heartbeat's ``security``) are those whose origin names a security
archive; in PromQL ``sum(apt_upgrades_pending{origin=~"(?i).*security.*"})``. A failed check
keeps the last good result (check_success 0). Without apt-get or dnf in PATH the collector is
absent: no series at all, and success.
"""

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from exporter_agent.metrics import GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 3600.0
TIMEOUT_SECONDS = 300.0  # dnf may refresh its metadata first
MAX_ORIGIN = 128
MAX_ARCH = 32
MAX_COUNT = 100_000
CHECK_ERRORS = (OSError, ValueError, subprocess.SubprocessError)
APT_UPGRADE = ("apt-get", "--just-print", "dist-upgrade")
DNF_UPDATES = ("dnf", "-q", "check-update")
DNF_SECURITY = ("dnf", "-q", "updateinfo", "list", "--security")
NEEDS_RESTARTING = ("needs-restarting", "-r")
DNF_UPDATES_AVAILABLE = 100  # check-update's exit status when there are updates
# "Inst pkg [old] (new origin1, origin2 [arch])", as apt.sh's awk reads it; [old] is absent
# for a package the upgrade newly installs, which apt.sh counts too.
_APT_INST = re.compile(r"Inst (\S+)(?: \[[^\]]*\])? \((\S+)(.*) \[([^\]\s]*)\]\)")
_NEVRA = re.compile(r"\S+-[^-\s]+-[^-\s]+\.[A-Za-z0-9_]+")


class PackageCheck(NamedTuple):
    """One successful check: pending upgrades by label values, counts, reboot flag, time."""

    manager: str  # "apt" or "dnf"
    pending: dict[tuple[str, ...], int]  # apt: (origin, arch); dnf: (origin,)
    upgradable: int
    security: int
    reboot_required: bool
    checked_at: float

    def report(self) -> dict[str, Any]:
        """The heartbeat's ``packages`` object, counts capped to the wire contract's range."""
        return {
            "upgradable": min(self.upgradable, MAX_COUNT),
            "security": min(self.security, self.upgradable, MAX_COUNT),
            "reboot_required": self.reboot_required,
        }


def parse_apt(text: str) -> tuple[dict[tuple[str, ...], int], int, int]:
    """``apt-get --just-print dist-upgrade`` output → ({(origin, arch): n}, upgradable, security).

    Only ``Inst`` lines count; held packages ("kept back") and anything unparseable are ignored.
    """
    pending: Counter[tuple[str, ...]] = Counter()
    security = 0
    for line in text.splitlines():
        found = _APT_INST.match(line)
        if found is None:
            continue
        origin = found.group(3).replace(" ", "")
        pending[(origin[:MAX_ORIGIN], found.group(4)[:MAX_ARCH])] += 1
        security += "security" in origin.lower()
    return dict(pending), sum(pending.values()), security


def parse_dnf_updates(text: str) -> dict[tuple[str, ...], int]:
    """``dnf -q check-update`` output → {(repository,): n}, like yum.sh.

    A package line is "name.arch version repo"; a long name wraps its other fields onto the
    next line. Everything from "Obsoleting Packages" on is not an upgrade.
    """
    pending: Counter[tuple[str, ...]] = Counter()
    carried: list[str] = []
    for line in text.splitlines():
        if line.startswith("Obsoleting Packages"):
            break
        fields = carried + line.split()
        carried = []
        if len(fields) == 3 and "." in fields[0]:
            pending[(fields[2][:MAX_ORIGIN],)] += 1
        elif len(fields) < 3:
            carried = fields
    return dict(pending)


def parse_dnf_security(text: str) -> int:
    """``dnf -q updateinfo list --security`` output → how many distinct packages it names."""
    packages = set()
    for line in text.splitlines():
        for field in line.split()[2:]:
            if _NEVRA.fullmatch(field):
                packages.add(field)
                break
    return len(packages)


class CommandRunner:
    """Runs package tools found on ``path`` (PATH syntax): LC_ALL=C, no shell, a timeout."""

    def __init__(self, path: str | None = None, timeout: float = TIMEOUT_SECONDS) -> None:
        self.path = os.environ.get("PATH", os.defpath) if path is None else path
        self.timeout = timeout

    def which(self, name: str) -> str | None:
        """The tool's full path on this runner's PATH, or None when it is not installed."""
        return shutil.which(name, path=self.path)

    def run(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` and return its result whatever its exit status; raises on timeout."""
        executable = self.which(argv[0])
        if executable is None:
            raise FileNotFoundError(f"{argv[0]} is not on PATH")
        return subprocess.run(
            [executable, *argv[1:]],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=self.timeout,
            check=False,
            env={"LC_ALL": "C", "PATH": self.path},
        )


def _checked(result: subprocess.CompletedProcess[str], ok: Sequence[int] = (0,)) -> str:
    if result.returncode not in ok:
        raise subprocess.CalledProcessError(
            result.returncode, result.args, result.stdout, result.stderr
        )
    return result.stdout


def check_packages(runner: CommandRunner, root: str, now: float) -> PackageCheck | None:
    """Ask apt (else dnf) once; None when neither is installed. Raises CHECK_ERRORS on failure."""
    reboot_file = os.path.exists(os.path.join(root, "run", "reboot-required"))
    if runner.which(APT_UPGRADE[0]):
        pending, upgradable, security = parse_apt(_checked(runner.run(APT_UPGRADE)))
        return PackageCheck("apt", pending, upgradable, security, reboot_file, now)
    if runner.which(DNF_UPDATES[0]):
        result = runner.run(DNF_UPDATES)
        pending = parse_dnf_updates(_checked(result, (0, DNF_UPDATES_AVAILABLE)))
        security = parse_dnf_security(_checked(runner.run(DNF_SECURITY))) if pending else 0
        reboot = reboot_file
        if not reboot and runner.which(NEEDS_RESTARTING[0]):
            reboot = runner.run(NEEDS_RESTARTING).returncode == 1
        return PackageCheck("dnf", pending, sum(pending.values()), security, reboot, now)
    return None


def _wait(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(seconds)


class PackagesCollector:
    """Exports the package families (module docstring) from a background check's last result."""

    def __init__(
        self,
        root: str = "/",
        runner: CommandRunner | None = None,
        interval: float = CHECK_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.time,
        wait: Callable[[threading.Event, float], bool] = _wait,
    ) -> None:
        self._root = root
        self._runner = runner or CommandRunner()
        self._interval = interval
        self._clock = clock
        self._wait = wait
        self._lock = threading.Lock()
        self._last: PackageCheck | None = None
        self._attempted = self._ok = self._absent = False
        self.thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        """Start the background check (once; later calls do nothing) until ``stop`` is set."""
        with self._lock:
            if self.thread is not None:
                return
            self.thread = threading.Thread(
                target=self._loop, args=(stop,), name="packages", daemon=True
            )
        self.thread.start()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.check_now()
            if self._wait(stop, self._interval):
                return

    def check_now(self) -> None:
        """Run one check and keep its result; a failure keeps the last good one."""
        try:
            result = check_packages(self._runner, self._root, self._clock())
        except CHECK_ERRORS as exc:
            if self._ok or not self._attempted:
                log.warning("package check failed, keeping the last result: %s", exc)
            with self._lock:
                self._attempted, self._ok = True, False
            return
        if self._attempted and not self._ok:
            log.info("package check recovered")
        with self._lock:
            self._attempted, self._ok = True, True
            self._absent = result is None
            self._last = result

    def report(self) -> dict[str, Any] | None:
        """The heartbeat's ``packages`` object; None before the first successful check."""
        with self._lock:
            return None if self._last is None else self._last.report()

    def collect(self) -> Iterator[Metric]:
        """Yield the last result's families; nothing before the first check or without a tool."""
        with self._lock:
            last, attempted, ok, absent = self._last, self._attempted, self._ok, self._absent
        if not attempted or absent:
            return
        if last is not None:
            yield from package_families(last)
        yield GaugeMetricFamily(
            "homelab_agent_packages_check_success",
            "Whether the latest package check succeeded (1) or not (0).",
            value=1.0 if ok else 0.0,
        )
        yield GaugeMetricFamily(
            "homelab_agent_packages_last_check_timestamp_seconds",
            "Unix time of the last successful package check, 0 before the first.",
            value=last.checked_at if last else 0.0,
        )


def package_families(check: PackageCheck) -> list[Metric]:
    """apt_upgrades_pending or yum_upgrades_pending, and node_reboot_required, for one check."""
    if check.manager == "apt":
        pending = GaugeMetricFamily(
            "apt_upgrades_pending",
            "Apt package pending updates by origin.",
            labels=("origin", "arch"),
        )
        empty: tuple[str, ...] = ("", "")
    else:
        pending = GaugeMetricFamily(
            "yum_upgrades_pending", "Yum package pending updates by origin.", labels=("origin",)
        )
        empty = ("",)
    # As the scripts do: one zero series when nothing is pending, so sum() is 0, not empty.
    for labels, count in sorted(check.pending.items()) or [(empty, 0)]:
        pending.add_metric(labels, float(count))
    reboot = GaugeMetricFamily(
        "node_reboot_required",
        "Node reboot is required for software updates.",
        value=1.0 if check.reboot_required else 0.0,
    )
    return [pending, reboot]
