"""The heartbeat over http.client sends and classifies exactly as urllib's opener did.

Each case goes to a real local server twice: through the direct (http.client) transport the
agent now uses, and through urllib's opener (`UrllibTransport`, the one it keeps for proxies);
the bytes control receives and the `Result` the loop acts on must be the same. The proxy
decision is checked against urllib's own on a table of environments and URLs.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import threading
import urllib.request
from types import SimpleNamespace

import pytest

from exporter_agent.heartbeat import HttpSender, Outcome
from exporter_agent.heartbeat_transport import DirectTransport, proxy_applies
from exporter_agent.heartbeat_urllib import UrllibTransport
from tests.helpers import free_port, require_binary

PAYLOAD = {"server_id": "box-1", "metrics": {"cpu_percent": 1.5}}
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD")


def response(status: int, body: object = None, headers: dict | None = None) -> bytes:
    """A raw HTTP/1.1 answer with a JSON (or raw bytes) body."""
    raw = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    extra = [f"{name}: {value}" for name, value in (headers or {}).items()]
    head = [f"HTTP/1.1 {status} Whatever", "Content-Type: application/json",
            f"Content-Length: {len(raw)}", *extra]  # fmt: skip
    return ("\r\n".join(head) + "\r\n\r\n").encode() + raw


OK = response(200, {"status": "ok", "server_registered": True})
INVALID = {"code": "VALIDATION_ERROR", "message": "Invalid", "errors": {"server_id": ["bad"]}}


class RawControl:
    """A socket server that records each request's raw bytes and answers from a script.

    A script entry of None never answers (the client times out); with ``context`` it speaks TLS.
    """

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context
        self.requests: list[bytes] = []
        self.script: list[bytes | None] = []
        self.closed = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            if self.context is not None:
                try:
                    conn = self.context.wrap_socket(conn, server_side=True)
                except OSError:  # the client refused our certificate
                    return
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head = data.partition(b"\r\n\r\n")[0]
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            while len(data) < len(head) + 4 + (int(length.group(1)) if length else 0):
                data += conn.recv(65536)
            self.requests.append(data)
            answer = self.script.pop(0) if self.script else OK
            if answer is None:
                self.closed.wait()
                return
            conn.sendall(answer)

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


@pytest.fixture
def no_proxy_env(monkeypatch):
    """No proxy variable from the developer's shell: urllib's opener goes direct too."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def control(no_proxy_env):
    server = RawControl()
    yield server
    server.close()


def both_ways(url: str, script: list, control: RawControl, **kwargs) -> list:
    """Send PAYLOAD through the direct transport, then through urllib's: both Results."""
    results = []
    for transport in (DirectTransport, UrllibTransport):
        sender = HttpSender(url, "secret-key", "homelab-agent/1.2.3", **kwargs)
        assert isinstance(sender.transport, DirectTransport)  # no proxy applies
        sender.transport = transport(sender.url, kwargs.get("timeout", 10.0),
                                     kwargs.get("context"))  # fmt: skip
        control.script = list(script)
        results.append(sender(PAYLOAD))
    return results


def test_the_request_is_byte_for_byte_the_one_urllib_sends(control):
    direct, via_urllib = both_ways(control.url, [OK, OK], control)
    assert direct == via_urllib and direct.outcome is Outcome.OK
    first, second = control.requests
    assert first == second
    assert first.startswith(b"POST /api/v1/agents/heartbeat HTTP/1.1\r\n")
    assert b"\r\nX-Api-Key: secret-key\r\n" in first and b"\r\nConnection: close\r\n" in first
    assert json.loads(first.partition(b"\r\n\r\n")[2]) == PAYLOAD


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (response(201, {"status": "ok"}), Outcome.OK),
        (response(401, {"code": "UNAUTHORIZED", "message": "bad key"}), Outcome.UNAUTHORIZED),
        (response(403, {"code": "FORBIDDEN", "message": "bound elsewhere"}), Outcome.UNAUTHORIZED),
        (response(422, INVALID), Outcome.REJECTED),
        (response(429, {"code": "RATE_LIMITED"}, {"Retry-After": "7"}), Outcome.UNAVAILABLE),
        (response(503, b"<html>down</html>", {"Retry-After": "9999"}), Outcome.UNAVAILABLE),
        (response(500, b"not json", {"Retry-After": "soon"}), Outcome.UNAVAILABLE),
        (response(404, None), Outcome.REJECTED),
    ],
)
def test_every_answer_is_classified_as_urllibs(control, answer, outcome):
    direct, via_urllib = both_ways(control.url, [answer], control)
    assert direct == via_urllib
    assert direct.outcome is outcome
    if b" 429 " in answer:
        assert direct.retry_after == 7.0
    if b" 503 " in answer:
        assert direct.retry_after == 300.0  # capped


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 305, 307, 308])
def test_a_3xx_is_a_failed_heartbeat_and_never_followed(control, status):
    elsewhere = RawControl()
    try:
        answer = response(status, {}, {"Location": elsewhere.url + "/steal"})
        direct, via_urllib = both_ways(control.url, [answer], control)
        assert direct == via_urllib
        assert direct.outcome is Outcome.REJECTED and direct.status == status
        assert "not following it" in direct.detail
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


def test_connection_refused_and_timeout_read_as_urllibs(control):
    refused = f"http://127.0.0.1:{free_port()}"
    direct, via_urllib = both_ways(refused, [], control)
    assert direct == via_urllib
    assert direct.outcome is Outcome.UNAVAILABLE and "Connection refused" in direct.detail
    direct, via_urllib = both_ways(control.url, [None, None], control, timeout=0.5)
    assert direct == via_urllib
    assert direct.outcome is Outcome.UNAVAILABLE and direct.detail.endswith("timed out")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for DNS:localhost only, and its key."""
    openssl = require_binary("openssl", "openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_control(certificate, no_proxy_env):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    server = RawControl(context)
    yield server
    server.close()


def test_tls_verifies_with_the_same_context_as_urllib(tls_control, certificate):
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    good = f"https://localhost:{tls_control.port}"
    direct, via_urllib = both_ways(good, [OK, OK], tls_control, context=trusted)
    assert direct == via_urllib and direct.outcome is Outcome.OK
    assert tls_control.requests[0] == tls_control.requests[1]
    # A certificate nobody vouches for, or for another name: refused, with urllib's words.
    for url, context, words in [
        (good, ssl.create_default_context(), "certificate verify failed"),
        (f"https://127.0.0.1:{tls_control.port}", trusted, "IP address mismatch"),
    ]:
        direct, via_urllib = both_ways(url, [], tls_control, context=context)
        assert direct == via_urllib
        assert direct.outcome is Outcome.UNAVAILABLE and words in direct.detail, direct.detail
    assert len(tls_control.requests) == 2  # the refused ones sent nothing


def urllib_uses_a_proxy(url: str, environ: dict, monkeypatch) -> bool:
    """urllib's own answer: does its default ProxyHandler route ``url`` through a proxy?"""
    monkeypatch.setattr("os.environ", environ)
    handler = urllib.request.ProxyHandler()
    handler.parent = SimpleNamespace(open=lambda request, timeout=None: None)
    request = urllib.request.Request(url)  # noqa: S310 - the table's http(s) URLs
    request.timeout = None  # as OpenerDirector.open sets it
    origin = request.host
    proxy_open = getattr(handler, f"{request.type}_open", None)
    if proxy_open is not None:
        proxy_open(request)
    return request.host != origin  # set_proxy points it at the proxy (https: tunnels there)


PROXY = "http://proxy.lan:3128"
URLS = ("http://control.lan:8000", "https://control.lan", "http://127.0.0.1:8000/prefix",
        "http://[::1]:8000", "HTTP://Control.LAN:80", "https://sub.control.lan:8443",
        "http://control.lan.evil:8000", "http://user@control.lan:8000")  # fmt: skip
ENVIRONMENTS = (
    {},
    {"http_proxy": PROXY},
    {"HTTP_PROXY": PROXY},
    {"https_proxy": PROXY},
    {"HTTPS_PROXY": PROXY, "http_proxy": ""},
    {"HTTP_PROXY": PROXY, "http_proxy": ""},  # the empty lower-case one wins
    {"HTTP_PROXY": PROXY, "REQUEST_METHOD": "GET"},  # CGI: upper-case HTTP_PROXY ignored
    {"http_proxy": PROXY, "REQUEST_METHOD": "GET"},
    {"all_proxy": PROXY},
    {"ALL_PROXY": PROXY, "https_proxy": "proxy.lan:3128"},
    {"Http_Proxy": PROXY},
    {"http_proxy": PROXY, "no_proxy": "*"},
    {"http_proxy": PROXY, "https_proxy": PROXY, "no_proxy": "control.lan"},
    {"http_proxy": PROXY, "https_proxy": PROXY, "NO_PROXY": ".control.lan, 127.0.0.1"},
    {"http_proxy": PROXY, "no_proxy": "Control.Lan:8000"},
    {"http_proxy": PROXY, "no_proxy": "control.lan:9999,lan"},
    {"http_proxy": PROXY, "no_proxy": "[::1]"},
    {"http_proxy": PROXY, "no_proxy": "::1"},
    {"http_proxy": PROXY, "no_proxy": " , ,"},
    {"http_proxy": PROXY, "no_proxy": "127.0.0.1:8000"},
    {"http_proxy": PROXY, "no_proxy": "user@control.lan"},
    {"http_proxy": "https://proxy.lan:3128", "no_proxy": "sub.control.lan"},
)


@pytest.mark.parametrize("environ", ENVIRONMENTS)
def test_a_proxy_applies_exactly_when_urllib_would_use_one(environ, monkeypatch):
    for url in URLS:
        expected = urllib_uses_a_proxy(url, environ, monkeypatch)
        assert proxy_applies(url, environ) is expected, (url, environ)


def test_the_proxy_table_has_both_answers(monkeypatch):
    answers = {urllib_uses_a_proxy(u, e, monkeypatch) for u in URLS for e in ENVIRONMENTS}
    assert answers == {True, False}


def test_behind_a_proxy_the_heartbeat_goes_through_urllibs_opener(control, monkeypatch):
    proxy = RawControl()
    try:
        monkeypatch.setenv("http_proxy", proxy.url)
        sender = HttpSender(control.url, "k", "ua")
        assert isinstance(sender.transport, UrllibTransport)
        assert sender(PAYLOAD).outcome is Outcome.OK
        assert control.requests == []
        assert proxy.requests[0].startswith(
            f"POST {control.url}/api/v1/agents/heartbeat HTTP/1.1\r\n".encode()
        )
        monkeypatch.setenv("no_proxy", "127.0.0.1")  # bypassed: direct again
        sender = HttpSender(control.url, "k", "ua")
        assert isinstance(sender.transport, DirectTransport)
        assert sender(PAYLOAD).outcome is Outcome.OK
        assert len(control.requests) == len(proxy.requests) == 1
    finally:
        proxy.close()


def test_https_behind_a_proxy_is_tunnelled_by_urllib(tls_control, monkeypatch):
    proxy = RawControl()
    try:
        proxy.script = [response(502, b"no")]
        monkeypatch.setenv("https_proxy", proxy.url)
        result = HttpSender(f"https://localhost:{tls_control.port}", "k", "ua")(PAYLOAD)
        assert result.outcome is Outcome.UNAVAILABLE and "Tunnel connection failed" in result.detail
        assert proxy.requests[0].startswith(f"CONNECT localhost:{tls_control.port} ".encode())
        assert tls_control.requests == []
    finally:
        proxy.close()
