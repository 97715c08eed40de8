"""`POST /api/v1/agents/heartbeat` answered in plain WSGI, before Flask runs: the fleet's hot path.

Every box sends one a minute, so a fleet of thousands makes this most of control's traffic.
Profiled under load (bench/README.md, "Heartbeat ingest"), Flask's request context and session,
flask-smorest's and webargs' wrappers and the request hooks cost more CPU than the rest of a
heartbeat put together, the database write included. This middleware takes the heartbeats
that need none of that: a JSON body of a stated length under the app's limit, a key the key
ring knows (from memory, as the view would) that may report, a body that parses and validates.
It then makes the calls the view makes (its schema instance, which reads a body of known
fields in one pass, `load_json`, and `record_heartbeat`) and answers with the same status,
headers and bytes.

Anything else goes to Flask untouched, with the body put back: a missing or unknown key, a
body to refuse, another media type, a chunked upload. Those are answered by the view and the
app's error handlers as before, so no 4xx can read differently. A refusal the domain raises
after this path has called it (a key bound to another server, a revoked key, the enrollment
rate, a database error) is handed to the view under `REFUSAL`, which raises it at once:
nothing is written or counted twice.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from control import context
from control.api import strict_json
from control.api.agents import HEARTBEAT_SCHEMA, REFUSAL, record_heartbeat
from control.api.auth import key_in

PATH = "/api/v1/agents/heartbeat"
# The media types the view reads as JSON that agents send (others go to Flask, which decides).
JSON_TYPES = frozenset(
    {"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"}
)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class HeartbeatFastPath:
    """WSGI middleware around Flask's `wsgi_app` that answers plain heartbeats itself."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        ctx = context.of(app)
        self._keyring = ctx.keyring
        # The series the app's request hook would observe for this route (control.app).
        self._observe = ctx.metrics.request_duration.labels("POST", PATH, "200").observe

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer a plain heartbeat here; hand every other request to Flask."""
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        answer = self._answer(environ)
        if answer is None:
            return self.wsgi_app(environ, start_response)
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
        )
        self._observe(time.perf_counter() - started)
        return [answer]

    def _answer(self, environ: dict[str, Any]) -> bytes | None:
        """The encoded answer to a heartbeat taken whole here; None to leave it to Flask."""
        body = self._body(environ)
        if body is None:
            return None
        try:
            # No `db.connect` as the app's hook does (its checks cost a `stat` and a GIL
            # hand-off): this thread queries only for a key it does not remember, and peewee
            # connects then; the write is the group commit's, which checks its connection.
            caller = self._keyring.resolve_verified(key_in(environ))
            if caller is None or not caller.may("heartbeat"):
                return None
            # One pass in C for a body of known fields; the view's two steps for any other.
            beat = HEARTBEAT_SCHEMA.load_json(body)
            if beat is None:
                data = strict_json.loads(body)
                if not isinstance(data, dict):
                    return None
                beat = HEARTBEAT_SCHEMA.load(data)
        except Exception:
            # Malformed JSON, a field to refuse, the database down: the view and the app's
            # error handlers say what is wrong, in their words.
            return None
        try:
            return record_heartbeat(self.app, beat, caller, environ.get("REMOTE_ADDR"))
        except Exception as refusal:
            environ[REFUSAL] = refusal
            return None

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The request's JSON body if this path may take it, put back for Flask either way."""
        if environ.get("QUERY_STRING"):
            return None  # the view refuses unknown query parameters
        if environ.get("CONTENT_TYPE", "").lower() not in JSON_TYPES:
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not (length.isascii() and length.isdigit()):
            return None
        size = int(length)
        limit = self.app.config["MAX_CONTENT_LENGTH"]
        if size == 0 or (limit is not None and size > limit):
            return None  # Flask answers 413 without reading it
        body: bytes = environ["wsgi.input"].read(size)
        # Flask reads the body from here if this path steps aside.
        environ["wsgi.input"] = io.BytesIO(body)
        return body if len(body) == size else None


def install(app: Flask) -> None:
    """Put the heartbeat fast path in front of `app`'s WSGI callable (after its hooks exist)."""
    app.wsgi_app = HeartbeatFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
