"""A pool of SSH connections, one per (host, port, user), opened with Fabric.

Fabric's defaults are wrong for a server that acts on a fleet, so this module changes them:
host keys are checked against a known_hosts file and unknown or changed keys are refused
(Fabric trusts any key); one connection per (host, port, user) is kept open and reused (Fabric
has no pool), and closed again once it has been idle for a while, since each open connection
holds a paramiko transport thread and a socket. Running commands is `executor.py`'s job.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from fabric import Config, Connection
from fabric.runners import Remote
from paramiko import (
    AuthenticationException,
    BadHostKeyException,
    PKey,
    RejectPolicy,
    SSHClient,
    SSHConfig,
    SSHException,
)

from control.errors import SshError

log = logging.getLogger(__name__)

Key = tuple[str, int, str]  # (host, port, user)

KEEPALIVE_SECONDS = 30
# OpenSSH refuses more than MaxSessions (default 10) channels per connection; stay below it and
# let further commands to the same host wait for a free channel.
SESSIONS_PER_CONNECTION = 8
# The reaper wakes at least this often, so a long idle limit still frees connections promptly.
MAX_REAP_INTERVAL = 30.0


@dataclass
class _Slot:
    """Everything the pool keeps for one (host, port, user)."""

    # One lock per host, so a slow handshake with one box does not hold up the others.
    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(SESSIONS_PER_CONNECTION)
    )
    conn: Connection | None = None
    in_use: int = 0  # sessions holding the connection right now; never reaped while > 0
    last_used: float = 0.0  # monotonic time of the last open or session end


class SshPool:
    """Open, host-key-checked Fabric connections, reused per (host, port, user).

    A connection nobody has used for `idle_timeout` seconds is closed by a daemon reaper
    thread; one with a session open on it is never closed, however long its command runs.
    """

    def __init__(
        self,
        key_file: str | os.PathLike[str] | None,
        known_hosts: str | os.PathLike[str] | None,
        connect_timeout: float = 10,
        idle_timeout: float = 300,
        remote_runner: type[Remote] = Remote,
    ):
        self.key_file = Path(key_file) if key_file else None
        # Like ssh(1): no setting means the user's own known_hosts; a missing file knows no host.
        self.known_hosts = Path(known_hosts or "~/.ssh/known_hosts").expanduser()
        # Fabric casts connect_timeout to int, and 0 would mean "wait forever".
        self.connect_timeout = max(1, math.ceil(connect_timeout))
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        self.idle_timeout = idle_timeout
        self.remote_runner = remote_runner
        self._slots: dict[Key, _Slot] = {}
        self._pool_lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._stop_reaper = threading.Event()

    def __len__(self) -> int:
        """How many connections the pool holds right now."""
        with self._pool_lock:
            return sum(slot.conn is not None for slot in self._slots.values())

    @contextlib.contextmanager
    def session(self, key: Key) -> Iterator[None]:
        """Hold one of the key's session slots and keep its connection from being reaped.

        Waits while SESSIONS_PER_CONNECTION commands already run on that connection.
        """
        slot = self._slot(key)
        with slot.sessions:
            with self._pool_lock:
                slot.in_use += 1
            try:
                yield
            finally:
                with self._pool_lock:
                    slot.in_use -= 1
                    slot.last_used = time.monotonic()

    def connection(self, host: str, port: int, user: str) -> Connection:
        """The pooled, open connection for (host, port, user); opens or reopens it when needed.

        Raises `SshError` when the host cannot be reached, refuses us or fails its key check.
        """
        slot = self._slot((host, port, user))
        with slot.lock:
            conn = slot.conn
            if conn is not None and conn.is_connected:
                return conn
            if conn is not None:
                log.info("ssh connection to %s@%s was closed; reopening it", user, host)
                close_quietly(conn)
            conn = self._open(host, port, user)
            with self._pool_lock:
                slot.conn = conn
                slot.last_used = time.monotonic()
                self._start_reaper()
            return conn

    def discard(self, key: Key, conn: Connection) -> None:
        """Close `conn` and drop it from the pool, unless it was already replaced there."""
        with self._pool_lock:
            slot = self._slots.get(key)
            if slot is not None and slot.conn is conn:
                slot.conn = None
        close_quietly(conn)

    def close_idle(self, now: float | None = None) -> list[Key]:
        """Close every connection unused for `idle_timeout` seconds (as of `now`); return keys."""
        now = time.monotonic() if now is None else now
        idle: list[tuple[Key, Connection]] = []
        with self._pool_lock:
            for key, slot in self._slots.items():
                unused = slot.conn is not None and not slot.in_use
                if unused and now - slot.last_used >= self.idle_timeout:
                    idle.append((key, slot.conn))
                    slot.conn = None
        # Closing waits for the transport thread to stop: do it outside the pool lock.
        for (host, _, _), conn in idle:
            close_quietly(conn)
            log.info("closed ssh connection to %s after %g s idle", host, self.idle_timeout)
        return [key for key, _ in idle]

    def close(self) -> None:
        """Stop the reaper and close every pooled connection; the pool stays usable."""
        with self._pool_lock:
            reaper, self._reaper = self._reaper, None
            self._stop_reaper.set()
            connections = [slot.conn for slot in self._slots.values() if slot.conn is not None]
            for slot in self._slots.values():
                slot.conn = None
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join()
        for conn in connections:
            close_quietly(conn)

    def _slot(self, key: Key) -> _Slot:
        with self._pool_lock:
            return self._slots.setdefault(key, _Slot())

    def _start_reaper(self) -> None:
        # Called with the pool lock held, whenever a connection was opened: the first opening
        # (or the first after close()) starts the thread.
        if self._reaper is not None:
            return
        # A fresh event per thread: close() sets the old one, which must keep its thread stopped.
        self._stop_reaper = stop = threading.Event()
        interval = min(self.idle_timeout / 2, MAX_REAP_INTERVAL)
        self._reaper = threading.Thread(
            target=self._reap, args=(stop, interval), name="ssh-idle-reaper", daemon=True
        )
        self._reaper.start()

    def _reap(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                self.close_idle()
            except Exception:
                # The reaper must outlive one bad close; the next round tries again.
                log.exception("closing idle ssh connections failed")

    def _open(self, host: str, port: int, user: str) -> Connection:
        where = f"{user}@{address(host, port)}"
        connect_kwargs: dict[str, Any] = {
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
            config=_fabric_config(self.remote_runner),
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
                f"host key of {address(host, port)} ({_fingerprint(exc.key)}) does not match "
                f"{self.known_hosts} ({_fingerprint(exc.expected_key)}); refusing to connect: "
                "the host was reinstalled or someone is in between"
            ) from None
        except AuthenticationException as exc:
            conn.client.close()
            raise SshError(f"SSH authentication as {where} failed: {reason(exc)}") from None
        except (SSHException, EOFError, OSError) as exc:
            conn.client.close()
            raise SshError(f"cannot connect to {where}: {reason(exc)}") from None
        conn.transport.set_keepalive(KEEPALIVE_SECONDS)
        log.info("ssh connected to %s", where)
        return conn


class _RefuseUnknownHost(RejectPolicy):
    """Paramiko's RejectPolicy, with a message that tells the operator what to do."""

    def __init__(self, known_hosts: Path):
        self.known_hosts = known_hosts

    def missing_host_key(self, client: SSHClient, hostname: str, key: PKey) -> NoReturn:
        raise SshError(
            f"host key of {hostname} ({_fingerprint(key)}) is not in {self.known_hosts}; "
            "refusing to connect to an unknown host (add its key to known_hosts to trust it)"
        )


def _fabric_config(remote_runner: type[Remote]) -> Config:
    # An explicit empty SSHConfig and lazy=True: no ~/.ssh/config or /etc/fabric.yaml may
    # redirect a host, change a port or add a ProxyCommand behind the operator's back.
    return Config(
        ssh_config=SSHConfig(),
        lazy=True,
        overrides={
            "load_ssh_configs": False,
            "runners": {"remote": remote_runner},
            "run": {"encoding": "utf-8"},
        },
    )


def close_quietly(conn: Connection) -> None:
    """Close a connection, ignoring the errors of one that is already broken."""
    try:
        conn.client.close()
    except (SSHException, EOFError, OSError):
        log.debug("ignoring error while closing %s", conn.host, exc_info=True)


def address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"


def reason(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line error texts."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _fingerprint(key: object) -> str:
    return getattr(key, "fingerprint", None) or "unknown key"
