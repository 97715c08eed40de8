"""The action queue and synchronous execution, end to end through the API against a real sshd.

Commands run on this very host through the test sshd, so each test checks its side effects
(files written, processes left) locally.
"""

from __future__ import annotations

import subprocess
import threading
import uuid

import pytest

from control.models import Action, AuditEntry
from control.scheduler import ControlScheduler
from tests.helpers import wait_until

COMMANDS = """
[commands.touch_marker]
argv = ["touch", "{workdir}/marker-{{name}}"]
[commands.touch_marker.params]
name = "^[a-z0-9][a-z0-9-]{{0,39}}$"

[commands.count_run]
argv = ["sh", "-c", "echo run >> {workdir}/count-{{name}}; sleep {{seconds}}"]
[commands.count_run.params]
name = "^[a-z0-9][a-z0-9-]{{0,39}}$"
seconds = "^[0-9]{{1,2}}$"

[commands.fail_loudly]
argv = ["sh", "-c", "echo broken >&2; exit 3"]

[commands.sleep_for]
argv = ["sleep", "{{seconds}}"]
[commands.sleep_for.params]
seconds = "^[0-9]{{1,3}}[.][0-9]{{1,9}}$"

[commands.echo_text]
argv = ["echo", "{{text}}"]
[commands.echo_text.params]
text = "^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"
"""

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
def workdir(tmp_path):
    path = tmp_path / "remote"
    path.mkdir()
    return path


@pytest.fixture
def settings_overrides(sshd, workdir, tmp_path):
    commands = tmp_path / "commands.toml"
    commands.write_text(COMMANDS.format(workdir=workdir))
    return {
        "commands_file": str(commands),
        "ssh_key_file": str(sshd.client_key_path),
        "ssh_known_hosts": str(sshd.known_hosts_path),
        "ssh_user": sshd.user,
        "command_timeout": 3,
        "rate_limit": 5,
    }


@pytest.fixture
def dispatching(app):
    """Run the scheduler (and its dispatcher) in-process, sharing the app's SSH pool."""
    context = app.extensions["homelab"]
    scheduler = ControlScheduler(context.settings, remediation=context.remediation)
    context.wake = scheduler.dispatcher.wake
    scheduler.start()
    yield scheduler
    scheduler.shutdown()


@pytest.fixture
def server(client, auth, sshd):
    body = {"id": "box", "hostname": "box", "ip_address": sshd.host, "ssh_port": sshd.port}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    return "box"


def queue(client, auth, action_type, server_id="box", **parameters):
    return client.post(
        "/api/v1/actions",
        headers=auth.operator,
        json={"server_id": server_id, "action_type": action_type, "parameters": parameters},
    )


def final(client, auth, action_id):
    def done():
        action = client.get(f"/api/v1/actions/{action_id}", headers=auth.viewer).json
        return action if action["status"] in {"completed", "failed", "rejected"} else None

    return wait_until(done, timeout=30)


def test_auto_approved_action_runs_and_leaves_its_side_effect(
    client, auth, server, workdir, dispatching
):
    response = queue(client, auth, "touch_marker", name="hello")
    assert response.status_code == 201
    action = response.json
    assert (action["status"], action["approved_by"]) == ("approved", "auto")
    assert action["created_by"] == "bootstrap-operator"
    assert action["command"] == f"touch {workdir}/marker-hello"
    done = final(client, auth, action["id"])
    assert (done["status"], done["exit_code"]) == ("completed", 0)
    assert done["executed_at"] and done["completed_at"]
    assert (workdir / "marker-hello").exists()
    entries = client.get("/api/v1/audit?source=action", headers=auth.viewer).json["entries"]
    assert [(e["action_id"], e["result"], e["allowed"]) for e in entries] == [
        (action["id"], "completed", True)
    ]
    assert entries[0]["argv"] == ["touch", f"{workdir}/marker-hello"]
    types = [
        e["type"]
        for e in client.get("/api/v1/events?server_id=box", headers=auth.viewer).json["events"]
    ]
    assert types[:3] == ["action_completed", "action_started", "action_created"]


def test_service_name_shorthand_and_builtin_restart_service(client, auth, server):
    response = client.post(
        "/api/v1/actions",
        headers=auth.operator,
        json={"server_id": "box", "action_type": "restart_service", "service_name": "nginx"},
    )
    assert response.status_code == 201
    assert response.json["parameters"] == {"service_name": "nginx"}
    assert response.json["command"] == "systemctl restart -- nginx"


def test_paused_server_action_waits_for_approval(client, auth, server, workdir, dispatching):
    paused = client.put("/api/v1/servers/box/pause", headers=auth.operator).json
    assert paused["is_paused"] is True and paused["paused_at"]
    action = queue(client, auth, "touch_marker", name="gated").json
    assert action["status"] == "pending"
    assert action["approved_by"] is None
    dispatching.dispatcher.wake()
    assert Action.get_by_id(action["id"]).status == "pending"
    assert not (workdir / "marker-gated").exists()

    approved = client.post(f"/api/v1/actions/{action['id']}/approve", headers=auth.operator)
    assert approved.status_code == 200
    assert approved.json["approved_by"] == "bootstrap-operator"
    assert final(client, auth, action["id"])["status"] == "completed"
    assert (workdir / "marker-gated").exists()

    unpaused = client.put("/api/v1/servers/box/unpause", headers=auth.operator).json
    assert (unpaused["is_paused"], unpaused["paused_at"]) == (False, None)
    assert queue(client, auth, "touch_marker", name="later").json["status"] == "approved"


def test_rejected_action_never_runs(client, auth, server, workdir, dispatching):
    client.put("/api/v1/servers/box/pause", headers=auth.operator)
    action = queue(client, auth, "touch_marker", name="nope").json
    rejected = client.post(
        f"/api/v1/actions/{action['id']}/reject",
        headers=auth.operator,
        json={"reason": "not during backups"},
    )
    assert rejected.status_code == 200
    assert rejected.json["status"] == "rejected"
    assert rejected.json["rejection_reason"] == "not during backups"
    assert rejected.json["rejected_by"] == "bootstrap-operator"
    again = client.post(f"/api/v1/actions/{action['id']}/approve", headers=auth.operator)
    assert again.status_code == 409
    dispatching.dispatcher.wake()
    assert not (workdir / "marker-nope").exists()
    assert (
        client.post(
            f"/api/v1/actions/{action['id']}/reject", headers=auth.operator, json={}
        ).status_code
        == 422
    )


def test_duplicate_open_action_is_409_until_it_finishes(client, auth, server):
    client.put("/api/v1/servers/box/pause", headers=auth.operator)
    first = queue(client, auth, "touch_marker", name="dup")
    second = queue(client, auth, "touch_marker", name="dup")
    assert second.status_code == 409
    assert second.json["code"] == "CONFLICT"
    assert f"action {first.json['id']}" in second.json["message"]
    assert queue(client, auth, "touch_marker", name="other").status_code == 201
    client.post(
        f"/api/v1/actions/{first.json['id']}/reject", headers=auth.operator, json={"reason": "x"}
    )
    assert queue(client, auth, "touch_marker", name="dup").status_code == 201


def test_approving_an_approved_action_is_409(client, auth, server):
    action = queue(client, auth, "touch_marker", name="a").json
    response = client.post(f"/api/v1/actions/{action['id']}/approve", headers=auth.operator)
    assert response.status_code == 409
    assert "approved" in response.json["message"]


def test_unknown_action_and_server_are_404(client, auth, server):
    assert client.get("/api/v1/actions/999", headers=auth.viewer).status_code == 404
    assert client.post("/api/v1/actions/999/approve", headers=auth.operator).status_code == 404
    assert queue(client, auth, "touch_marker", server_id="ghost", name="a").status_code == 404
    assert client.get("/api/v1/servers/ghost/actions", headers=auth.viewer).status_code == 404
    assert client.put("/api/v1/servers/ghost/pause", headers=auth.operator).status_code == 404


def test_unknown_action_type_is_403_command_not_allowed(client, auth, server):
    response = queue(client, auth, "format_disk")
    assert response.status_code == 403
    assert response.json["code"] == "COMMAND_NOT_ALLOWED"
    malformed = queue(client, auth, "Format Disk!")
    assert malformed.status_code == 422
    assert Action.select().count() == 0


def test_failing_command_records_exit_code_and_stderr(client, auth, server, dispatching):
    action = queue(client, auth, "fail_loudly").json
    done = final(client, auth, action["id"])
    assert done["status"] == "failed"
    assert done["exit_code"] == 3
    assert done["stderr"].strip() == "broken"


def test_list_filters_and_paginates(client, auth, server):
    client.put("/api/v1/servers/box/pause", headers=auth.operator)
    for name in ("a", "b", "c"):
        queue(client, auth, "touch_marker", name=name)
    queue(client, auth, "echo_text", text="hi")
    listing = client.get("/api/v1/actions?limit=2&offset=1", headers=auth.viewer).json
    assert (listing["total"], listing["limit"], listing["offset"]) == (4, 2, 1)
    assert [a["parameters"].get("name") for a in listing["actions"]] == ["c", "b"]
    typed = client.get("/api/v1/actions?action_type=echo_text", headers=auth.viewer).json
    assert typed["total"] == 1
    pending = client.get("/api/v1/servers/box/actions?status=pending", headers=auth.viewer).json
    assert pending["total"] == 4
    none = client.get("/api/v1/actions?status=completed", headers=auth.viewer).json
    assert none["total"] == 0


def test_twenty_parallel_approvals_run_the_action_once(app, auth, server, workdir, dispatching):
    client = app.test_client()
    client.put("/api/v1/servers/box/pause", headers=auth.operator)
    action = queue(client, auth, "count_run", name="once", seconds="0").json
    barrier = threading.Barrier(20)
    statuses = []

    def approve():
        local = app.test_client()
        barrier.wait()
        statuses.append(
            local.post(f"/api/v1/actions/{action['id']}/approve", headers=auth.operator).status_code
        )

    threads = [threading.Thread(target=approve) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 19
    assert final(client, auth, action["id"])["status"] == "completed"
    for _ in range(3):
        dispatching.dispatcher.wake()
        dispatching.dispatcher.dispatch_once()
    assert (workdir / "count-once").read_text() == "run\n"
    assert AuditEntry.select().where(AuditEntry.action_id == action["id"]).count() == 1


# --- synchronous execute -------------------------------------------------------------


def execute(client, auth, body, server_id="box"):
    return client.post(
        f"/api/v1/servers/{server_id}/commands/execute", json=body, headers=auth.operator
    )


def test_execute_returns_exit_code_output_and_duration(client, auth, server):
    response = execute(client, auth, {"command": "echo hello-world"})
    assert response.status_code == 200
    assert response.json["exit_code"] == 0
    assert response.json["stdout"] == "hello-world\n"
    assert response.json["stderr"] == ""
    assert response.json["duration_ms"] >= 0
    by_type = execute(client, auth, {"action_type": "echo_text", "parameters": {"text": "hi"}})
    assert by_type.json["stdout"] == "hi\n"
    entries = client.get("/api/v1/audit?source=execute", headers=auth.viewer).json["entries"]
    assert [e["result"] for e in entries] == ["completed", "completed"]
    assert entries[0]["actor"] == "bootstrap-operator"
    assert entries[0]["scope"] == "operator"


def test_execute_nonzero_exit_is_a_result(client, auth, server):
    response = execute(client, auth, {"action_type": "fail_loudly"})
    assert response.status_code == 200
    assert (response.json["exit_code"], response.json["stderr"]) == (3, "broken\n")


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


def test_killed_control_marks_executing_action_interrupted_and_never_reruns(
    tmp_path, sshd, workdir, settings_overrides
):
    import signal

    import requests

    from tests.live import LiveControl

    env = {**settings_overrides, "operator_key": "op", "offline_check_interval": 1}
    headers = {"X-API-Key": "op"}
    first = LiveControl(tmp_path / "data", **env).start()
    requests.post(
        first.url + "/api/v1/servers",
        headers=headers,
        timeout=10,
        json={"id": "box", "hostname": "box", "ip_address": sshd.host, "ssh_port": sshd.port},
    )
    action = requests.post(
        first.url + "/api/v1/actions",
        headers=headers,
        timeout=10,
        json={
            "server_id": "box",
            "action_type": "count_run",
            "parameters": {"name": "killed", "seconds": "20"},
        },
    ).json()

    def status(live):
        return requests.get(
            f"{live.url}/api/v1/actions/{action['id']}", headers=headers, timeout=10
        ).json()

    wait_until(lambda: status(first)["status"] == "executing", timeout=30)
    wait_until(lambda: (workdir / "count-killed").exists(), timeout=30)
    first.stop(signal.SIGKILL)

    second = LiveControl(tmp_path / "data", port=first.port, **env).start()
    try:
        done = wait_until(
            lambda: status(second)["status"] == "failed" and status(second), timeout=30
        )
        assert done["failure_reason"].startswith("interrupted")
        assert done["exit_code"] is None
        # A new action still runs, so the dispatcher is alive, and the old one never re-ran.
        probe = requests.post(
            second.url + "/api/v1/actions",
            headers=headers,
            timeout=10,
            json={
                "server_id": "box",
                "action_type": "touch_marker",
                "parameters": {"name": "after"},
            },
        )
        wait_until(lambda: (workdir / "marker-after").exists(), timeout=30)
        assert probe.status_code == 201
        assert (workdir / "count-killed").read_text() == "run\n"
        audit = requests.get(
            second.url + "/api/v1/audit?source=action", headers=headers, timeout=10
        ).json()
        assert action["id"] not in [entry["action_id"] for entry in audit["entries"]]
    finally:
        second.stop()
        subprocess.run(["pkill", "-f", "count-killed; sleep 20"], check=False)
