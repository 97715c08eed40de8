"""A slow or stalled SSH host: control's timeouts hold, through the execute API, on a real sshd.

A TCP proxy thread on 127.0.0.1 sits between control and the test sshd and can stop
forwarding at a chosen point of the SSH conversation: before the banner (a host that accepts
connections and then hangs), after the command started (a host that freezes while a command
runs), or right after the exec request (a host that freezes before confirming the command).
Every request runs under a generous deadline that only detects a hang; nothing here measures
speed. Runs on SQLite and PostgreSQL (the `database_url` fixture): the audit rows are written
around a request that hangs in SSH, which each database must survive.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest

from tests.helpers import wait_until

CONNECT_TIMEOUT = 2
COMMAND_TIMEOUT = 2
# Far beyond every timeout involved (connect 2 s; command 2 s + `timeout -k` 2 s + the
# executor's 5 s backstop; one reconnect): a request still running after this is hung.
HANG = 30.0

COMMANDS = """
[commands.sleep_for]
argv = ["sleep", "{seconds}"]
[commands.sleep_for.params]
seconds = "^[0-9]{1,3}[.][0-9]{1,9}$"

[commands.echo_text]
argv = ["echo", "{text}"]
[commands.echo_text.params]
text = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""


class _Link:
    """One proxied connection: client socket, upstream socket, what may still flow."""

    def __init__(self, client, upstream) -> None:
        self.client, self.upstream = client, upstream
        self.down_stalled = False  # sshd → control
        self.up_stalled = False  # control → sshd
        self.client_chunks = 0
        self.reply_chunks = 0  # sshd → control chunks forwarded after the armed client chunk
        self.armed_at: int | None = None


class StallingProxy:
    """A TCP proxy in front of sshd whose forwarding a test can stop at chosen points.

    `blackhole = True`: new connections are accepted and never forwarded (no banner ever).
    `arm(n, stall_reply)`: on the live connections, count control's next `n` chunks; after
    the n-th, either stop sshd's answers at once (`stall_reply=True`) or keep forwarding and
    let the test `stall()` everything once the answer got through.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blackhole = False
        self.links: list[_Link] = []
        self._held: list = []
        self._lock = threading.Lock()
        self._arm: tuple[int, bool] | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.blackhole:
                self._held.append(client)  # keep it open, say nothing
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            link = _Link(client, upstream)
            with self._lock:
                self.links.append(link)
            for up in (True, False):
                threading.Thread(target=self._pump, args=(link, up), daemon=True).start()

    def _pump(self, link: _Link, up: bool) -> None:
        src, dst = (link.client, link.upstream) if up else (link.upstream, link.client)
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            with self._lock:
                past_armed = (
                    self._arm is not None
                    and link.armed_at is not None
                    and link.client_chunks + up - link.armed_at >= self._arm[0]
                )
                if up:
                    link.client_chunks += 1
                    if past_armed and self._arm[1]:
                        link.down_stalled = True  # before sshd can answer this chunk
                elif past_armed and not link.down_stalled:
                    link.reply_chunks += 1
                stalled = link.up_stalled if up else link.down_stalled
            if stalled:
                continue  # swallowed: the peer waits for an answer that never comes
            try:
                dst.sendall(data)
            except OSError:
                return

    def arm(self, chunks: int, stall_reply: bool) -> None:
        """Watch control's next `chunks` chunks on every live connection (see class doc)."""
        with self._lock:
            self._arm = (chunks, stall_reply)
            for link in self.links:
                link.armed_at = link.client_chunks
                link.reply_chunks = 0

    def answered(self) -> bool:
        """Whether sshd's answer to the armed chunk has been forwarded on some connection."""
        with self._lock:
            return any(link.reply_chunks > 0 for link in self.links)

    def stall(self) -> None:
        """Stop forwarding anything, both ways, on every live connection (sockets stay open)."""
        with self._lock:
            for link in self.links:
                link.up_stalled = link.down_stalled = True

    def close(self) -> None:
        """Close the listener and every socket, which ends any conversation left hanging."""
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets = [s for link in self.links for s in (link.client, link.upstream)]
        for sock in sockets + self._held:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def proxy(sshd) -> Iterator[StallingProxy]:
    """The stalling proxy in front of the session's sshd."""
    proxy = StallingProxy(sshd.port)
    yield proxy
    proxy.close()


@pytest.fixture
def settings_overrides(sshd, proxy, tmp_path):
    """Whitelist, client key and a known_hosts that names the proxy's address."""
    commands = tmp_path / "commands.toml"
    commands.write_text(COMMANDS)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{proxy.port} {sshd.host_public_key}\n")
    return {
        "commands_file": str(commands),
        "ssh_key_file": str(sshd.client_key_path),
        "ssh_known_hosts": str(known_hosts),
        "ssh_user": sshd.user,
        "command_timeout": COMMAND_TIMEOUT,
        "ssh_connect_timeout": CONNECT_TIMEOUT,
        "rate_limit": 100,
    }


@pytest.fixture
def server(client, auth, proxy):
    """A server row whose SSH address is the proxy."""
    body = {"id": "slow", "hostname": "slow", "ip_address": "127.0.0.1", "ssh_port": proxy.port}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    return "slow"


def execute(client, auth, body: dict) -> tuple[int, dict]:
    """POST to the execute endpoint in a thread; fail the test if it outlives HANG."""
    answer: list = []

    def call() -> None:
        response = client.post(
            "/api/v1/servers/slow/commands/execute", json=body, headers=auth.operator
        )
        answer.append((response.status_code, response.json))

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(HANG)
    if thread.is_alive():
        pytest.fail(f"execute {body} still hanging after {HANG}s")
    return answer[0]


def echo(client, auth, text: str) -> tuple[int, dict]:
    """Run `echo text` through the proxy."""
    return execute(client, auth, {"action_type": "echo_text", "parameters": {"text": text}})


def remote_sleep_running(marker: str) -> bool:
    """Whether `sleep <marker>` runs on the (local) host."""
    found = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, check=False)
    return found.returncode == 0


def test_host_that_never_sends_a_banner_is_500_ssh_error_after_the_connect_timeout(
    client, auth, server, proxy
):
    proxy.blackhole = True
    status, body = echo(client, auth, "hello")
    assert (status, body["code"]) == (500, "SSH_ERROR")
    assert "cannot connect" in body["message"]
    audit = client.get("/api/v1/audit?server_id=slow", headers=auth.viewer).json["audit"]
    assert [entry["result"] for entry in audit] == ["ssh_error"]


def test_host_that_freezes_mid_command_is_408_timeout_and_the_next_command_reconnects(
    client, auth, server, proxy
):
    assert echo(client, auth, "warm")[0] == 200  # connected and pooled through the proxy
    marker = f"30.{uuid.uuid4().int % 10**9}"
    # Control's next two chunks on the pooled connection are the channel open and the exec
    # request; once sshd's answer to the exec got through, the host freezes.
    proxy.arm(2, stall_reply=False)

    def freeze_when_running() -> None:
        wait_until(lambda: proxy.answered() and remote_sleep_running(marker), timeout=HANG)
        proxy.stall()

    freezer = threading.Thread(target=freeze_when_running, daemon=True)
    freezer.start()
    status, body = execute(
        client, auth, {"action_type": "sleep_for", "parameters": {"seconds": marker}}
    )
    freezer.join(HANG)
    assert (status, body["code"]) == (408, "TIMEOUT")
    # The remote `timeout` still stopped the command on the host, unseen by control.
    wait_until(lambda: not remote_sleep_running(marker), timeout=HANG)

    # The frozen connection is abandoned: the next command opens a new one and succeeds.
    status, body = echo(client, auth, "again")
    assert (status, body["stdout"]) == (200, "again\n")
    audit = client.get("/api/v1/audit?server_id=slow", headers=auth.viewer).json["audit"]
    assert [entry["result"] for entry in audit] == ["completed", "timeout", "completed"]


def test_host_that_freezes_before_confirming_the_command_does_not_hang_the_request(
    client, auth, server, proxy
):
    assert echo(client, auth, "warm")[0] == 200
    proxy.arm(2, stall_reply=True)  # sshd's answer to the exec request never arrives
    status, body = execute(
        client, auth, {"action_type": "sleep_for", "parameters": {"seconds": "0.1"}}
    )
    assert status in (408, 500)
    assert body["code"] in ("TIMEOUT", "SSH_ERROR")
