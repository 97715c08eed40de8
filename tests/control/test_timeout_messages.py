"""A 408's message says what happened to the command, against the real sshd.

A command still running at its deadline is sent SIGTERM; it may then end (dying of the signal,
or finishing its work in a handler) or ignore it and be killed two seconds later. The message
tells these apart and never claims more than control saw.
"""

from __future__ import annotations

import uuid

import pytest

from control.errors import CommandTimeout
from control.remediation.executor import KILL_AFTER, SshExecutor, no_answer_message

pytestmark = pytest.mark.integration


@pytest.fixture
def executor(sshd):
    executor = SshExecutor(
        sshd.client_key_path, sshd.known_hosts_path, connect_timeout=5, default_user=sshd.user
    )
    yield executor
    executor.close()


def run_past_deadline(executor, sshd, script: str) -> str:
    with pytest.raises(CommandTimeout) as raised:
        executor.run(sshd.host, sshd.port, sshd.user, ["sh", "-c", script], timeout=1)
    return raised.value.message


def unique_sleep() -> str:
    return f"30.{uuid.uuid4().int % 10**9:09d}"


def test_a_command_that_finishes_its_work_after_sigterm_is_not_said_to_be_killed(
    executor, sshd, tmp_path
):
    done = tmp_path / "cleaned-up"
    script = f"trap 'touch {done}; exit 0' TERM; sleep {unique_sleep()} & wait"

    message = run_past_deadline(executor, sshd, script)

    assert done.exists()  # the handler ran: the command finished, after its deadline
    assert message.startswith("command timed out after 1 s: ")
    assert "sent SIGTERM" in message and "ended after" in message
    assert "killed" not in message


def test_a_command_that_ignores_sigterm_is_said_to_be_killed(executor, sshd):
    message = run_past_deadline(executor, sshd, f"trap '' TERM; sleep {unique_sleep()}")

    assert message.startswith("command timed out after 1 s: ")
    assert f"ignored SIGTERM and was killed {KILL_AFTER} s later" in message


def test_a_host_that_never_answers_is_said_to_be_given_up_on_not_stopped():
    # Provoked against a frozen host in tests/reliability/test_slow_ssh.py (code TIMEOUT); the
    # text must not claim the command was stopped, which control cannot see.
    message = no_answer_message(3)

    assert message.startswith("command timed out after 3 s: ")
    assert "stopped waiting" in message
    assert "was stopped" not in message and "killed" not in message
