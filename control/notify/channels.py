"""Channels: the operator's Apprise URLs, known by a hash and shown redacted; and the one
place a message is handed to Apprise.

Apprise (one kept library for ntfy, Discord, Slack, Telegram, email, Gotify, JSON webhooks and
~100 more) does the sending; this module only names channels safely and turns Apprise's
True/False and its warnings into an outcome with a reason that holds no secret, and whether
the service refused that message itself (sending it again cannot help) or the channel failed
(down, slow, overloaded, or refusing its credentials: worth retrying later).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from control.errors import ConfigError
from control.notify.redact import redacted, scheme_of, scrubber

if TYPE_CHECKING:
    import apprise

log = logging.getLogger(__name__)

# A new URL starts wherever a comma or a space is followed by `scheme://`, so a comma inside
# one URL (Apprise's `?to=a,b`) does not split it.
_BETWEEN_URLS = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")
# Apprise's notify types by what a message reports.
NOTIFY_TYPES = {"error": "failure", "warning": "warning", "info": "info", "recovery": "success"}
# Apprise's plugins end a failed request's warning with `error=<HTTP status>.`
_STATUS = re.compile(r"\berror=(\d{3})\b")
# Statuses by which a service refuses the message itself (malformed, too large, unprocessable):
# it would refuse it again. 401/403/404 refuse the channel (credentials, webhook), 408/429/5xx
# are the service's trouble: those are retried, the channel waiting as a whole.
REFUSED_STATUSES = frozenset({400, 413, 414, 415, 422})


@dataclass(frozen=True)
class Channel:
    """One Apprise URL. `id` (a hash) is what the database keeps; `url` is never shown."""

    id: str
    scheme: str
    shown: str  # redacted, for logs and the console
    url: str = field(repr=False)


@dataclass(frozen=True)
class Outcome:
    """What came of one send: delivered, or why not (redacted)."""

    ok: bool
    error: str | None = None
    refused: bool = False  # the service refused this message: never worth sending again


class _ThreadWarnings(logging.Handler):
    """Apprise's warnings logged by the calling thread only: channels send on threads of their
    own, and one channel's reason must not be read as another's (apprise.LogCapture would)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())  # already masked by the scrubber


def split_urls(text: str) -> list[str]:
    """The URLs of `HOMELAB_NOTIFY_URLS`: comma- or space-separated, blanks ignored."""
    return [url.strip(" ,") for url in _BETWEEN_URLS.split(text.strip()) if url.strip(" ,")]


def channel_id(url: str) -> str:
    """The stable name of a URL in the database: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def make_channel(url: str, where: str) -> Channel:
    """A Channel for `url`; ConfigError (naming `where` and the scheme, never the URL) when
    Apprise cannot use it."""
    import apprise  # 0.1 s to import: only processes with URLs pay it

    if apprise.Apprise.instantiate(url) is None:
        raise ConfigError(
            f"{where}: Apprise cannot use the {scheme_of(url)}:// URL "
            "(unknown scheme or missing parts; see https://github.com/caronc/apprise/wiki)"
        )
    return Channel(id=channel_id(url), scheme=scheme_of(url), shown=redacted(url), url=url)


class Courier:
    """Sends messages through Apprise, one service object per channel, kept between sends.

    Channels may send at the same time, each from its own thread (one thread per channel).
    """

    def __init__(self) -> None:
        self._services: dict[str, apprise.NotifyBase] = {}

    def send(self, channel: Channel, title: str, body: str, kind: str) -> Outcome:
        """Send one message to `channel`; `kind` is error, warning, info or recovery.

        Never raises: a channel that fails is retried later by the caller. The reason of a
        failure is Apprise's own warning (its HTTP status, a refused connection), masked; a
        status of REFUSED_STATUSES, or an exception a plugin raised on this message, marks the
        message `refused`.
        """
        import apprise  # 0.1 s to import: only processes with URLs pay it

        service = self._services.get(channel.id)
        if service is None:
            service = apprise.Apprise.instantiate(channel.url)
            if service is None:
                return Outcome(False, f"Apprise cannot use this {channel.scheme}:// URL")
            self._services[channel.id] = service
        captured = _ThreadWarnings()
        apprise_log = logging.getLogger("apprise")
        apprise_log.addHandler(captured)
        try:
            ok = bool(
                service.notify(
                    body=body,
                    title=title,
                    notify_type=NOTIFY_TYPES.get(kind, "info"),
                    # Plain text: a container name a box reported is escaped for HTML
                    # and Markdown channels, never rendered.
                    body_format=apprise.NotifyFormat.TEXT,
                )
            )
        except Exception as exc:  # any of ~100 plugins may raise anything
            # Plugins catch their network errors themselves: what escapes is the plugin
            # failing on this message, and it would fail on it again.
            return Outcome(False, scrubber.scrub(f"{type(exc).__name__}: {exc}"), refused=True)
        finally:
            apprise_log.removeHandler(captured)
        if ok:
            return Outcome(True)
        lines = [line for line in captured.lines if line.strip()]
        reason = scrubber.scrub(lines[-1] if lines else "Apprise reported a failure")
        statuses = [int(found) for line in lines for found in _STATUS.findall(line)]
        return Outcome(False, reason, refused=bool(statuses) and statuses[-1] in REFUSED_STATUSES)
