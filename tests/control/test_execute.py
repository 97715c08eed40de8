"""The synchronous execute endpoint over a real sshd: results, refusals outside the whitelist,
timeouts that leave no remote process, SSH errors, host keys and the per-key rate limit.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from control.models import AuditEntry
from tests.control.remediation_helpers import execute
from tests.helpers import wait_until


@pytest.fixture
def settings_overrides(ssh_settings):
    """The test whitelist, and SSH to the real test sshd."""
    return ssh_settings


def test_execute_returns_exit_code_output_and_duration(client, auth, server):
    response = execute(client, auth, {"command": "echo hello-world"})
    assert response.status_code == 200
    assert response.json["exit_code"] == 0
    assert response.json["stdout"] == "hello-world\n"
    assert response.json["stderr"] == ""
    assert response.json["duration_ms"] >= 0
    by_type = execute(client, auth, {"action_type": "echo_text", "parameters": {"text": "hi"}})
    assert by_type.json["stdout"] == "hi\n"
    entries = client.get("/api/v1/audit?source=execute", headers=auth.viewer).json["audit"]
    assert [e["result"] for e in entries] == ["completed", "completed"]
    assert entries[0]["actor"] == "bootstrap-operator"
    assert entries[0]["scope"] == "operator"


def test_execute_nonzero_exit_is_a_result(client, auth, server):
    response = execute(client, auth, {"action_type": "fail_loudly"})
    assert response.status_code == 200
    assert (response.json["exit_code"], response.json["stderr"]) == (3, "broken\n")


def test_synchronous_executions_appear_in_the_event_log(client, auth, server):
    assert execute(client, auth, {"command": "echo hello-world"}).status_code == 200
    assert execute(client, auth, {"action_type": "fail_loudly"}).json["exit_code"] == 3
    assert execute(client, auth, {"command": "rm -rf /"}).status_code == 400  # refused: no run
    events = client.get("/api/v1/events?server_id=box", headers=auth.viewer).json["events"]
    commands = [e for e in events if e["type"].startswith("command_")]
    ran = [(e["type"], e["details"]["action_type"], e["details"]["exit_code"]) for e in commands]
    assert ran == [("command_failed", "fail_loudly", 3), ("command_completed", "echo_text", 0)]
    failed = client.get("/api/v1/events?type=command_failed", headers=auth.viewer).json
    assert failed["total"] == 1 and "by bootstrap-operator" in failed["events"][0]["message"]


@pytest.mark.parametrize(
    "command",
    [
        "rm -rf /",
        "echo hello; touch PWNED",
        "echo 'a b'",
        "echo",
        "sleep 1",
        "touch /etc/marker-x",
        "",
    ],
)
def test_execute_refuses_commands_outside_the_whitelist(client, auth, server, command):
    response = execute(client, auth, {"command": command})
    assert response.status_code in {400, 422}
    if response.status_code == 400:
        assert response.json["code"] == "COMMAND_NOT_ALLOWED"
        entry = AuditEntry.select().order_by(AuditEntry.id.desc()).first()
        assert (entry.allowed, entry.result) == (False, "refused")


def test_execute_unknown_type_is_400_and_unknown_server_404(client, auth, server):
    response = execute(client, auth, {"action_type": "format_disk"})
    assert (response.status_code, response.json["code"]) == (400, "COMMAND_NOT_ALLOWED")
    assert execute(client, auth, {"command": "echo hi"}, server_id="ghost").status_code == 404
    both = execute(client, auth, {"command": "echo hi", "action_type": "echo_text"})
    assert both.status_code == 422


def test_execute_timeout_is_408_and_the_remote_process_is_gone(client, auth, server):
    marker = f"4.{uuid.uuid4().int % 10**9:09d}"
    response = execute(client, auth, {"command": f"sleep {marker}"})
    assert response.status_code == 408
    assert response.json["code"] == "TIMEOUT"

    def gone():
        found = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True)
        return found.returncode == 1

    wait_until(gone, timeout=15)
    entry = AuditEntry.select().order_by(AuditEntry.id.desc()).first()
    assert entry.result == "timeout"


def test_a_type_with_its_own_timeout_outlives_the_default_or_stops_sooner(client, auth, server):
    """The test whitelist's default is 3 s; patient_wait may take 10, impatient_wait only 1."""
    patient = execute(client, auth, {"action_type": "patient_wait"})  # sleeps 4 s
    assert (patient.status_code, patient.json["stdout"]) == (200, "waited\n")
    impatient = execute(client, auth, {"action_type": "impatient_wait"})  # sleeps 2 s
    assert (impatient.status_code, impatient.json["code"]) == (408, "TIMEOUT")


def test_unreachable_host_is_500_ssh_error(client, auth, server):
    client.put("/api/v1/servers/box", json={"ssh_port": 1}, headers=auth.operator)
    response = execute(client, auth, {"command": "echo hi"})
    assert (response.status_code, response.json["code"]) == (500, "SSH_ERROR")


@pytest.fixture
def untrusting(settings_overrides, sshd):
    settings_overrides["ssh_known_hosts"] = str(sshd.empty_known_hosts())
    return settings_overrides


def test_unknown_host_key_is_refused(untrusting, client, auth, server, workdir):
    response = execute(
        client, auth, {"action_type": "touch_marker", "parameters": {"name": "unsafe"}}
    )
    assert (response.status_code, response.json["code"]) == (500, "SSH_ERROR")
    assert "host key" in response.json["message"].lower()
    assert not (workdir / "marker-unsafe").exists()


def test_rate_limit_is_429_with_retry_after(client, auth, server):
    for _ in range(5):
        assert execute(client, auth, {"command": "echo hi"}).status_code == 200
    limited = execute(client, auth, {"command": "echo hi"})
    assert (limited.status_code, limited.json["code"]) == (429, "RATE_LIMITED")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # The limit is per key: another operator key still gets through.
    from control.keys import create_key

    other, _ = create_key("operator", "second-operator")
    response = client.post(
        "/api/v1/servers/box/commands/execute",
        json={"command": "echo hi"},
        headers={"X-API-Key": other},
    )
    assert response.status_code == 200
