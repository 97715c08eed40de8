"""Run a whitelisted argv on a box over SSH, with Fabric.

Fabric's defaults are wrong for a server that acts on a fleet, so this module changes them:
host keys are checked against a known_hosts file and unknown or changed keys are refused
(Fabric trusts any key); one connection per (host, port, user) is kept open and reused (Fabric
has no pool); the remote command runs under coreutils `timeout` so a timed-out command is really
stopped (Fabric only closes the channel, which leaves the process running); output is capped
while it is read, not after.
"""

from __future__ import annotations

import codecs
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fabric import Config, Connection
from fabric.runners import Remote
from invoke.exceptions import CommandTimedOut, ThreadException
from paramiko import (
    AuthenticationException,
    BadHostKeyException,
    ChannelException,
    RejectPolicy,
    SSHConfig,
    SSHException,
)

from control.errors import CommandTimeout, SshError
from control.remediation.whitelist import to_shell

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 10 * 1024  # bytes kept per stream
TRUNCATION_MARKER = "\n[output truncated: {total} bytes, first {kept} shown]\n"
KILL_AFTER = 2  # seconds between the remote `timeout`'s SIGTERM and its SIGKILL
# Exit statuses of `timeout` when it stopped the command (SIGTERM, then SIGKILL).
TIMEOUT_EXIT_CODES = frozenset({124, 137})
# Client-side backstop past the remote timeout, for a host whose `timeout` did not fire.
BACKSTOP_GRACE = 5
KEEPALIVE_SECONDS = 30
# OpenSSH refuses more than MaxSessions (default 10) channels per connection; stay below it and
# let further commands to the same host wait for a free channel.
SESSIONS_PER_CONNECTION = 8


@dataclass(frozen=True)
class CommandResult:
    """What a finished remote command returned; output is capped and always valid text."""

    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int


class SshExecutor:
    """Runs argv on remote hosts over pooled, host-key-checked SSH connections."""

    def __init__(
        self,
        key_file: str | os.PathLike[str] | None,
        known_hosts: str | os.PathLike[str] | None,
        connect_timeout: float = 10,
        command_timeout: float = 30,
        default_user: str = "root",
    ):
        self.key_file = Path(key_file) if key_file else None
        # Like ssh(1): no setting means the user's own known_hosts; a missing file knows no host.
        self.known_hosts = Path(known_hosts or "~/.ssh/known_hosts").expanduser()
        # Fabric casts connect_timeout to int, and 0 would mean "wait forever".
        self.connect_timeout = max(1, math.ceil(connect_timeout))
        if command_timeout <= 0:
            raise ValueError("command_timeout must be positive")
        self.command_timeout = command_timeout
        self.default_user = default_user
        self._pool: dict[tuple[str, int, str], Connection] = {}
        self._locks: dict[tuple[str, int, str], threading.Lock] = {}
        self._sessions: dict[tuple[str, int, str], threading.BoundedSemaphore] = {}
        self._pool_lock = threading.Lock()

    def run(
        self,
        host: str,
        port: int,
        user: str | None,
        argv: Sequence[str],
        timeout: float | None = None,
    ) -> CommandResult:
        """Run `argv` on the host; a non-zero exit is a result, not an error.

        Raises `CommandTimeout` when the command outlived `timeout` (it is stopped on the host)
        and `SshError` when the host cannot be reached, refuses us, or fails its host key check.
        """
        if not argv:
            raise ValueError("argv must not be empty")
        user = user or self.default_user
        timeout = self.command_timeout if timeout is None else timeout
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        # `timeout` sends SIGTERM to the command's whole process group, SIGKILL if it lingers.
        command = to_shell(["timeout", "-k", str(KILL_AFTER), _seconds(timeout), *argv])
        where = f"{user}@{_address(host, port)}"
        key = (host, port, user)
        with self._pool_lock:
            sessions = self._sessions.setdefault(
                key, threading.BoundedSemaphore(SESSIONS_PER_CONNECTION)
            )
        with sessions:
            return self._run(key, where, command, timeout)

    def _run(
        self, key: tuple[str, int, str], where: str, command: str, timeout: float
    ) -> CommandResult:
        for attempt in (1, 2):
            conn = self.connection(*key)
            started = time.monotonic()
            try:
                result = conn.run(
                    command,
                    hide=True,
                    warn=True,
                    pty=False,
                    in_stream=False,
                    timeout=timeout + KILL_AFTER + BACKSTOP_GRACE,
                )
                break
            except _NotStarted as exc:
                if conn.is_connected and isinstance(exc.__cause__, ChannelException):
                    # A live connection whose server refused one more channel: closing it
                    # would cut off the commands running on it.
                    raise SshError(f"{where} refused an SSH session: {exc}") from None
                # The command was never sent, so trying again cannot run it twice.
                self._discard(key, conn)
                if attempt == 2:
                    raise SshError(f"SSH connection to {where} failed: {exc}") from None
                log.info("ssh connection to %s was dead; reopening it", where)
            except CommandTimedOut:
                # Only this command's channel was closed; the connection stays in the pool.
                raise CommandTimeout(_timeout_message(timeout)) from None
            except (ThreadException, SSHException, EOFError, OSError) as exc:
                self._discard(key, conn)
                raise SshError(
                    f"SSH connection to {where} broke while the command ran: {_reason(exc)}"
                ) from None
        duration_ms = round((time.monotonic() - started) * 1000)
        exit_code = result.exited
        # After SIGKILL the remote `timeout` itself dies in its process group, so sshd reports
        # a signal and paramiko an exit status of -1 rather than 137.
        timed_out = exit_code in TIMEOUT_EXIT_CODES or exit_code is None or exit_code < 0
        if timed_out and duration_ms >= timeout * 1000:
            raise CommandTimeout(_timeout_message(timeout))
        if exit_code is None or exit_code < 0:
            # sshd closed the channel without an exit status: the session died underneath us.
            raise SshError(f"SSH session on {where} ended without an exit status")
        return CommandResult(exit_code, result.stdout, result.stderr, duration_ms)

    def connection(self, host: str, port: int, user: str | None = None) -> Connection:
        """The pooled, open connection for (host, port, user); opens or reopens it when needed."""
        user = user or self.default_user
        key = (host, port, user)
        with self._pool_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        # One lock per host, so a slow handshake with one box does not hold up the others.
        with lock:
            conn = self._pool.get(key)
            if conn is not None and conn.is_connected:
                return conn
            if conn is not None:
                log.info("ssh connection to %s@%s was closed; reopening it", user, host)
                _close_quietly(conn)
            conn = self._open(host, port, user)
            with self._pool_lock:
                self._pool[key] = conn
            return conn

    def close(self) -> None:
        """Close every pooled connection."""
        with self._pool_lock:
            connections = list(self._pool.values())
            self._pool.clear()
        for conn in connections:
            _close_quietly(conn)

    def __enter__(self) -> SshExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self, host: str, port: int, user: str) -> Connection:
        where = f"{user}@{_address(host, port)}"
        connect_kwargs = {
            "allow_agent": False,
            "look_for_keys": self.key_file is None,
            "banner_timeout": self.connect_timeout,
            "auth_timeout": self.connect_timeout,
            "channel_timeout": self.connect_timeout,
        }
        if self.key_file is not None:
            if not self.key_file.is_file():
                raise SshError(f"SSH key file {self.key_file} does not exist")
            connect_kwargs["key_filename"] = str(self.key_file)
        conn = Connection(
            host,
            user=user,
            port=port,
            config=_fabric_config(),
            connect_timeout=self.connect_timeout,
            connect_kwargs=connect_kwargs,
        )
        conn.client.set_missing_host_key_policy(_RefuseUnknownHost(self.known_hosts))
        if self.known_hosts.is_file():
            conn.client.load_system_host_keys(str(self.known_hosts))
        try:
            conn.open()
        except SshError:
            conn.client.close()
            raise
        except BadHostKeyException as exc:
            conn.client.close()
            raise SshError(
                f"host key of {_address(host, port)} ({_fingerprint(exc.key)}) does not match "
                f"{self.known_hosts} ({_fingerprint(exc.expected_key)}); refusing to connect: "
                "the host was reinstalled or someone is in between"
            ) from None
        except AuthenticationException as exc:
            conn.client.close()
            raise SshError(f"SSH authentication as {where} failed: {_reason(exc)}") from None
        except (SSHException, EOFError, OSError) as exc:
            conn.client.close()
            raise SshError(f"cannot connect to {where}: {_reason(exc)}") from None
        conn.transport.set_keepalive(KEEPALIVE_SECONDS)
        log.info("ssh connected to %s", where)
        return conn

    def _discard(self, key: tuple[str, int, str], conn: Connection) -> None:
        with self._pool_lock:
            if self._pool.get(key) is conn:
                del self._pool[key]
        _close_quietly(conn)


class _RefuseUnknownHost(RejectPolicy):
    """Paramiko's RejectPolicy, with a message that tells the operator what to do."""

    def __init__(self, known_hosts: Path):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        raise SshError(
            f"host key of {hostname} ({_fingerprint(key)}) is not in {self.known_hosts}; "
            "refusing to connect to an unknown host (add its key to known_hosts to trust it)"
        )


class _NotStarted(Exception):
    """No channel could be opened, so the remote command was never sent."""


class _CappedRemote(Remote):
    """Fabric's remote runner, reading at most OUTPUT_LIMIT bytes per stream into memory."""

    def start(self, command, shell, env, timeout=None):
        # Only the plain exec path (no pty, no env): separating "channel open failed" from
        # "command sent" is what makes reopening a dead connection safe to retry.
        try:
            self.channel = self.context.create_session()
        except (SSHException, EOFError, OSError) as exc:
            raise _NotStarted(_reason(exc)) from exc
        self.send_start_message(command)

    def send_start_message(self, command):
        # paramiko waits for sshd to confirm the exec request with no deadline, and invoke
        # starts its timeout only afterwards: a host that freezes at that moment would hang the
        # caller forever. Closing the transport after the connect timeout wakes that wait with
        # an error (the connection is frozen anyway, so nothing usable is lost).
        transport = self.channel.get_transport()
        deadline = max(1, int(self.context.connect_timeout or 10))
        watchdog = threading.Timer(deadline, transport.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            super().send_start_message(command)
        finally:
            watchdog.cancel()

    def _handle_output(self, buffer_, hide, output, reader):
        kept = bytearray()
        total = 0
        # Keep draining past the limit so the remote command never blocks on a full pipe.
        while data := reader(self.read_chunk_size):
            total += len(data)
            room = OUTPUT_LIMIT - len(kept)
            if room > 0:
                kept += data[:room]
        buffer_.append(cap_output(bytes(kept), total))


def cap_output(kept: bytes, total: int) -> str:
    """Decode captured bytes (invalid UTF-8 replaced), marking output cut at OUTPUT_LIMIT."""
    truncated = total > len(kept)
    # Cut output may end inside a multi-byte character: hold the partial character back.
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(kept, final=not truncated)
    if truncated:
        text += TRUNCATION_MARKER.format(total=total, kept=len(kept))
    return text


def _fabric_config() -> Config:
    # An explicit empty SSHConfig and lazy=True: no ~/.ssh/config or /etc/fabric.yaml may
    # redirect a host, change a port or add a ProxyCommand behind the operator's back.
    return Config(
        ssh_config=SSHConfig(),
        lazy=True,
        overrides={
            "load_ssh_configs": False,
            "runners": {"remote": _CappedRemote},
            "run": {"encoding": "utf-8"},
        },
    )


def _close_quietly(conn: Connection) -> None:
    try:
        conn.client.close()
    except (SSHException, EOFError, OSError):
        log.debug("ignoring error while closing %s", conn.host, exc_info=True)


def _seconds(timeout: float) -> str:
    return f"{timeout:.3f}".rstrip("0").rstrip(".")


def _timeout_message(timeout: float) -> str:
    return f"command timed out after {_seconds(timeout)} s and was stopped"


def _address(host: str, port: int) -> str:
    return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"


def _fingerprint(key: object) -> str:
    return getattr(key, "fingerprint", None) or "unknown key"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
