"""`homelab-control notify test`: a test message to every configured URL, each result printed
with the URL redacted, exit 1 when one failed and 2 when none is configured."""

from __future__ import annotations

import os
import subprocess
import sys

from control.cli import listen_url
from control.notify.redact import redacted
from tests.control.notify_helpers import Receiver
from tests.helpers import free_port

SECRETS = ("hook-T0KEN-aa11", "topic-S3CRET-bb22", "gone-T0KEN-ee55")


def notify_test(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    environment["HOMELAB_DATA_DIR"] = str(tmp_path)
    environment.update({f"HOMELAB_{k.upper()}": v for k, v in env.items()})
    return subprocess.run(
        [sys.executable, "-m", "control.cli", "--log-level", "DEBUG", "notify", "test"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_notify_test_sends_to_every_url_and_prints_each_result(tmp_path):
    gone = free_port()
    with Receiver() as receiver:
        urls = [
            receiver.json_url("hook-T0KEN-aa11"),
            receiver.ntfy_url("topic-S3CRET-bb22"),
            f"json://127.0.0.1:{gone}/gone-T0KEN-ee55",
        ]
        result = notify_test(
            tmp_path, notify_urls=",".join(urls), public_url="https://homelab.example"
        )

    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"ok      {redacted(urls[0])}",
        f"ok      {redacted(urls[1])}",
        f"FAILED  {redacted(urls[2])}: A Connection error occurred sending JSON notification "
        "to ***.",  # the host part of a URL is masked too (an ntfy topic may be its host)
    ]
    assert receiver.titles() == ["homelabcmd test notification"] * 2
    assert receiver.requests[1].body["topic"] == "topic-S3CRET-bb22"
    assert "https://homelab.example/ui/events" in receiver.requests[0].message
    output = result.stdout + result.stderr
    assert [secret for secret in SECRETS if secret in output] == []


def test_notify_test_exits_0_when_every_channel_took_it(tmp_path):
    with Receiver() as receiver:
        result = notify_test(tmp_path, notify_urls=receiver.json_url())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok      json://")


def test_notify_test_without_urls_says_what_to_set(tmp_path):
    result = notify_test(tmp_path)
    assert result.returncode == 2
    assert "no notification URLs configured (HOMELAB_NOTIFY_URLS" in result.stderr


def test_the_default_public_url_is_where_serve_listens():
    assert listen_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert listen_url("::1", 8080) == "http://[::1]:8080"
    assert listen_url("0.0.0.0", 8000).endswith(":8000")  # this host's name, not 0.0.0.0
    assert "0.0.0.0" not in listen_url("0.0.0.0", 8000)
