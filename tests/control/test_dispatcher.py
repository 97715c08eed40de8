"""The dispatcher running queued actions over a real sshd: auto-approved actions, the approval
gate of a paused server, rejection, failures, 20 racing approvals, and control killed with -9
mid-action (the action is marked interrupted and never re-run).
"""

from __future__ import annotations

import subprocess
import threading

import pytest

from control.models import Action, AuditEntry
from control.scheduler import ControlScheduler
from tests.control.remediation_helpers import final, queue
from tests.helpers import wait_until


@pytest.fixture
def settings_overrides(ssh_settings):
    """The test whitelist, and SSH to the real test sshd."""
    return ssh_settings


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
    entries = client.get("/api/v1/audit?source=action", headers=auth.viewer).json["audit"]
    assert [(e["action_id"], e["result"], e["allowed"]) for e in entries] == [
        (action["id"], "completed", True)
    ]
    assert entries[0]["argv"] == ["touch", f"{workdir}/marker-hello"]
    types = [
        e["type"]
        for e in client.get("/api/v1/events?server_id=box", headers=auth.viewer).json["events"]
    ]
    assert types[:3] == ["action_completed", "action_started", "action_created"]


def test_a_software_change_queued_before_updates_were_turned_off_never_runs(
    app, client, auth, server, workdir
):
    action = queue(client, auth, "deploy_app").json
    assert action["status"] == "approved"  # nothing is dispatching yet
    off = client.put("/api/v1/servers/box", json={"update_enabled": False}, headers=auth.operator)
    assert off.status_code == 200

    context = app.extensions["homelab"]
    scheduler = ControlScheduler(context.settings, remediation=context.remediation)
    scheduler.start()
    try:
        done = final(client, auth, action["id"])
    finally:
        scheduler.shutdown()
    assert done["status"] == "failed"
    assert "update_enabled false" in done["failure_reason"]
    assert not (workdir / "deployed").exists()


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


def test_failing_command_records_exit_code_and_stderr(client, auth, server, dispatching):
    action = queue(client, auth, "fail_loudly").json
    done = final(client, auth, action["id"])
    assert done["status"] == "failed"
    assert done["exit_code"] == 3
    assert done["stderr"].strip() == "broken"


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
        assert action["id"] not in [entry["action_id"] for entry in audit["audit"]]
    finally:
        second.stop()
        subprocess.run(["pkill", "-f", "count-killed; sleep 20"], check=False)
