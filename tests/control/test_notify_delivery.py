"""Notifications sent for real to a local HTTP receiver: once per incident, quiet during the
cooldown, one summary for a fleet-wide outage, approvals with their link, nothing lost over a
restart, and a failing channel retried with backoff until it recovers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import pytest

from control.db import db
from control.fleet import events, health, offline
from control.models import Notification, NotificationStatus, Server, ServerHealth, utcnow
from control.notify import outbox
from control.notify.delivery import MAX_ATTEMPTS
from control.notify.redact import redacted
from control.notify.sender import CLAIM_LEASE
from tests.conftest import OPERATOR_KEY
from tests.console import ConsolePages
from tests.control.notify_helpers import Receiver, add_servers, routed, sender, statuses
from tests.helpers import send_heartbeat, wait_until

PUBLIC = "https://homelab.example"
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def settings_overrides(receiver):
    return {"notify_urls": receiver.json_url("hook"), "public_url": PUBLIC}


@pytest.fixture
def notifying(app, settings):
    with routed(settings):
        yield


def judge(server_id: str, state: ServerHealth, *reasons: str) -> None:
    """Store a new health for a server, as a heartbeat or the offline sweep would."""
    health.store_verdict(Server.get_by_id(server_id), health.Verdict(state, reasons))


def beat(server_id: str, **metrics) -> dict:
    now = utcnow().isoformat(timespec="seconds") + "Z"
    return {"server_id": server_id, "hostname": server_id, "timestamp": now, "metrics": metrics}


def test_a_degraded_box_is_sent_once_with_a_link_to_its_page(
    client, auth, settings, receiver, notifying
):
    assert send_heartbeat(client, auth, beat("web-1", disk_percent=40.0)).status_code == 200
    assert send_heartbeat(client, auth, beat("web-1", disk_percent=93.0)).status_code == 200
    # The request only queued it: nothing is sent on a request's path.
    assert receiver.requests == []
    assert statuses() == [("server:web-1", "pending")]

    sent = sender(settings).run_once()
    assert sent == {"sent": 1}
    [message] = receiver.requests
    assert message.path == "/hook"
    assert message.title == "homelabcmd warning: web-1"
    assert "server web-1 is degraded: disk / 93 % ≥ 90" in message.message
    assert f"{PUBLIC}/ui/servers/web-1" in message.message
    assert message.body["type"] == "warning"
    assert sender(settings).run_once() == {}
    assert len(receiver.requests) == 1

    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    assert "web-1" in pages.page(message.message.splitlines()[-1].removeprefix(PUBLIC))


def test_events_below_the_minimum_severity_are_not_queued(app, settings, notifying):
    add_servers("web-1", health="unknown")
    judge("web-1", ServerHealth.HEALTHY)  # info: below warning
    events.record("server_paused", "server web-1 paused", server_id="web-1")
    assert statuses() == []


def test_one_message_per_incident_however_many_events_it_makes(app, settings, receiver):
    everything = dataclasses.replace(settings, notify_min_severity="info")
    with routed(everything):
        add_servers("web-1", "db-1", last_seen=utcnow() - dt.timedelta(hours=1))
        # The sweep records status_changed (info) and health_changed (error) for each box.
        assert offline.mark_offline(180) == ["db-1", "web-1"]
        judge("db-1", ServerHealth.FAILED, "service postgresql failed")  # and db-1 fails too
        assert sender(everything).run_once() == {"sent": 2}

    by_server = {request.title: request.message for request in receiver.requests}
    assert set(by_server) == {"homelabcmd error: web-1", "homelabcmd error: db-1"}
    assert by_server["homelabcmd error: web-1"].startswith("server web-1 is offline")
    assert (
        "1 earlier change since the last message: offline" in by_server["homelabcmd error: web-1"]
    )
    assert by_server["homelabcmd error: db-1"].startswith(
        "server db-1 is failed: service postgresql failed"
    )
    assert (
        "2 earlier changes since the last message: offline, offline"
        in by_server["homelabcmd error: db-1"]
    )


def test_a_flapping_box_sends_once_per_cooldown_not_ten_times(app, settings, receiver, notifying):
    add_servers("web-1")
    send = sender(settings)
    judge("web-1", ServerHealth.DEGRADED, "temperature 76 °C ≥ 75")
    start = utcnow()
    assert send.run_once(start) == {"sent": 1}
    for flip in range(1, 10):  # nine more changes within the ten-minute cooldown
        judge("web-1", ServerHealth.HEALTHY if flip % 2 else ServerHealth.DEGRADED)
        send.run_once(start + flip * MINUTE)
    assert len(receiver.requests) == 1
    send.run_once(start + 10 * MINUTE + dt.timedelta(seconds=1))  # the cooldown is over

    assert len(receiver.requests) == 2
    last = receiver.requests[-1]
    assert last.title == "homelabcmd: web-1 recovered"
    assert "8 earlier changes since the last message" in last.message
    assert last.body["type"] == "success"


def test_a_recovery_goes_only_where_the_problem_went(app, settings, receiver):
    errors_only = dataclasses.replace(settings, notify_min_severity="error", notify_cooldown=0)
    with routed(errors_only):
        add_servers("web-1", "db-1")
        judge("web-1", ServerHealth.DEGRADED)  # a warning: not sent to this channel
        judge("web-1", ServerHealth.HEALTHY)
        judge("db-1", ServerHealth.FAILED, "service postgresql failed")
        send = sender(errors_only)
        assert send.run_once() == {"sent": 1}
        judge("db-1", ServerHealth.HEALTHY)
        assert send.run_once() == {"sent": 1}

    assert receiver.titles() == ["homelabcmd error: db-1", "homelabcmd: db-1 recovered"]
    assert ("server:web-1", NotificationStatus.SUPPRESSED) in statuses()


def test_a_fleet_wide_outage_sends_one_summary(app, settings, receiver, notifying):
    boxes = [f"node-{number:02d}" for number in range(12)]
    add_servers(*boxes, last_seen=utcnow() - dt.timedelta(hours=1))
    start = utcnow()
    send = sender(settings)
    assert len(offline.mark_offline(180, now=start)) == 12
    assert send.run_once(start) == {"sent": 1}

    [summary] = receiver.requests
    assert summary.title == "homelabcmd: 12 servers (12 offline)"
    assert summary.message.count("server node-") == 12
    assert summary.message.endswith(f"{PUBLIC}/ui/")
    assert summary.body["type"] == "failure"

    # They come back in twos and threes within the cooldown: held, then one summary.
    for minute, group in ((2, boxes[:3]), (3, boxes[3:9]), (4, boxes[9:])):
        for box in group:
            judge(box, ServerHealth.HEALTHY)
        send.run_once(start + minute * MINUTE)
    assert len(receiver.requests) == 1
    send.run_once(start + 10 * MINUTE)
    assert receiver.titles()[1] == "homelabcmd: 12 servers (12 healthy)"
    assert len(receiver.requests) == 2


def test_an_action_waiting_for_approval_is_sent_with_the_approvals_link(
    client, auth, settings, receiver
):
    errors_only = dataclasses.replace(settings, notify_min_severity="error")
    with routed(errors_only):
        body = {"id": "web-1", "hostname": "web-1"}
        assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
        # Auto-approved: nothing to tell. Paused: it waits, and the operator hears of it.
        action = {"server_id": "web-1", "action_type": "clear_logs"}
        assert client.post("/api/v1/actions", json=action, headers=auth.operator).json[
            "status"
        ] in ("approved", "executing", "completed", "failed")
        client.put("/api/v1/servers/web-1/pause", headers=auth.operator)
        action = {"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}
        created = client.post("/api/v1/actions", json=action, headers=auth.operator)
        assert created.json["status"] == "pending"
        sender(errors_only).run_once()

    [message] = [r for r in receiver.requests if "approval" in r.title]
    assert message.title == "homelabcmd: approval needed on web-1"
    assert f"action {created.json['id']} restart_service on web-1 queued" in message.message
    link = message.message.splitlines()[-1]
    assert link == f"{PUBLIC}/ui/approvals"
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    assert "restart_service" in pages.page(link.removeprefix(PUBLIC))


def test_queued_messages_survive_a_restart(settings, receiver):
    from control.app import create_app

    create_app(settings)
    with routed(settings):
        add_servers("web-1")
        judge("web-1", ServerHealth.FAILED, "disk / 99 % ≥ 98")
    db.close()  # control stops before its scheduler sent anything

    create_app(settings)  # and starts again
    assert sender(settings, holder="after-restart").run_once() == {"sent": 1}
    assert receiver.titles() == ["homelabcmd error: web-1"]
    db.close()


def test_a_sender_that_died_mid_send_leaves_its_rows_to_the_next_after_the_lease(
    app, settings, receiver, notifying
):
    add_servers("web-1")
    judge("web-1", ServerHealth.FAILED, "disk / 99 % ≥ 98")
    now = utcnow()
    assert len(outbox.claim("dead-sender", now, CLAIM_LEASE, 100)) == 1  # then it died

    survivor = sender(settings, holder="survivor")
    assert survivor.run_once(now) == {}
    assert survivor.run_once(now + CLAIM_LEASE + dt.timedelta(seconds=1)) == {"sent": 1}
    assert len(receiver.requests) == 1


def test_exactly_one_sender_claims_each_message(app, settings, notifying):
    add_servers("web-1", "db-1")
    judge("web-1", ServerHealth.FAILED)
    judge("db-1", ServerHealth.DEGRADED)
    now = utcnow()
    first = outbox.claim("one", now, CLAIM_LEASE, 100)
    second = outbox.claim("two", now, CLAIM_LEASE, 100)
    assert len(first) == 2 and second == []


def test_a_failing_channel_is_retried_with_backoff_until_it_recovers(
    app, client, settings, receiver, notifying, caplog
):
    caplog.set_level(logging.INFO, logger="control.notify")
    add_servers("web-1")
    judge("web-1", ServerHealth.FAILED, "service nginx failed")
    receiver.fail_next(2)
    start = utcnow()
    send = sender(settings)

    assert send.run_once(start) == {"failed": 1}
    assert send.run_once(start + dt.timedelta(seconds=29)) == {}  # waits 30 s
    assert send.run_once(start + dt.timedelta(seconds=31)) == {"failed": 1}
    again = start + dt.timedelta(seconds=31)
    assert send.run_once(again + dt.timedelta(seconds=59)) == {}  # then 60 s
    assert send.run_once(again + dt.timedelta(seconds=61)) == {"sent": 1}

    assert receiver.answered == [500, 500, 200]
    assert receiver.titles() == ["homelabcmd error: web-1"]
    row = Notification.get()
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 2)
    logged = [r.getMessage() for r in caplog.records if r.name == "control.notify.delivery"]
    channel = redacted(settings.notify_urls.split(",")[0])
    assert [line.split(" (")[0] for line in logged] == [
        f"notification to {channel} failed",
        f"notification to {channel} failed",
        f"notification sent to {channel}: homelabcmd error: web-1",
    ]
    exposition = client.get("/metrics").get_data(as_text=True)
    assert 'homelab_notifications_sent_total{scheme="json"} 1.0' in exposition
    assert 'homelab_notifications_failed_total{scheme="json"} 2.0' in exposition


def test_a_channel_that_never_recovers_is_given_up_after_the_last_retry(
    app, client, settings, receiver, notifying
):
    add_servers("web-1")
    judge("web-1", ServerHealth.FAILED)
    receiver.fail_next(1000)
    send = sender(settings)
    start = utcnow()
    for hour in range(MAX_ATTEMPTS + 3):
        send.run_once(start + hour * dt.timedelta(hours=1, seconds=1))
    assert len(receiver.answered) == MAX_ATTEMPTS
    assert Notification.get().status == NotificationStatus.FAILED
    exposition = client.get("/metrics").get_data(as_text=True)
    assert 'homelab_notifications_queued{scheme="json"}' not in exposition


def test_rows_of_a_channel_no_longer_configured_are_dropped(app, settings, receiver):
    with routed(settings):
        add_servers("web-1")
        judge("web-1", ServerHealth.FAILED)
    other = dataclasses.replace(settings, notify_urls=receiver.json_url("another-hook"))
    assert sender(other).run_once() == {"dropped": 1}
    assert receiver.requests == []
    assert Notification.get().status == NotificationStatus.DROPPED


def test_pending_rows_show_as_queued_in_metrics(app, client, settings, notifying):
    add_servers("web-1", "db-1")
    judge("web-1", ServerHealth.FAILED)
    judge("db-1", ServerHealth.FAILED)
    exposition = client.get("/metrics").get_data(as_text=True)
    assert 'homelab_notifications_queued{scheme="json"} 2.0' in exposition


def test_pruning_keeps_pending_rows_and_each_incidents_newest_message(
    app, settings, receiver, notifying
):
    add_servers("web-1")
    send = sender(settings)
    for hours, state in enumerate((ServerHealth.FAILED, ServerHealth.HEALTHY, ServerHealth.FAILED)):
        judge("web-1", state)
        assert send.run_once(utcnow() + dt.timedelta(hours=hours)) == {"sent": 1}
    judge("web-1", ServerHealth.DEGRADED)  # still pending
    assert [status for _, status in statuses()] == ["sent", "sent", "sent", "pending"]

    assert outbox.prune(utcnow() + dt.timedelta(days=1)) == 2
    assert [status for _, status in statuses()] == ["sent", "pending"]


def test_an_ntfy_channel_gets_the_message_on_its_topic(app, settings, receiver):
    ntfy = dataclasses.replace(settings, notify_urls=receiver.ntfy_url("homelab-alerts"))
    with routed(ntfy):
        add_servers("web-1")
        judge("web-1", ServerHealth.FAILED, "service nginx failed")
        assert sender(ntfy).run_once() == {"sent": 1}
    [message] = receiver.requests
    assert message.body["topic"] == "homelab-alerts"
    assert message.title == "homelabcmd error: web-1"
    assert message.message.startswith("server web-1 is failed: service nginx failed")


def test_the_leader_scheduler_sends_the_outbox(app, settings, receiver, notifying):
    from control.scheduler import ControlScheduler

    context = app.extensions["homelab"]
    quiet = ControlScheduler(
        dataclasses.replace(settings, notify_urls=""), remediation=context.remediation
    )
    assert "notify" not in quiet.jobs()  # no channel: no job

    scheduler = ControlScheduler(settings, remediation=context.remediation)
    assert scheduler.jobs()["notify"] == (scheduler.notifications.run_once, 5)
    add_servers("web-1")
    judge("web-1", ServerHealth.FAILED, "service nginx failed")
    scheduler.start()
    try:
        wait_until(lambda: receiver.requests)
    finally:
        scheduler.shutdown()
    assert receiver.titles() == ["homelabcmd error: web-1"]
