"""Keeping the secrets of notification URLs out of logs, `/metrics`, the console and the database.

An Apprise URL is a credential: `json://user:password@host/hook-TOKEN`, `ntfy://host/topic?token=…`,
`discord://webhook_id/webhook_token`. Control shows a channel only as `redacted(url)` or its
scheme, and stores a hash of it. Apprise logs request URLs, payloads and headers (bearer tokens
included) at DEBUG, and urllib3 logs request paths; `scrubber.install()` makes every log record
of those libraries, and of control.notify, pass through `scrub` first, so not even a DEBUG log
level prints a token. Control also holds those libraries at WARNING (`quiet_libraries`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

MASK = "***"
# Shorter pieces of a URL ("api", a port) are no secret, and masking them would garble lines.
MIN_SECRET = 3
# Loggers whose records may carry a URL: Apprise, the HTTP stack under it, and our own.
SCRUBBED_LOGGERS = ("apprise", "urllib3", "requests", "control.notify")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,31}")


def scheme_of(url: str) -> str:
    """The URL's scheme in lower case (`ntfy`, `json`, `mailtos`), or `unknown`."""
    head, separator, _ = url.partition("://")
    scheme = head.strip().lower()
    return scheme if separator and _SCHEME.fullmatch(scheme) else "unknown"


def secrets_of(url: str) -> set[str]:
    """The pieces of `url` that may be secret, as they may appear in a log line.

    Every piece: the host part too, because for some services it is the secret (an ntfy
    topic on a public server is `ntfy://TOPIC`, readable and writable by whoever knows it;
    Apprise's own masked form shows it). Every path segment, query value and fragment, the user
    and password; each also percent-decoded and encoded, and the basic authentication
    header's base64 of `user:password`.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return {url}
    found = set(re.split(r"[@:]", parts.netloc))
    found.update(parts.path.split("/"))
    found.update(value for _, value in parse_qsl(parts.query))
    found.add(parts.fragment)
    user, password = parts.username, parts.password
    if user:
        found.add(user)
    if password:
        found.add(password)
        found.add(base64.b64encode(f"{unquote(user or '')}:{unquote(password)}".encode()).decode())
    variants = set()
    for piece in found:
        variants.update({piece, unquote(piece), quote(unquote(piece), safe="")})
    return {piece for piece in variants if len(piece) >= MIN_SECRET}


def redacted(url: str) -> str:
    """`url` as it may be shown (console, logs): its scheme and a fingerprint, nothing else.

    The fingerprint (the first 8 hex digits of the URL's SHA-256) tells channels of one scheme
    apart and matches nothing an attacker could use.
    """
    fingerprint = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{scheme_of(url)}://{MASK} #{fingerprint}"


def redacted_stored(scheme: str, channel: str) -> str:
    """`redacted(url)` from what the outbox keeps of a channel: its scheme and its id (the
    URL's SHA-256 in hex, of which the fingerprint is the first 8 digits); for channels whose
    URL is no longer configured."""
    return f"{scheme}://{MASK} #{channel[:8]}"


def scrub_with(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` (longest first, please) replaced by `***`."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class Scrubber:
    """The secrets of every configured URL, and the log record factory that masks them."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._urls: set[str] = set()
        self._lock = threading.Lock()
        self._installed = False

    def remember(self, urls: Iterable[str]) -> None:
        """Add the secrets of `urls` to what is masked, before Apprise ever sees them.

        Every piece of each URL (see `secrets_of`), so even Apprise's own parsing logs nothing
        secret.
        """
        urls = [url for url in urls if url not in self._urls]
        if not urls:
            return
        self.install()
        self._urls.update(urls)
        self._use(self._secrets, *(secrets_of(url) for url in urls))

    def _use(self, *sets: Iterable[str]) -> None:
        found = set().union(*sets)
        with self._lock:
            self._secrets = tuple(sorted(found, key=len, reverse=True))

    def forget(self) -> None:
        """Mask nothing any more (tests that configure other URLs)."""
        with self._lock:
            self._secrets, self._urls = (), set()

    def scrub(self, text: str) -> str:
        """`text` with every remembered secret masked."""
        return scrub_with(text, self._secrets)

    def install(self) -> None:
        """Wrap the logging record factory once, so records are masked as they are made.

        A filter on a logger would miss its children (urllib3.connectionpool) and a handler
        filter would miss handlers added later (a test's capture, Apprise's own LogCapture);
        the factory sees every record. The message is formatted and masked, and a traceback
        joins it, masked too (its exception text may hold the request URL).
        """
        with self._lock:
            if self._installed:
                return
            self._installed = True
        make_record = logging.getLogRecordFactory()

        def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            if self._secrets and record.name.startswith(SCRUBBED_LOGGERS):
                try:
                    text = record.getMessage()
                except (TypeError, ValueError):  # a malformed call: leave it as logging would
                    return record
                if record.exc_info:
                    text += "\n" + logging.Formatter().formatException(record.exc_info)
                    record.exc_info = None
                record.msg, record.args = self.scrub(text), None
            return record

        logging.setLogRecordFactory(masked_record)


scrubber = Scrubber()


_quieted = threading.Event()


def quiet_libraries() -> None:
    """Hold Apprise and urllib3 at WARNING whatever the log level (their DEBUG lines carry
    payloads and headers; control logs each attempt itself). Once per process, so a level set
    on purpose later stands."""
    if _quieted.is_set():
        return
    _quieted.set()
    for name in ("apprise", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
