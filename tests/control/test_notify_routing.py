"""Which events become notifications, for which channels: classification, the settings and
the TOML's per-route rules (types, severities, server tags), and how URLs are shown."""

from __future__ import annotations

import dataclasses

import pytest

from control.config import NotifyRoute, load_settings
from control.errors import ConfigError
from control.fleet import events
from control.fleet.events import EventType
from control.models import Notification, NotificationKind
from control.notify import messages, routing
from control.notify.channels import channel_id, split_urls
from control.notify.delivery import retry_delay
from control.notify.redact import redacted, scheme_of, secrets_of
from tests.control.notify_helpers import add_servers, routed

HOOK = "json://127.0.0.1:9/hook"
PAGER = "ntfy://127.0.0.1:9/pager"


def test_the_types_classified_by_value_are_event_types():
    for name in (routing.HEALTH_CHANGED, routing.STATUS_CHANGED, routing.ACTION_CREATED):
        assert name in set(EventType)


@pytest.mark.parametrize(
    ("event", "kind", "key", "path"),
    [
        (
            {"type": "health_changed", "details": {"from": "healthy", "to": "failed"}},
            NotificationKind.ALERT, "server:web-1", "/ui/servers/web-1",
        ),
        (
            {"type": "health_changed", "details": {"from": "offline", "to": "healthy"}},
            NotificationKind.RECOVERY, "server:web-1", "/ui/servers/web-1",
        ),
        (
            {"type": "health_changed", "details": {"from": "unknown", "to": "healthy"}},
            NotificationKind.ALERT, "server:web-1", "/ui/servers/web-1",
        ),
        (
            {"type": "status_changed", "details": {"status": "offline"}},
            NotificationKind.ALERT, "server:web-1", "/ui/servers/web-1",
        ),
        (
            {"type": "action_created", "details": {"action_id": 7, "status": "pending"}},
            NotificationKind.APPROVAL, "approval:7", "/ui/approvals",
        ),
        (
            {"type": "action_failed", "details": {"action_id": 7}},
            NotificationKind.ALERT, "action_failed:web-1", "/ui/servers/web-1",
        ),
    ],
)  # fmt: skip
def test_classify(event, kind, key, path):
    event = {"severity": "error", "server_id": "web-1", "message": "m", **event}
    candidate = routing.classify(event)
    assert (candidate.kind, candidate.key, candidate.path) == (kind, key, path)


def test_an_event_without_a_server_links_to_the_event_log():
    event = {"type": "alert_firing", "severity": "warning", "message": "m", "server_id": None}
    assert routing.classify(event).path == "/ui/events"
    assert routing.classify(event).key == "alert_firing:-"


def test_routes_come_from_the_toml_file(tmp_path):
    config = tmp_path / "control.toml"
    config.write_text(
        f"""
notify_urls = ["{HOOK}"]
notify_min_severity = "error"

[[notify_routes]]
urls = ["{PAGER}"]
types = ["health_changed", "approval"]
tags = ["prod"]

[[notify_routes]]
urls = ["{HOOK}"]
min_severity = "warning"
types = ["update_failed"]
"""
    )
    settings = load_settings(environ={"HOMELAB_CONFIG": str(config)})
    assert settings.notify_urls == HOOK
    assert settings.notify_routes == (
        NotifyRoute(urls=(PAGER,), types=("health_changed", "approval"), tags=("prod",)),
        NotifyRoute(urls=(HOOK,), min_severity="warning", types=("update_failed",)),
    )
    routes = routing.build_routes(settings)
    assert [route.min_severity for route in routes] == ["error", "error", "warning"]
    assert routes[0].channels[0] is routes[2].channels[0]  # one channel, in two routes
    assert routes[1].describe() == (
        "health_changed at error or worse; approvals; recoveries; only servers tagged prod"
    )


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({"urls": []}, "needs at least one URL"),
        ({"urls": [HOOK], "min_severity": "fatal"}, "min_severity must be one of"),
        ({"urls": [HOOK], "types": "health_changed"}, "types must be a list of strings"),
        ({"urls": [HOOK], "channel": "x"}, "unknown key(s) channel"),
    ],
)
def test_a_malformed_route_is_refused_at_start(table, complaint):
    with pytest.raises(ConfigError, match="notify_routes #1") as refused:
        load_settings(environ={}, notify_routes=[table])
    assert complaint in str(refused.value)


def test_an_unknown_type_in_a_route_is_refused_at_start():
    settings = load_settings(environ={}, notify_routes=[{"urls": [HOOK], "types": ["oops"]}])
    with pytest.raises(ConfigError, match=r"notify_routes #1: unknown type\(s\) oops"):
        routing.build_routes(settings)


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"HOMELAB_NOTIFY_MIN_SEVERITY": "loud"}, "HOMELAB_NOTIFY_MIN_SEVERITY"),
        ({"HOMELAB_NOTIFY_COOLDOWN": "-1"}, "HOMELAB_NOTIFY_COOLDOWN"),
        ({"HOMELAB_NOTIFY_COOLDOWN": "soon"}, "HOMELAB_NOTIFY_COOLDOWN"),
        ({"HOMELAB_PUBLIC_URL": "homelab.lan:8000"}, "HOMELAB_PUBLIC_URL"),
        ({"HOMELAB_NOTIFY_ROUTES": "[]"}, "HOMELAB_CONFIG file"),
    ],
)
def test_bad_notification_settings_are_refused(environ, complaint):
    with pytest.raises(ConfigError, match=complaint):
        load_settings(environ=environ)


def test_defaults_and_the_public_url():
    settings = load_settings(environ={})
    assert (settings.notify_min_severity, settings.notify_cooldown) == ("warning", 600)
    assert settings.resolved_public_url == "http://127.0.0.1:8000"
    public = load_settings(environ={"HOMELAB_PUBLIC_URL": "https://homelab.example/ctl/"})
    assert public.resolved_public_url == "https://homelab.example/ctl"


def test_urls_split_on_commas_and_spaces_but_not_inside_a_url():
    text = f" {HOOK}, mailtos://u:p@mail.example?to=a@x.example,b@x.example  {PAGER} "
    assert split_urls(text) == [
        HOOK,
        "mailtos://u:p@mail.example?to=a@x.example,b@x.example",
        PAGER,
    ]


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("json://me:Pw-s3cret@127.0.0.1:8080/hook-T0KEN", ["Pw-s3cret", "hook-T0KEN", "me:"]),
        ("ntfy://ntfy.example/topic-S3CRET?token=tk_T0KEN", ["topic-S3CRET", "tk_T0KEN"]),
        ("discord://112233445566/WeBhOoK-T0KEN-abcdef", ["112233445566", "WeBhOoK-T0KEN"]),
        ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-4242", ["AAHdqTcvCH1vGWJx"]),
        ("gotify://gotify.example/AppT0ken1234", ["AppT0ken1234"]),
    ],
)
def test_a_url_is_shown_with_its_secrets_masked(url, secrets):
    shown = redacted(url)
    assert shown.startswith(f"{scheme_of(url)}://***")
    for secret in secrets:
        assert secret not in shown


def test_a_public_ntfy_topic_is_a_secret_too():
    """On a public ntfy server the topic is the host part, and whoever knows it reads and
    posts the fleet's alerts; Apprise's own masked form shows it."""
    url = "ntfys://mytopicsecret"
    assert "mytopicsecret" not in redacted(url)
    assert "mytopicsecret" in secrets_of(url)


def test_two_channels_of_one_scheme_are_told_apart():
    assert redacted("ntfy://a-topic-one") != redacted("ntfy://a-topic-two")


def test_a_channel_is_stored_as_a_hash_of_its_url():
    assert channel_id(HOOK) == channel_id(HOOK) != channel_id(PAGER)
    assert len(channel_id(HOOK)) == 16 and HOOK not in channel_id(HOOK)


def test_retries_back_off_to_an_hour():
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 7, 8, 11)] == [
        30, 60, 120, 1920, 3600, 3600,
    ]  # fmt: skip


def test_each_route_gets_what_it_asks_for_and_a_channel_gets_one_row(app, settings):
    routes = (
        NotifyRoute(urls=(PAGER,), min_severity="error", types=("health_changed",)),
        NotifyRoute(urls=(PAGER,), tags=("prod",)),
        NotifyRoute(urls=(HOOK,), types=("approval",)),
    )
    configured = dataclasses.replace(settings, notify_urls="", notify_routes=routes)
    with routed(configured):
        add_servers("db-1", tags='["prod"]')
        add_servers("web-1")
        record = events.record
        record("health_changed", "web-1 degraded", server_id="web-1", severity="warning",
               details={"from": "healthy", "to": "degraded"})  # fmt: skip
        record("health_changed", "web-1 failed", server_id="web-1", severity="error",
               details={"from": "degraded", "to": "failed"})  # fmt: skip
        record("update_failed", "db-1 update failed", server_id="db-1")  # error, tagged prod
        record("update_failed", "web-1 update failed", server_id="web-1")  # not tagged
        record("health_changed", "db-1 failed", server_id="db-1", severity="error",
               details={"from": "healthy", "to": "failed"})  # fmt: skip
        record("action_created", "action 3 waits", server_id="web-1",
               details={"action_id": 3, "status": "pending"})  # fmt: skip

    rows = [(row.message, row.channel) for row in Notification.select().order_by(Notification.id)]
    assert rows == [
        ("web-1 failed", channel_id(PAGER)),
        ("db-1 update failed", channel_id(PAGER)),
        ("db-1 failed", channel_id(PAGER)),  # wanted by two routes, sent once
        ("action 3 waits", channel_id(HOOK)),
    ]


def _row(message: str, state: str = "failed", **fields) -> Notification:
    values = {"server_id": "box", "event_type": "health_changed", "severity": "error",
              "kind": NotificationKind.ALERT, "state": state, "message": message,
              "link": "https://homelab.example/ui/servers/box"}  # fmt: skip
    return Notification(**{**values, **fields})


def test_a_huge_incident_fits_the_smallest_chat_limit_and_keeps_its_link():
    """A refused message is retried for hours: one box's 500 reasons must not be one."""
    rows = [_row("x", state=f"s{index}") for index in range(400)]
    rows.append(
        _row("server box is failed: " + "; ".join(f"container c{i} dead" for i in range(500)))
    )
    message = messages.incident(rows)
    assert len(message.body) <= messages.MAX_BODY
    assert message.body.endswith("\nhttps://homelab.example/ui/servers/box")
    assert "400 earlier changes since the last message: s0, s1" in message.body
    assert "(390 more)" in message.body


def test_a_summary_of_long_lines_fits_too():
    incidents = [[_row("y" * 5000, server_id=f"b{index}")] for index in range(40)]
    message = messages.summary(incidents, "https://homelab.example/ui/")
    assert len(message.body) <= messages.MAX_BODY
    assert message.body.endswith("\nhttps://homelab.example/ui/")
