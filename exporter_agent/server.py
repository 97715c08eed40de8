"""HTTP(S) serving: /metrics from our registry, a landing page at /, optional basic auth."""

import base64
import gzip
import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from exporter_agent.exposition import CONTENT_TYPE, encode
from exporter_agent.registry import Registry

log = logging.getLogger(__name__)

LANDING_PAGE = b"""<!DOCTYPE html>
<html><head><title>homelab-agent</title></head>
<body><h1>homelab-agent</h1>
<p>node_exporter-compatible metrics: <a href="/metrics">/metrics</a></p>
</body></html>
"""
REQUEST_TIMEOUT_SECONDS = 30
# How often serve_forever checks for shutdown: bounds how long SIGTERM takes to stop serving.
SHUTDOWN_POLL_SECONDS = 0.1

StartResponse = Callable[..., object]


def _plain(start_response: StartResponse, status: str, body: bytes, *headers) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]


class BasicAuth:
    """Checks an HTTP ``Authorization: Basic`` header against one user and password."""

    def __init__(self, user: str, password: str) -> None:
        # Imported only with basic auth configured: hmac brings hashlib and its OpenSSL
        # state, ~0.5 MB the agent otherwise does without.
        import hmac

        self._compare = hmac.compare_digest
        self._expected = f"{user}:{password}".encode()

    def allows(self, header: str | None) -> bool:
        """Return True when ``header`` carries the configured credentials (constant time)."""
        if not header or not header.startswith("Basic "):
            return False
        try:
            supplied = base64.b64decode(header[6:].strip(), validate=True)
        except ValueError:
            return False
        return self._compare(supplied, self._expected)


def gzip_accepted(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header lists gzip (any q, as prometheus_client reads it)."""
    return any(
        coding.split(";")[0].strip().lower() == "gzip" for coding in accept_encoding.split(",")
    )


def _metrics(registry: Registry, environ: dict, start_response: StartResponse):
    """One scrape: text format 0.0.4 (as node_exporter serves by default), gzip on request.

    Prometheus accepts the text format, and it costs less than OpenMetrics to produce.
    """
    body = encode(registry.collect())
    headers = [("Content-Type", CONTENT_TYPE)]
    if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
        body = gzip.compress(body, compresslevel=6)
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


def make_app(registry: Registry, auth: BasicAuth | None = None) -> Callable:
    """Return the agent's WSGI app: ``/metrics`` (gzip on request), ``/``, 404 elsewhere."""

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", b"", ("Allow", "GET, HEAD"))
        if path == "/metrics":
            if auth is not None and not auth.allows(environ.get("HTTP_AUTHORIZATION")):
                return _plain(
                    start_response,
                    "401 Unauthorized",
                    b"Unauthorized\n",
                    ("WWW-Authenticate", 'Basic realm="homelab-agent"'),
                )
            return _metrics(registry, environ, start_response)
        if path == "/":
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Length", str(len(LANDING_PAGE))),
                ],
            )
            return [LANDING_PAGE]
        return _plain(start_response, "404 Not Found", b"Not Found\n")

    return app


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every scrape and times out idle clients."""

    timeout = REQUEST_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: object) -> None:
        """Drop per-request access logs (Prometheus scrapes every few seconds)."""


class AgentHTTPServer(ThreadingMixIn, WSGIServer):
    """Thread-per-request WSGI server; with a TLS context it handshakes in the request thread."""

    daemon_threads = True
    allow_reuse_address = True
    tls_context: ssl.SSLContext | None = None

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup of the listen address."""
        socketserver.TCPServer.server_bind(self)
        host, port = cast(tuple[str, int], self.server_address[:2])  # an AF_INET(6) address
        self.server_name, self.server_port = host, port
        self.setup_environ()

    # A TCP server's request is always a socket; typeshed's BaseServer also allows UDP's tuple.
    def finish_request(self, request: socket.socket, client_address: tuple[Any, ...]) -> None:  # type: ignore[override]
        """Wrap the connection in TLS (if configured) before handling it."""
        if self.tls_context is not None:
            request.settimeout(REQUEST_TIMEOUT_SECONDS)
            try:
                request = self.tls_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
        super().finish_request(request, client_address)


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """Build a server TLS context (TLS 1.2+) from PEM files; raises OSError/SSLError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def serve(
    app: Callable,
    address: str,
    port: int,
    context: ssl.SSLContext | None = None,
) -> tuple[AgentHTTPServer, threading.Thread]:
    """Bind ``address:port`` and serve ``app`` from a daemon thread; returns (server, thread)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    class _Server(AgentHTTPServer):
        address_family = family
        tls_context = context

    server = make_server(address, port, app, _Server, handler_class=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), name="http", daemon=True
    )
    thread.start()
    return server, thread
