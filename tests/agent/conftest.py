"""Agent test fixtures: a recorded /proc + /sys snapshot, and real agent/node_exporter processes."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from exporter_agent.collectors import COLLECTORS, CollectorOptions
from exporter_agent.collectors.timex import Timex
from tests.helpers import free_port, require_binary, wait_until

FIXTURES = Path(__file__).parent / "fixtures"
SNAPSHOT = FIXTURES / "snapshot"
REPO = Path(__file__).resolve().parents[2]
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMTOOL = "/usr/bin/promtool"
SNAPSHOT_TIME = 1_763_000_000.25


def fake_statvfs(path: str) -> SimpleNamespace:
    """statvfs answers recorded in statvfs.json (keyed by mount point under the snapshot rootfs);
    other mounts fail with EIO like a dead NFS server."""
    recorded = json.loads((SNAPSHOT / "statvfs.json").read_text())
    mountpoint = "/" + os.path.relpath(path, SNAPSHOT / "rootfs").removeprefix(".")
    if mountpoint not in recorded:
        raise OSError(5, "Input/output error", path)
    return SimpleNamespace(**recorded[mountpoint])


def recorded_adjtimex() -> tuple[int, Timex]:
    """The adjtimex(2) answer recorded with the snapshot, not this machine's live clock."""
    recorded = json.loads((SNAPSHOT / "adjtimex.json").read_text())
    state = recorded.pop("state")
    return state, Timex(**recorded)


def snapshot_options(**overrides) -> CollectorOptions:
    """CollectorOptions reading only the recorded snapshot (files, statvfs, uname, systemctl)."""
    uname = json.loads((SNAPSHOT / "uname.json").read_text())
    values = {
        "procfs": str(SNAPSHOT / "proc"),
        "sysfs": str(SNAPSHOT / "sys"),
        "rootfs": str(SNAPSHOT / "rootfs"),
        "values": {
            "udev_data": str(SNAPSHOT / "udev"),
            "systemd_units": ("ssh.service", "homelab-agent.service", "backup.timer"),
        },
        "statvfs": fake_statvfs,
        "uname": lambda: SimpleNamespace(**uname),
        "clock": lambda: SNAPSHOT_TIME,
        "localtime": time.gmtime,
        "systemctl": lambda args: (SNAPSHOT / "systemctl_show.txt").read_text(),
        "systemd_booted": lambda: True,
        # Never the machine's real docker socket or apt: no engine, no package tool.
        "container_sockets": (),
        "packages_path": "",
        "adjtimex": recorded_adjtimex,
        "page_size": 4096,
    }
    values.update(overrides)
    return CollectorOptions(**values)


@pytest.fixture
def snapshot():
    """Collector options bound to the recorded snapshot; os-release comes from its rootfs."""
    return snapshot_options()


@pytest.fixture
def all_collector_names():
    """Every collector the table knows."""
    return [spec.name for spec in COLLECTORS]


def http_get(url: str, headers: dict | None = None, timeout: float = 5.0):
    """GET ``url``; returns (status, headers, body bytes) also for 4xx/5xx answers."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - test URLs
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def _answers(url: str) -> bool:
    try:
        return http_get(url, timeout=1)[0] < 500
    except OSError:
        return False


class Proc:
    """A started subprocess with its port and captured output (stderr merged into a file)."""

    def __init__(self, argv: list[str], port: int, log_path: Path, env: dict | None = None):
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )

    @property
    def url(self) -> str:
        """Base URL of the process's HTTP server."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, path: str = "/metrics") -> None:
        """Wait until the HTTP server answers; fail with the log if the process died."""

        def ready():
            if self.popen.poll() is not None:
                pytest.fail(f"{self.popen.args[0]} exited early:\n{self.log()}")
            return _answers(self.url + path)

        wait_until(ready)

    def stop(self) -> int:
        """SIGTERM the process and return its exit status (kill after 10 s as a safety net)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def _quiet_package_tools() -> str:
    """A directory whose `apt-get` and `dnf` answer "nothing to upgrade" at once.

    Every agent process checks packages at start; the machine's real `apt-get --just-print`
    costs about a CPU second each, and its answer would depend on the machine.
    """
    tools = tempfile.mkdtemp(prefix="homelab-fake-apt-")
    atexit.register(shutil.rmtree, tools, ignore_errors=True)
    for name in ("apt-get", "dnf"):
        script = os.path.join(tools, name)
        with open(script, "w") as handle:
            handle.write("#!/bin/sh\nexit 0\n")
        os.chmod(script, 0o700)
    return tools


QUIET_PACKAGE_TOOLS = _quiet_package_tools()


def agent_env(**extra: str) -> dict[str, str]:
    """Environment for an agent subprocess: no HOMELAB_* leaking in from the developer's shell,
    and package tools that answer at once (see `_quiet_package_tools`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    env["PATH"] = QUIET_PACKAGE_TOOLS + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["PYTHONPATH"] = str(REPO)
    # A fresh state dir per agent: an enrolled key never leaks between tests or from $HOME.
    state_dir = tempfile.mkdtemp(prefix="homelab-agent-state-")
    atexit.register(shutil.rmtree, state_dir, ignore_errors=True)  # not left behind in /tmp
    env["HOMELAB_STATE_DIR"] = state_dir
    env.update(extra)
    return env


@pytest.fixture
def start_agent(tmp_path):
    """Factory: start ``python -m exporter_agent ARGS`` on a free 127.0.0.1 port."""
    started: list[Proc] = []

    def start(*args: str, env: dict | None = None, wait: bool = True) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "exporter_agent", "--listen-address", "127.0.0.1",
                "--listen-port", str(port), *args]  # fmt: skip
        proc = Proc(argv, port, tmp_path / f"agent-{len(started)}.log", env or agent_env())
        started.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def node_exporter(tmp_path):
    """The real Debian prometheus-node-exporter on a free 127.0.0.1 port."""
    binary = require_binary(NODE_EXPORTER, "prometheus-node-exporter")
    port = free_port()
    proc = Proc([binary, f"--web.listen-address=127.0.0.1:{port}"], port,
                tmp_path / "node_exporter.log")  # fmt: skip
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture
def promtool():
    """Path to the real promtool (from Debian's prometheus package)."""
    return require_binary(PROMTOOL, "promtool")
