"""Run a whitelisted argv on a box over a pooled SSH connection and capture what it returned.

The remote command runs under coreutils `timeout` so a timed-out command is really stopped
(Fabric only closes the channel, which leaves the process running); output is capped while it
is read, not after; a connection found dead before the command was sent is reopened once.
Connections themselves (host keys, reuse, idle closing) are `ssh.py`'s job.
"""

from __future__ import annotations

import codecs
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from fabric import Connection
from fabric.runners import Remote
from invoke.exceptions import CommandTimedOut, ThreadException
from paramiko import ChannelException, SSHException

from control.errors import CommandTimeout, SshError
from control.remediation.ssh import Key, SshPool, address, reason
from control.remediation.whitelist import to_shell

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 10 * 1024  # bytes kept per stream
TRUNCATION_MARKER = "\n[output truncated: {total} bytes, first {kept} shown]\n"
KILL_AFTER = 2  # seconds between the remote `timeout`'s SIGTERM and its SIGKILL
# Exit statuses of `timeout` when it stopped the command (SIGTERM, then SIGKILL).
TIMEOUT_EXIT_CODES = frozenset({124, 137})
# Client-side backstop past the remote timeout, for a host whose `timeout` did not fire.
BACKSTOP_GRACE = 5


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
        idle_timeout: float = 300,
    ):
        if command_timeout <= 0:
            raise ValueError("command_timeout must be positive")
        self.command_timeout = command_timeout
        self.default_user = default_user
        self.pool = SshPool(
            key_file,
            known_hosts,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            remote_runner=_CappedRemote,
        )

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
        where = f"{user}@{address(host, port)}"
        key = (host, port, user)
        # The session keeps the connection from being closed as idle while the command runs.
        with self.pool.session(key):
            return self._run(key, where, command, timeout)

    def _run(self, key: Key, where: str, command: str, timeout: float) -> CommandResult:
        for attempt in (1, 2):
            conn = self.pool.connection(*key)
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
                self.pool.discard(key, conn)
                if attempt == 2:
                    raise SshError(f"SSH connection to {where} failed: {exc}") from None
                log.info("ssh connection to %s was dead; reopening it", where)
            except CommandTimedOut:
                # Only this command's channel was closed; the connection stays in the pool.
                raise CommandTimeout(no_answer_message(timeout)) from None
            except (ThreadException, SSHException, EOFError, OSError) as exc:
                self.pool.discard(key, conn)
                raise SshError(
                    f"SSH connection to {where} broke while the command ran: {reason(exc)}"
                ) from None
        duration_ms = round((time.monotonic() - started) * 1000)
        exit_code = result.exited
        # After SIGKILL the remote `timeout` itself dies in its process group, so sshd reports
        # a signal and paramiko an exit status of -1 rather than 137.
        timed_out = exit_code in TIMEOUT_EXIT_CODES or exit_code is None or exit_code < 0
        if timed_out and duration_ms >= timeout * 1000:
            raise CommandTimeout(_timeout_message(timeout, exit_code, duration_ms))
        if exit_code is None or exit_code < 0:
            # sshd closed the channel without an exit status: the session died underneath us.
            raise SshError(f"SSH session on {where} ended without an exit status")
        return CommandResult(exit_code, result.stdout, result.stderr, duration_ms)

    def connection(self, host: str, port: int, user: str | None = None) -> Connection:
        """The pooled, open connection for (host, port, user); opens or reopens it when needed."""
        return self.pool.connection(host, port, user or self.default_user)

    def close(self) -> None:
        """Close every pooled connection and stop closing idle ones until the next command."""
        self.pool.close()

    def __enter__(self) -> SshExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _NotStarted(Exception):
    """No channel could be opened, so the remote command was never sent."""


# fabric ships no type information, so Remote is Any to mypy.
class _CappedRemote(Remote):  # type: ignore[misc]
    """Fabric's remote runner, reading at most OUTPUT_LIMIT bytes per stream into memory."""

    def start(
        self, command: str, shell: str, env: dict[str, Any], timeout: float | None = None
    ) -> None:
        # Only the plain exec path (no pty, no env): separating "channel open failed" from
        # "command sent" is what makes reopening a dead connection safe to retry.
        try:
            self.channel = self.context.create_session()
        except (SSHException, EOFError, OSError) as exc:
            raise _NotStarted(reason(exc)) from exc
        self.send_start_message(command)

    def send_start_message(self, command: str) -> None:
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

    def _handle_output(
        self,
        buffer_: list[str],
        hide: bool,
        output: IO[str],
        reader: Callable[[int], bytes],
    ) -> None:
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


def _seconds(timeout: float) -> str:
    return f"{timeout:.3f}".rstrip("0").rstrip(".")


def _timeout_message(timeout: float, exit_code: int | None, duration_ms: int) -> str:
    # Say only what the exit status shows. 124: `timeout` sent SIGTERM at the deadline and the
    # command then ended, whether the signal killed it or a handler finished its work first
    # (so not "stopped"). Otherwise it outlived SIGTERM and was killed KILL_AFTER s later.
    limit = f"command timed out after {_seconds(timeout)} s"
    if exit_code == 124:
        ended = f"{duration_ms / 1000:.1f}"
        return f"{limit}: it was still running then and was sent SIGTERM; it ended after {ended} s"
    return f"{limit}: it ignored SIGTERM and was killed {KILL_AFTER} s later"


def no_answer_message(timeout: float) -> str:
    """The 408 when the host gave no exit status even well past the deadline.

    Control gives up waiting; whether the host's own `timeout` stopped the command, control
    cannot see, so the message does not claim it.
    """
    waited = _seconds(timeout + KILL_AFTER + BACKSTOP_GRACE)
    return (
        f"command timed out after {_seconds(timeout)} s: the host sent no exit status within "
        f"{waited} s, so control stopped waiting (the remote `timeout` should still end it)"
    )
