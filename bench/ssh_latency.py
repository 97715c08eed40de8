"""Command latency through SshExecutor against raw paramiko, on the same loopback sshd.

Both sides send the identical command string over one already-open connection, so the ratio
is what Fabric, the pool, the output cap and the timeout handling cost per command (goal:
at most 1.1x). Runs alternate between the two so drift on the machine hits both alike. Also
prints first-command latency (connect, host key check, auth, one command) for each.

    .venv/bin/python bench/ssh_latency.py [--runs 200] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import paramiko

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from control.remediation.executor import KILL_AFTER, SshExecutor
from control.remediation.whitelist import to_shell
from tests.sshd import SSHD, SshServer, running_sshd

ARGV = ["echo", "hello"]
GOAL = 1.1


def raw_client(server: SshServer) -> paramiko.SSHClient:
    """A plain paramiko client with the same host key checking as the executor."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.load_system_host_keys(str(server.known_hosts_path))
    client.connect(
        server.host,
        server.port,
        server.user,
        key_filename=str(server.client_key_path),
        allow_agent=False,
        look_for_keys=False,
    )
    return client


def raw_run(client: paramiko.SSHClient, command: str) -> int:
    """One command the shortest way paramiko allows: exec, read both streams, exit status."""
    _, stdout, stderr = client.exec_command(command)
    stdout.read()
    stderr.read()
    return stdout.channel.recv_exit_status()


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="commands per side")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: 10 runs per side")
    args = parser.parse_args()
    runs = 10 if args.smoke else args.runs
    if not SSHD.exists():
        print(f"{SSHD} is not installed (Debian package openssh-server)", file=sys.stderr)
        return 2
    timeout = 30
    # The executor wraps argv in `timeout`; the baseline sends that very string.
    command = to_shell(["timeout", "-k", str(KILL_AFTER), str(timeout), *ARGV])

    with tempfile.TemporaryDirectory() as tmp, running_sshd(Path(tmp)) as server:
        executor = SshExecutor(
            server.client_key_path, server.known_hosts_path, 5, timeout, server.user
        )

        def ours() -> None:
            executor.run(server.host, server.port, server.user, ARGV)

        client: paramiko.SSHClient | None = None

        def first_raw() -> None:
            nonlocal client
            client = raw_client(server)
            raw_run(client, command)

        first_ours = timed(ours)
        first_paramiko = timed(first_raw)
        assert client is not None
        ours_times, raw_times = [], []
        for _ in range(runs):
            ours_times.append(timed(ours))
            raw_times.append(timed(lambda: raw_run(client, command)))
        executor.close()
        client.close()

    ours_ms = statistics.median(ours_times) * 1000
    raw_ms = statistics.median(raw_times) * 1000
    ratio = ours_ms / raw_ms
    print(f"runs per side:        {runs}")
    print(
        f"first command:        executor {first_ours * 1000:.1f} ms, "
        f"paramiko {first_paramiko * 1000:.1f} ms"
    )
    print(f"pooled median:        executor {ours_ms:.2f} ms, paramiko {raw_ms:.2f} ms")
    print(
        f"ratio:                {ratio:.3f}x (goal <= {GOAL}x) "
        f"{'ok' if ratio <= GOAL else 'OVER GOAL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
