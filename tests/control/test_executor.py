"""The SSH executor against a real OpenSSH server on 127.0.0.1 (the `sshd` fixture).

Over 300 lines: every test shares the one real sshd and its key fixtures; the idle-pool tests
sit beside the run tests because both exercise the same pooled connection.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
import uuid

import pytest

from control.config import Settings
from control.errors import CommandTimeout, SshError
from control.remediation.executor import OUTPUT_LIMIT, CommandResult, SshExecutor
from control.remediation.runner import Remediation
from tests.helpers import wait_until
from tests.sshd import free_port

pytestmark = pytest.mark.integration


def sshd_executor(sshd, **options) -> SshExecutor:
    """An executor trusting the test sshd, with short timeouts (and any `options`)."""
    return SshExecutor(
        sshd.client_key_path,
        sshd.known_hosts_path,
        connect_timeout=5,
        command_timeout=10,
        default_user=sshd.user,
        **options,
    )


@pytest.fixture
def executor(sshd):
    executor = sshd_executor(sshd)
    yield executor
    executor.close()


def run(executor, sshd, argv, **kwargs) -> CommandResult:
    return executor.run(sshd.host, sshd.port, sshd.user, argv, **kwargs)


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def unique_sleep_seconds() -> str:
    # A sleep argument no other process on this host has, so pgrep finds only ours.
    return f"30.{uuid.uuid4().int % 10**9:09d}"


def processes_matching(text: str) -> str:
    return subprocess.run(["pgrep", "-af", text], capture_output=True, text=True).stdout


# --- results -----------------------------------------------------------------------------------


def test_successful_command_returns_exit_code_and_stdout(executor, sshd):
    result = run(executor, sshd, ["echo", "hello"])

    assert result.exit_code == 0
    assert result.stdout == "hello\n"
    assert result.stderr == ""
    assert isinstance(result.duration_ms, int)
    assert result.duration_ms >= 0


def test_default_user_is_used_when_none_is_given(executor, sshd):
    result = executor.run(sshd.host, sshd.port, None, ["id", "-un"])

    assert result.stdout == f"{sshd.user}\n"


def test_failing_command_returns_its_exit_code_and_stderr(executor, sshd):
    result = run(executor, sshd, ["ls", "/nonexistent-homelabcmd"])

    assert result.exit_code == 2
    assert "No such file or directory" in result.stderr
    assert result.stdout == ""


def test_exit_code_and_both_streams_are_kept_apart(executor, sshd):
    result = run(executor, sshd, sh("echo out; echo err >&2; exit 3"))

    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_arguments_reach_the_command_verbatim_never_as_shell_syntax(executor, sshd, tmp_path):
    target = tmp_path / "x; touch pwned"

    result = run(executor, sshd, ["touch", "--", str(target)])
    echoed = run(executor, sshd, ["echo", "a  b", "$(id)", "`id`", ";", "|", "&&", "*"])

    assert result.exit_code == 0
    assert target.exists()
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path.parent / "pwned").exists()
    assert echoed.stdout == "a  b $(id) `id` ; | && *\n"


# --- output ------------------------------------------------------------------------------------


def test_stdout_is_capped_at_10_kb_with_a_marker(executor, sshd):
    result = run(executor, sshd, sh("head -c 50000 /dev/zero | tr '\\0' a"))

    body, marker = result.stdout[:OUTPUT_LIMIT], result.stdout[OUTPUT_LIMIT:]
    assert OUTPUT_LIMIT == 10 * 1024
    assert body == "a" * OUTPUT_LIMIT
    assert marker == f"\n[output truncated: 50000 bytes, first {OUTPUT_LIMIT} shown]\n"
    assert result.exit_code == 0


def test_stderr_is_capped_separately(executor, sshd):
    result = run(executor, sshd, sh("echo ok; head -c 20000 /dev/zero | tr '\\0' e >&2; exit 1"))

    assert result.stdout == "ok\n"
    assert result.stderr.startswith("e" * OUTPUT_LIMIT + "\n[output truncated: 20000 bytes")
    assert result.exit_code == 1


def test_output_of_exactly_the_limit_has_no_marker(executor, sshd):
    result = run(executor, sshd, sh(f"head -c {OUTPUT_LIMIT} /dev/zero | tr '\\0' a"))

    assert result.stdout == "a" * OUTPUT_LIMIT


def test_invalid_utf8_is_replaced(executor, sshd):
    result = run(executor, sshd, ["printf", "\\377\\376ok \\303\\251\\n"])

    assert result.stdout == "\ufffd\ufffdok \u00e9\n"


def test_a_character_cut_by_the_cap_is_dropped_not_garbled(executor, sshd):
    script = f"head -c {OUTPUT_LIMIT - 1} /dev/zero | tr '\\0' a; printf '\\303\\251tail'"

    result = run(executor, sshd, sh(script))

    assert result.stdout.startswith("a" * (OUTPUT_LIMIT - 1) + "\n[output truncated:")
    assert "\ufffd" not in result.stdout


# --- timeouts ----------------------------------------------------------------------------------


def test_timeout_raises_and_stops_the_remote_process(executor, sshd):
    seconds = unique_sleep_seconds()

    with pytest.raises(CommandTimeout, match="timed out after 1 s"):
        run(executor, sshd, ["sleep", seconds], timeout=1)

    assert processes_matching(f"sleep {seconds}") == ""


def test_timeout_kills_a_command_that_ignores_sigterm_and_its_children(executor, sshd):
    seconds = unique_sleep_seconds()
    script = f"trap '' TERM; sleep {seconds} & sleep {seconds}; wait"

    with pytest.raises(CommandTimeout):
        run(executor, sshd, sh(script), timeout=1)

    assert processes_matching(f"sleep {seconds}") == ""


def test_connection_is_usable_after_a_timeout(executor, sshd):
    with pytest.raises(CommandTimeout):
        run(executor, sshd, ["sleep", unique_sleep_seconds()], timeout=1)

    assert run(executor, sshd, ["echo", "still here"]).stdout == "still here\n"


def test_a_quick_exit_124_is_a_result_not_a_timeout(executor, sshd):
    result = run(executor, sshd, sh("exit 124"))

    assert result.exit_code == 124


# --- refusals ----------------------------------------------------------------------------------


def test_unknown_host_key_is_refused(sshd):
    with (
        SshExecutor(sshd.client_key_path, sshd.empty_known_hosts(), 5, 10, sshd.user) as ex,
        pytest.raises(SshError, match=r"not in .*known_hosts_empty; refusing"),
    ):
        ex.run(sshd.host, sshd.port, None, ["true"])


def test_missing_known_hosts_file_refuses_every_host(sshd, tmp_path):
    with (
        SshExecutor(sshd.client_key_path, tmp_path / "absent", 5, 10, sshd.user) as ex,
        pytest.raises(SshError, match="refusing to connect to an unknown host"),
    ):
        ex.run(sshd.host, sshd.port, None, ["true"])


def test_changed_host_key_is_refused(sshd):
    known_hosts = sshd.known_hosts_with_wrong_key()

    with (
        SshExecutor(sshd.client_key_path, known_hosts, 5, 10, sshd.user) as ex,
        pytest.raises(SshError, match="does not match"),
    ):
        ex.run(sshd.host, sshd.port, None, ["true"])


def test_refused_host_key_runs_nothing(sshd, tmp_path):
    marker = tmp_path / "ran"

    with (
        SshExecutor(sshd.client_key_path, sshd.empty_known_hosts(), 5, 10, sshd.user) as ex,
        pytest.raises(SshError),
    ):
        ex.run(sshd.host, sshd.port, None, ["touch", str(marker)])

    assert not marker.exists()


def test_unreachable_port_is_an_ssh_error(executor, sshd):
    with pytest.raises(SshError, match="cannot connect"):
        executor.run(sshd.host, free_port(), sshd.user, ["true"])


def test_key_not_authorized_is_an_ssh_error(sshd, tmp_path):
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)

    with (
        SshExecutor(key, sshd.known_hosts_path, 5, 10, sshd.user) as ex,
        pytest.raises(SshError, match="authentication"),
    ):
        ex.run(sshd.host, sshd.port, None, ["true"])


def test_missing_key_file_is_an_ssh_error(sshd, tmp_path):
    with (
        SshExecutor(tmp_path / "no-key", sshd.known_hosts_path, 5, 10, sshd.user) as ex,
        pytest.raises(SshError, match=r"key file .* does not exist"),
    ):
        ex.run(sshd.host, sshd.port, None, ["true"])


# --- the connection pool -----------------------------------------------------------------------


def test_connection_is_reused_for_the_same_host_port_and_user(executor, sshd):
    first = executor.connection(sshd.host, sshd.port, sshd.user)
    run(executor, sshd, ["true"])
    run(executor, sshd, ["true"])

    assert executor.connection(sshd.host, sshd.port, sshd.user) is first
    assert first.is_connected


def test_closed_connection_is_reopened(executor, sshd):
    first = executor.connection(sshd.host, sshd.port, sshd.user)
    first.transport.close()

    result = run(executor, sshd, ["echo", "back"])

    assert result.stdout == "back\n"
    assert executor.connection(sshd.host, sshd.port, sshd.user) is not first


def test_connection_dropped_by_the_server_is_reopened(executor, sshd):
    first = executor.connection(sshd.host, sshd.port, sshd.user)
    sshd.drop_connections()

    result = run(executor, sshd, ["echo", "back"])

    assert result.stdout == "back\n"
    assert executor.connection(sshd.host, sshd.port, sshd.user) is not first


def test_more_parallel_commands_than_sshd_sessions_share_one_connection(executor, sshd):
    # The fixture's sshd allows OpenSSH's default of 10 sessions per connection.
    results = []

    def worker(n: int) -> None:
        results.append(run(executor, sshd, sh(f"sleep 0.3; echo {n}")).stdout)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == sorted(f"{n}\n" for n in range(25))
    assert len(executor.pool) == 1


def test_close_closes_pooled_connections(executor, sshd):
    conn = executor.connection(sshd.host, sshd.port, sshd.user)

    executor.close()

    assert not conn.is_connected
    assert run(executor, sshd, ["true"]).exit_code == 0


# --- idle connections --------------------------------------------------------------------------


@pytest.fixture
def quick_idle(sshd):
    """An executor whose pool closes connections after 1 s without a command."""
    executor = sshd_executor(sshd, idle_timeout=1)
    yield executor
    executor.close()


def test_idle_connection_is_closed_and_reopened_for_the_next_command(quick_idle, sshd, caplog):
    caplog.set_level(logging.INFO, logger="control.remediation.ssh")
    run(quick_idle, sshd, ["true"])
    first = quick_idle.connection(sshd.host, sshd.port, sshd.user)
    transport = first.transport

    wait_until(lambda: len(quick_idle.pool) == 0)

    assert not first.is_connected
    wait_until(lambda: not transport.is_alive())  # its paramiko thread is gone too
    assert f"closed ssh connection to {sshd.host} after 1 s idle" in caplog.text
    assert run(quick_idle, sshd, ["echo", "again"]).stdout == "again\n"
    assert quick_idle.connection(sshd.host, sshd.port, sshd.user) is not first


def test_connection_running_a_long_command_is_not_closed_as_idle(quick_idle, sshd):
    # The reaper wakes every 0.5 s throughout this 3 s command; closing the connection under
    # it would end the command with an SshError instead of its output.
    result = run(quick_idle, sshd, sh("sleep 3; echo done"))

    assert (result.exit_code, result.stdout) == (0, "done\n")


def test_close_stops_the_idle_reaper(quick_idle, sshd):
    run(quick_idle, sshd, ["true"])
    reaper = quick_idle.pool._reaper
    assert reaper is not None
    assert reaper.is_alive()

    quick_idle.close()

    assert not reaper.is_alive()
    assert quick_idle.pool._reaper is None


def test_reaper_restarts_with_the_first_connection_after_close(quick_idle, sshd):
    run(quick_idle, sshd, ["true"])
    quick_idle.close()

    run(quick_idle, sshd, ["true"])

    assert quick_idle.pool._reaper is not None
    assert quick_idle.pool._reaper.is_alive()
    wait_until(lambda: len(quick_idle.pool) == 0)


def test_idle_bookkeeping_counts_sessions_and_last_use(executor, sshd):
    # The default 300 s limit keeps the reaper out; close_idle gets the clock explicitly.
    key = (sshd.host, sshd.port, sshd.user)
    pool = executor.pool
    later = time.monotonic() + 301

    with pool.session(key):
        conn = pool.connection(*key)
        assert pool.close_idle(now=later) == []  # in use: never closed, however long
        with pool.session(key):
            pass
        assert pool.close_idle(now=later) == []  # one of two sessions still holds it
    assert conn.is_connected
    assert pool.close_idle(now=time.monotonic() + 299) == []  # used just now: not idle yet
    assert pool.close_idle(now=time.monotonic() + 301) == [key]
    assert not conn.is_connected
    assert len(pool) == 0


def test_idle_timeout_must_be_positive(sshd):
    with pytest.raises(ValueError, match="idle_timeout"):
        SshExecutor(sshd.client_key_path, sshd.known_hosts_path, idle_timeout=0)


def test_remediation_passes_ssh_idle_to_the_pool():
    remediation = Remediation(Settings(ssh_idle=42))
    try:
        assert remediation.executor.pool.idle_timeout == 42
    finally:
        remediation.close()
