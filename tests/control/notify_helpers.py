"""A real HTTP receiver for notifications, and the set-up that points control's at it.

Apprise sends for real: `json://127.0.0.1:PORT/path` posts its JSON body to the path,
`ntfy://127.0.0.1:PORT/topic` posts `{topic, title, message}` to `/`. The receiver records each
request before it answers, so once a send has returned the request is there to read.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from control.models import Notification, Server
from control.notify import routing
from control.notify.redact import scrubber
from control.notify.sender import Sender


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict

    @property
    def title(self) -> str:
        return self.body.get("title", "")

    @property
    def message(self) -> str:
        return self.body.get("message", "")


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and fails the next N on demand."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answered: list[int] = []
        self._failures = 0
        self._failure_status = 500
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    failing = receiver._failures > 0
                    receiver._failures -= int(failing)
                    status = receiver._failure_status if failing else 200
                    receiver.answered.append(status)
                    if not failing:
                        receiver.requests.append(
                            Received(self.command, self.path, dict(self.headers), json.loads(raw))
                        )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_PUT = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def json_url(self, path: str = "hook") -> str:
        """An Apprise URL that posts JSON to `path` here."""
        return f"json://127.0.0.1:{self.port}/{path}"

    def ntfy_url(self, topic: str = "homelab") -> str:
        """An Apprise URL that posts to this receiver as a self-hosted ntfy server."""
        return f"ntfy://127.0.0.1:{self.port}/{topic}"

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests with `status` (a 500: the service is down; a 413:
        it refuses that message) and do not record them as received."""
        with self._lock:
            self._failures, self._failure_status = count, status

    def titles(self) -> list[str]:
        """The titles of the messages received, in order."""
        return [request.title for request in self.requests]


class SlowEndpoint:
    """A TCP port on 127.0.0.1 that accepts connections and never answers, until released."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:  # closed by release()
                return
            self.connections.append(connection)

    def __enter__(self) -> SlowEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def json_url(self, path: str = "hook") -> str:
        """An Apprise URL posting here, with a read timeout longer than any test waits."""
        return f"json://127.0.0.1:{self.port}/{path}?rto=120"

    def release(self) -> None:
        """Close the port and every connection it holds: a waiting send fails at once."""
        with contextlib.suppress(OSError):
            self.server.shutdown(
                socket.SHUT_RDWR
            )  # wakes the accepting thread (close alone may not)
        self.server.close()
        self._thread.join()
        for connection in self.connections:
            connection.close()


@contextlib.contextmanager
def routed(settings) -> Iterator[routing.Router]:
    """Route this process's events by `settings` for the test, and forget it afterwards."""
    try:
        yield routing.configure(settings)
    finally:
        routing.router.reset()
        scrubber.forget()


def sender(settings, holder: str = "test-sender") -> Sender:
    """A Sender for `settings`, as the leader scheduler would make it."""
    return Sender(settings, holder)


def add_servers(*server_ids: str, **fields) -> None:
    """Register servers directly (online, healthy unless `fields` say otherwise)."""
    for server_id in server_ids:
        values = {"status": "online", "health": "healthy", **fields}
        Server.create(id=server_id, hostname=server_id, **values)


def statuses() -> list[tuple[str, str]]:
    """(key, status) of every outbox row, oldest first."""
    return [(row.key, row.status) for row in Notification.select().order_by(Notification.id)]
