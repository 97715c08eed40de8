"""Update records: a version change between heartbeats, its post-update check, its rollback.

Commit, agent version, OS version and kernel each make an update of their kind when a
heartbeat reports a value other than the stored one (a first report is no update). The
scheduler's offline tick settles the checks that are due from the server's health.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from control.errors import NotFound
from control.fleet import heartbeats, offline, updates
from control.fleet.heartbeats import IngestRules
from control.models import Event, Server, ServerUpdate, utcnow
from control.scheduler import ControlScheduler
from tests.helpers import container, heartbeat

OLD = {"commit_hash": "1a2b3c4d", "agent_version": "0.1.0"}
OLD_OS = {"distribution": "Debian GNU/Linux", "version": "12", "kernel": "6.1.0-18-amd64"}
START = utcnow().replace(microsecond=0)


def beat(at=START, server_id="pi-1", os_info=None, **fields):
    body = {**heartbeat(server_id), "timestamp": at, "os_info": os_info or OLD_OS, **fields}
    heartbeats.ingest_heartbeat(body, now=at, rules=IngestRules(update_check_after=300))


def later(seconds):
    return START + dt.timedelta(seconds=seconds)


def events_of(kind):
    rows = Event.select().where(Event.type == kind).order_by(Event.id)
    return [(e.severity, json.loads(e.details)) for e in rows]


def only_update():
    (update,) = ServerUpdate.select()
    return update


@pytest.mark.parametrize(
    ("kind", "before", "after"),
    [
        ("commit", {"commit_hash": "1a2b3c4d"}, {"commit_hash": "9f8e7d6c"}),
        ("agent", {"agent_version": "0.1.0"}, {"agent_version": "0.2.0"}),
        ("os", {"os_info": OLD_OS}, {"os_info": {**OLD_OS, "version": "13"}}),
        ("kernel", {"os_info": OLD_OS}, {"os_info": {**OLD_OS, "kernel": "6.12.1-amd64"}}),
    ],
)
def test_a_version_change_is_a_pending_update(app, kind, before, after):
    beat(**before)
    assert ServerUpdate.select().count() == 0  # the first report is no update
    beat(later(60), **after)
    update = only_update()
    old = {**OLD, "os": "12", "kernel": OLD_OS["kernel"]}
    new = {"commit": "9f8e7d6c", "agent": "0.2.0", "os": "13", "kernel": "6.12.1-amd64"}
    key = {"commit": "commit_hash", "agent": "agent_version"}.get(kind, kind)
    assert (update.server_id, update.kind) == ("pi-1", kind)
    assert (update.from_version, update.to_version) == (old[key], new[kind])
    assert update.detected_at == later(60)
    assert update.check_due_at == later(360)
    assert (update.update_status, update.health_check_passed) == ("pending", None)
    assert events_of("update_detected") == [
        (
            "info",
            {"update_id": update.id, "kind": kind, "from": old[key], "to": new[kind]},
        )
    ]


def test_omitted_or_unchanged_versions_are_no_update(app):
    beat(**OLD)
    beat(later(60))  # no commit, no agent version: the stored ones are kept
    beat(later(120), **OLD)
    beat(later(180), os_info={"architecture": "x86_64"})
    assert ServerUpdate.select().count() == 0
    server = Server.get_by_id("pi-1")
    assert (server.current_commit_hash, server.agent_version) == ("1a2b3c4d", "0.1.0")


def test_one_heartbeat_can_reveal_several_updates(app):
    beat(**OLD)
    beat(
        later(60),
        commit_hash="9f8e7d6c",
        agent_version="0.2.0",
        os_info={**OLD_OS, "kernel": "6.12"},
    )
    kinds = [u.kind for u in ServerUpdate.select().order_by(ServerUpdate.id)]
    assert kinds == ["commit", "agent", "kernel"]


def test_post_update_check_of_a_healthy_server_succeeds(app):
    beat(**OLD)
    beat(later(60), commit_hash="9f8e7d6c")
    assert updates.check_due_updates(now=later(359)) == []  # not due yet
    beat(later(300), commit_hash="9f8e7d6c")
    (settled,) = updates.check_due_updates(now=later(360))
    update = ServerUpdate.get_by_id(settled)
    assert (update.update_status, update.health_check_passed) == ("success", True)
    assert update.error_message is None and update.checked_at == later(360)
    assert events_of("update_succeeded") == [
        ("info", {"update_id": settled, "kind": "commit", "from": "1a2b3c4d", "to": "9f8e7d6c"})
    ]
    assert updates.check_due_updates(now=later(999)) == []  # settled once


def test_post_update_check_of_an_unhealthy_server_fails_with_the_reasons(app):
    beat(**OLD)
    broken = [container("web", "restarting"), container("db", "exited", exit_code=137)]
    beat(later(60), commit_hash="9f8e7d6c", containers=broken)
    (settled,) = updates.check_due_updates(now=later(400))
    update = ServerUpdate.get_by_id(settled)
    assert (update.update_status, update.health_check_passed) == ("failed", False)
    assert update.error_message == "container web restarting; container db exited (137)"
    ((severity, details),) = events_of("update_failed")
    assert severity == "error"
    assert details["health"] == "degraded" and details["error"] == update.error_message


def test_server_offline_at_its_check_fails_it(app):
    beat(**OLD)
    beat(later(60), agent_version="0.2.0")
    offline.mark_offline(180, now=later(300))
    updates.check_due_updates(now=later(400))
    update = only_update()
    assert update.update_status == "failed"
    assert update.error_message == "no heartbeat: the server is offline"


def test_update_of_a_deleted_server_fails_its_check(app):
    beat(**OLD)
    beat(later(60), agent_version="0.2.0")
    Server.delete().where(Server.id == "pi-1").execute()
    updates.check_due_updates(now=later(400))
    assert only_update().error_message == "the server was deleted"


def test_change_back_rolls_back_a_pending_update_which_is_then_never_checked(app):
    beat(**OLD)
    beat(later(60), commit_hash="9f8e7d6c")
    beat(later(120), commit_hash="1a2b3c4d")
    update = only_update()  # the change back is no new update
    assert (update.update_status, update.health_check_passed) == ("rolled_back", None)
    ((severity, details),) = events_of("update_rolled_back")
    assert severity == "warning"
    assert details == {
        "update_id": update.id,
        "kind": "commit",
        "from": "9f8e7d6c",
        "to": "1a2b3c4d",
        "was": "pending",
    }
    assert updates.check_due_updates(now=later(999)) == []
    assert only_update().update_status == "rolled_back"


def test_change_back_after_the_check_keeps_its_result(app):
    beat(**OLD)
    beat(later(60), agent_version="0.2.0")
    updates.check_due_updates(now=later(400))
    beat(later(500), agent_version="0.1.0")
    update = only_update()
    assert (update.update_status, update.health_check_passed) == ("rolled_back", True)
    # Going forward again is a new update; going back to something else is a new one too.
    beat(later(600), agent_version="0.2.0")
    beat(later(700), agent_version="0.3.0")
    rows = ServerUpdate.select().order_by(ServerUpdate.id)
    assert [(u.from_version, u.to_version, u.update_status) for u in rows] == [
        ("0.1.0", "0.2.0", "rolled_back"),
        ("0.1.0", "0.2.0", "pending"),
        ("0.2.0", "0.3.0", "pending"),
    ]
    beat(later(800), agent_version="0.2.0")  # back from 0.3.0: the newest update rolls back
    assert [u.update_status for u in ServerUpdate.select().order_by(ServerUpdate.id)] == [
        "rolled_back",
        "pending",
        "rolled_back",
    ]


def test_rollback_only_looks_at_its_own_kind_and_server(app):
    beat(**OLD)
    beat(later(1), server_id="pi-2", **OLD)
    beat(later(60), agent_version="0.2.0")
    beat(later(60), server_id="pi-2", commit_hash="9f8e7d6c")
    beat(later(120), server_id="pi-2", commit_hash="1a2b3c4d")
    statuses = {(u.server_id, u.kind): u.update_status for u in ServerUpdate.select()}
    assert statuses == {("pi-1", "agent"): "pending", ("pi-2", "commit"): "rolled_back"}


def test_list_updates_newest_first_and_not_found(app):
    beat(**OLD)
    beat(later(60), agent_version="0.2.0")
    beat(later(120), commit_hash="9f8e7d6c")
    page, total = updates.list_updates("pi-1", limit=1)
    assert total == 2 and [u.kind for u in page] == ["commit"]
    page, _ = updates.list_updates("pi-1", limit=None, offset=1)
    assert [u.kind for u in page] == ["agent"]
    with pytest.raises(NotFound):
        updates.list_updates("nope", limit=None)


def test_check_runs_in_the_leaders_offline_tick_after_its_grace(app, settings):
    now = utcnow()
    beat(now - dt.timedelta(seconds=600), **OLD)
    beat(now - dt.timedelta(seconds=500), commit_hash="9f8e7d6c")  # due 200 s ago
    leader, standby = ControlScheduler(settings), ControlScheduler(settings)
    assert leader.run_job("offline_check", lambda: leader.offline_check(now))
    # It just took over: the stored health may predate control's outage, so no check yet.
    assert only_update().update_status == "pending"
    hour = now + dt.timedelta(hours=1)
    assert not standby.run_job("offline_check", lambda: standby.offline_check(hour))
    assert only_update().update_status == "pending"
    beat(now + dt.timedelta(seconds=170), commit_hash="9f8e7d6c")
    after_grace = now + dt.timedelta(seconds=settings.offline_after + 20)
    assert leader.run_job("offline_check", lambda: leader.offline_check(after_grace))
    assert only_update().update_status == "success"
