"""A real OpenSSH server on 127.0.0.1 for integration tests.

A pytest plugin: register with `pytest_plugins = ["tests.sshd"]` and ask for the `sshd` fixture.
The server has its own config, host key and client key in a temp dir and lets the current user
in with that key only. It runs on this host, so a test can check a command's side effects (files,
processes) locally.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port, require_binary

SSHD = Path("/usr/sbin/sshd")
STARTUP_DEADLINE = 15.0

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_ed25519
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/client_ed25519.pub
AllowUsers {user}
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxSessions 10
MaxStartups 64
LogLevel VERBOSE
"""


@dataclass
class SshServer:
    """Where the test sshd listens and the files a client needs to log in to it."""

    host: str
    port: int
    user: str
    client_key_path: Path
    known_hosts_path: Path
    host_public_key: str
    workdir: Path
    log_path: Path
    pid: int

    def known_hosts_with_wrong_key(self) -> Path:
        """A known_hosts naming this server with a different key, as after a host was replaced."""
        key = self.workdir / "wrong_host_ed25519"
        other = key.with_suffix(".pub").read_text() if key.exists() else _keygen(key)
        path = self.workdir / "known_hosts_wrong"
        path.write_text(f"[{self.host}]:{self.port} {_key_fields(other)}\n")
        return path

    def empty_known_hosts(self) -> Path:
        """A known_hosts file that knows no host at all."""
        path = self.workdir / "known_hosts_empty"
        path.write_text("")
        return path

    def drop_connections(self) -> None:
        """Kill every per-connection sshd child, as when a box reboots under open connections."""
        children = subprocess.run(
            ["pgrep", "-P", str(self.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)

    def log(self) -> str:
        """What sshd has logged so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """Start a real sshd for the session; skip locally (fail in CI) when it is not installed."""
    require_binary(str(SSHD), "OpenSSH server (Debian package openssh-server)")
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@contextlib.contextmanager
def running_sshd(workdir: Path) -> Iterator[SshServer]:
    """Run sshd with keys and config in `workdir` until the block ends (tests and benchmarks)."""
    # sshd refuses to start without its privilege separation directory.
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    host_pub = _keygen(workdir / "host_ed25519")
    client_key = workdir / "client_ed25519"
    _keygen(client_key)
    user = getpass.getuser()
    process, port, log_path = _start(workdir, user)
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {_key_fields(host_pub)}\n")
    try:
        yield SshServer(
            host="127.0.0.1",
            port=port,
            user=user,
            client_key_path=client_key,
            known_hosts_path=known_hosts,
            host_public_key=_key_fields(host_pub),
            workdir=workdir,
            log_path=log_path,
            pid=process.pid,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(workdir: Path, user: str) -> tuple[subprocess.Popen, int, Path]:
    # A free port can be taken between probing and binding; try a few.
    failures = []
    for attempt in range(3):
        port = free_port()
        config = workdir / "sshd_config"
        config.write_text(CONFIG.format(port=port, dir=workdir, user=user))
        log_path = workdir / f"sshd-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if _wait_for_banner(process, port):
            return process, port, log_path
        process.kill()
        process.wait()
        failures.append(log_path.read_text(errors="replace").strip())
    raise RuntimeError("sshd did not start:\n" + "\n---\n".join(failures))


def _wait_for_banner(process: subprocess.Popen, port: int) -> bool:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(64).startswith(b"SSH-2.0-"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "homelabcmd-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text()


def _key_fields(public_key_line: str) -> str:
    # "ssh-ed25519 AAAA… comment" → "ssh-ed25519 AAAA…", the form known_hosts wants.
    return " ".join(public_key_line.split()[:2])
