"""One channel's trouble stays its own: a message the service refuses does not hold the ones
behind it, a channel that is down waits alone with backoff and then gets its messages in order,
a channel that never answers does not hold the others, and rows of a channel removed from the
configuration are dropped at once, whenever they were due. Sent for real to local receivers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading

import pytest

from control.fleet import health
from control.models import Notification, NotificationStatus, Server, ServerHealth, utcnow
from control.notify.channels import channel_id
from control.notify.redact import redacted
from tests.control.notify_helpers import Receiver, SlowEndpoint, add_servers, routed, sender
from tests.helpers import wait_until

SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def other():
    """A second, independent channel's receiver."""
    with Receiver() as running:
        yield running


@pytest.fixture
def settings_overrides(receiver):
    return {"notify_urls": receiver.json_url("hook"), "public_url": "https://homelab.example"}


def fail(*server_ids: str) -> None:
    """Mark servers failed, as a heartbeat's verdict would (one incident each)."""
    for server_id in server_ids:
        server = Server.get_by_id(server_id)
        health.store_verdict(server, health.Verdict(ServerHealth.FAILED, ("disk / 99 % ≥ 98",)))


def rows_of(url: str) -> list[Notification]:
    """The outbox rows of one channel, oldest first."""
    return list(
        Notification.select()
        .where(Notification.channel == channel_id(url))
        .order_by(Notification.id)
    )


def test_a_message_the_service_refuses_does_not_hold_the_ones_behind_it(
    app, settings, receiver, caplog
):
    caplog.set_level(logging.INFO, logger="control.notify")
    with routed(settings):
        add_servers("web-1", "db-1")
        fail("web-1", "db-1")
        receiver.fail_next(1, status=413)  # "too large": sending it again cannot help
        send = sender(settings)
        start = utcnow()
        assert send.run_once(start) == {"rejected": 1, "sent": 1}
        assert receiver.titles() == ["homelabcmd error: db-1"]
        # Given up at once: never tried again, and nothing else waits for it.
        assert send.run_once(start + dt.timedelta(hours=2)) == {}

    refused, delivered = rows_of(settings.notify_urls)
    assert (refused.status, refused.attempts) == (NotificationStatus.FAILED, 1)
    assert "413" in refused.last_error
    assert delivered.status == NotificationStatus.SENT
    assert receiver.answered == [413, 200]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "refused" in errors[0]
    assert "/hook" not in errors[0]


def test_a_down_channel_waits_alone_with_backoff_then_gets_its_messages_in_order(
    app, settings, receiver, other
):
    both = dataclasses.replace(
        settings, notify_urls=f"{receiver.json_url('down')},{other.json_url('up')}"
    )
    with routed(both):
        add_servers("web-1", "db-1", "app-1")
        fail("web-1", "db-1")
        receiver.fail_next(1000)  # down until told otherwise
        send = sender(both)
        start = utcnow()
        assert send.run_once(start) == {"failed": 1, "sent": 2}
        assert other.titles() == ["homelabcmd error: web-1", "homelabcmd error: db-1"]
        assert receiver.answered == [500]  # one try: the rest of its queue waits with it

        fail("app-1")  # a new message while the down channel rests
        assert send.run_once(start + 10 * SECOND) == {"sent": 1}
        assert other.titles()[-1] == "homelabcmd error: app-1"
        assert receiver.answered == [500]  # not tried before its retry is due

        receiver.fail_next(0)  # it is back
        assert send.run_once(start + 31 * SECOND) == {"sent": 3}

    assert receiver.titles() == [
        "homelabcmd error: web-1",
        "homelabcmd error: db-1",
        "homelabcmd error: app-1",
    ]
    assert [row.attempts for row in rows_of(receiver.json_url("down"))] == [1, 0, 0]


def test_a_channel_that_never_answers_does_not_hold_the_others(app, settings, receiver):
    with SlowEndpoint() as slow:
        both = dataclasses.replace(
            settings, notify_urls=f"{slow.json_url()},{receiver.json_url('hook')}"
        )
        with routed(both):
            add_servers("web-1")
            fail("web-1")
        send = sender(both)
        results: list[dict[str, int]] = []
        running = threading.Thread(target=lambda: results.append(send.run_once()))
        running.start()
        try:
            # Delivered while the slow channel still holds its request unanswered.
            wait_until(lambda: receiver.requests)
            assert len(slow.connections) == 1
        finally:
            slow.release()
            running.join()

        [stuck] = rows_of(slow.json_url())
        wait_until(lambda: Notification.get_by_id(stuck.id).attempts == 1)
        stuck = Notification.get_by_id(stuck.id)
        assert stuck.status == NotificationStatus.PENDING  # retried later, with backoff
        assert "/hook" not in stuck.last_error
        [delivered] = rows_of(receiver.json_url("hook"))
        assert delivered.status == NotificationStatus.SENT
        assert receiver.titles() == ["homelabcmd error: web-1"]


def test_rows_of_a_removed_channel_are_dropped_at_once_even_while_waiting_to_retry(
    app, client, settings, receiver, other, caplog
):
    removed = receiver.ntfy_url("secret-topic")
    before = dataclasses.replace(settings, notify_urls=f"{removed},{other.json_url('kept')}")
    with routed(before):
        add_servers("web-1")
        fail("web-1")
        receiver.fail_next(1)
        start = utcnow()
        assert sender(before).run_once(start) == {"failed": 1, "sent": 1}
    assert 'homelab_notifications_queued{scheme="ntfy"} 1.0' in client.get("/metrics").get_data(
        as_text=True
    )

    caplog.set_level(logging.WARNING, logger="control.notify")
    caplog.clear()
    after = dataclasses.replace(settings, notify_urls=other.json_url("kept"))
    assert sender(after).run_once(start + SECOND) == {"dropped": 1}  # its retry was 30 s away

    [row] = rows_of(removed)
    assert row.status == NotificationStatus.DROPPED
    exposition = client.get("/metrics").get_data(as_text=True)
    assert 'homelab_notifications_queued{scheme="ntfy"}' not in exposition
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert redacted(removed) in warning and "no longer configured" in warning
    assert "secret-topic" not in warning and str(receiver.port) not in warning
    assert len(receiver.answered) == 1


def test_with_no_channel_left_rows_held_for_the_cooldown_are_dropped(app, settings, receiver):
    with routed(settings):
        add_servers("web-1")
        fail("web-1")
        start = utcnow()
        send = sender(settings)
        assert send.run_once(start) == {"sent": 1}
        health.store_verdict(Server.get_by_id("web-1"), health.Verdict(ServerHealth.HEALTHY, ()))
        assert send.run_once(start + SECOND) == {}  # the recovery waits for the cooldown

    nothing = dataclasses.replace(settings, notify_urls="")
    assert sender(nothing).run_once(start + 2 * SECOND) == {"dropped": 1}
    assert [row.status for row in rows_of(settings.notify_urls)] == [
        NotificationStatus.SENT,
        NotificationStatus.DROPPED,
    ]
    assert len(receiver.requests) == 1
