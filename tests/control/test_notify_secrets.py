"""The attack: notification URLs are credentials, and no log line (at DEBUG, from Apprise or
urllib3 too), `/metrics`, console page, database row or error message may show their secrets."""

from __future__ import annotations

import logging

import pytest

from control.config import load_settings
from control.errors import ConfigError
from control.fleet import events
from control.models import Notification, NotificationTally
from control.notify import routing
from control.notify.redact import redacted
from tests.conftest import OPERATOR_KEY
from tests.console import ConsolePages
from tests.control.notify_helpers import Receiver, add_servers, routed, sender
from tests.helpers import free_port

# One secret per place an Apprise URL keeps one: user and password, a webhook path, an ntfy
# topic and its access token, and the path of a channel that refuses or cannot be reached.
SECRETS = (
    "hookuser",
    "Pw-7s3cr3t",
    "hook-T0KEN-aa11",
    "topic-S3CRET-bb22",
    "tk_AcC3ss-cc33",
    "fail-T0KEN-dd44",
    "gone-T0KEN-ee55",
)


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def settings_overrides(receiver):
    port = receiver.port
    urls = [
        f"json://hookuser:Pw-7s3cr3t@127.0.0.1:{port}/hook-T0KEN-aa11",
        f"ntfy://127.0.0.1:{port}/topic-S3CRET-bb22?token=tk_AcC3ss-cc33",
        f"json://127.0.0.1:{port}/fail-T0KEN-dd44",
        f"json://127.0.0.1:{free_port()}/gone-T0KEN-ee55",  # nothing listens there
    ]
    return {"notify_urls": ",".join(urls)}


@pytest.fixture
def notifying(app, settings):
    with routed(settings):
        yield


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def _send_round(receiver, settings) -> None:
    """A degraded box, sent to all four channels; the third answers 500 once."""
    add_servers("web-1")
    events.record(
        "health_changed", "server web-1 is degraded: disk / 93 % ≥ 90", server_id="web-1",
        details={"from": "healthy", "to": "degraded", "reasons": ["disk / 93 % ≥ 90"]},
        severity="warning",
    )  # fmt: skip
    receiver.fail_next(1)  # the first request: the json hook, sent first
    sender(settings).run_once()


def test_secrets_of_urls_never_reach_the_log_even_at_debug(
    app, settings, receiver, notifying, caplog
):
    caplog.set_level(logging.DEBUG)
    # Someone turning the libraries' own DEBUG on (they print URLs, payloads and headers).
    caplog.set_level(logging.DEBUG, logger="apprise")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    _send_round(receiver, settings)

    assert len(receiver.requests) == 2  # the ntfy and the second json got it; one failed
    libraries = [r for r in caplog.records if r.name.startswith(("apprise", "urllib3"))]
    # They did print the request lines, masked (urllib3: `"POST /hook-… HTTP/1.1" 200`).
    assert any('"POST /*** HTTP/1.1" 200' in r.getMessage() for r in libraries)
    assert any("failed (attempt 1" in r.getMessage() for r in caplog.records)
    assert _leaks(caplog.text) == []
    for record in caplog.records:
        assert _leaks(record.getMessage()) == [], record.name


def test_secrets_never_in_metrics_console_or_database(app, client, settings, receiver, notifying):
    _send_round(receiver, settings)

    exposition = client.get("/metrics").get_data(as_text=True)
    assert 'homelab_notifications_sent_total{scheme="ntfy"} 1.0' in exposition
    assert 'homelab_notifications_failed_total{scheme="json"} 2.0' in exposition
    assert _leaks(exposition) == []

    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    page = pages.page("/ui/events")
    first_url = settings.notify_urls.split(",")[0]
    assert "Notification channels" in page and redacted(first_url) in page
    assert "Internal server error" in page  # the last failure, as Apprise put it
    assert _leaks(page) == []

    stored = [str(row.__data__) for row in Notification.select()]
    stored += [str(row.__data__) for row in NotificationTally.select()]
    assert any("error=500" in text for text in stored)
    assert _leaks("\n".join(stored)) == []


def test_a_url_apprise_cannot_use_is_refused_without_echoing_it():
    settings = load_settings(environ={}, notify_urls="nosuchscheme://hookuser:Pw-7s3cr3t@x/y")
    with pytest.raises(ConfigError) as refused:
        routing.build_routes(settings)
    assert "nosuchscheme://" in str(refused.value)
    assert _leaks(str(refused.value)) == []
