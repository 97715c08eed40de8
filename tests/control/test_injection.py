"""Shell-injection corpus: every value is refused by the queue, by execute (by type and as a
command) and by the restart_service shorthand, before anything reaches the real sshd.

A real sshd and dispatcher are running on purpose: if validation ever let a value through, the
command would really run here and leave its PWNED file.
"""

from __future__ import annotations

import pytest

from control.models import Action, AuditEntry
from tests.control.remediation_helpers import execute, queue

INJECTIONS = [
    "x; touch PWNED",
    "x && touch PWNED",
    "x | touch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "x\ntouch PWNED",
    "x\n",
    "-rf",
    "--help",
    "a b",
    "../../etc/passwd",
    "\uff54ouch",  # fullwidth look-alike
    "t\u043euch",  # Cyrillic o
    "x\x00y",
    "a" * 10_000,
    "",
]


@pytest.fixture
def settings_overrides(ssh_settings):
    """The test whitelist, and SSH to the real test sshd."""
    return ssh_settings


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_corpus_never_reaches_a_shell(client, auth, server, workdir, dispatching, value):
    queued = queue(client, auth, "touch_marker", name=value)
    assert queued.status_code == 422, queued.json
    assert "parameters.name" in queued.json["errors"]
    by_type = execute(client, auth, {"action_type": "echo_text", "parameters": {"text": value}})
    assert by_type.status_code == 422
    as_command = execute(client, auth, {"command": f"echo {value}"})
    assert as_command.status_code in {400, 413, 422}
    restart = client.post(
        "/api/v1/actions",
        headers=auth.operator,
        json={"server_id": "box", "action_type": "restart_service", "service_name": value},
    )
    assert restart.status_code == 422
    assert Action.select().count() == 0
    assert list(workdir.iterdir()) == []
    assert not list(workdir.parent.glob("PWNED*"))
    assert AuditEntry.select().where(AuditEntry.allowed == True).count() == 0  # noqa: E712
