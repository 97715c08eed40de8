"""HTTP serving: /metrics (gzip on request), landing page, basic auth, TLS, errors."""

from __future__ import annotations

import base64
import gzip
import ssl
import subprocess
import urllib.request

import pytest

from exporter_agent.collectors import build_collectors
from exporter_agent.exporter import AgentCollector, build_registry
from exporter_agent.server import BasicAuth, make_app, serve, tls_context
from tests.agent.conftest import http_get
from tests.helpers import free_port, require_binary


@pytest.fixture
def registry(snapshot):
    return build_registry(AgentCollector(build_collectors(["loadavg"], snapshot), "test"))


@pytest.fixture
def start_server():
    servers = []

    def start(app, context=None):
        port = free_port()
        server, thread = serve(app, "127.0.0.1", port, context)
        servers.append((server, thread))
        return port

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


def basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_metrics_served_in_text_format(registry, start_server):
    port = start_server(make_app(registry))
    status, headers, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"node_load1 " in body


def test_metrics_gzipped_when_asked(registry, start_server):
    port = start_server(make_app(registry))
    status, headers, body = http_get(
        f"http://127.0.0.1:{port}/metrics", {"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert b"node_load1 " in gzip.decompress(body)


def test_landing_page_links_metrics(registry, start_server):
    port = start_server(make_app(registry))
    status, headers, body = http_get(f"http://127.0.0.1:{port}/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b'href="/metrics"' in body


def test_unknown_path_is_404_and_post_is_405(registry, start_server):
    port = start_server(make_app(registry))
    assert http_get(f"http://127.0.0.1:{port}/nope")[0] == 404
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
    assert error.value.code == 405


def test_basic_auth_guards_metrics_only(registry, start_server):
    port = start_server(make_app(registry, BasicAuth("prom", "s3cret")))
    url = f"http://127.0.0.1:{port}"
    status, headers, _ = http_get(url + "/metrics")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert http_get(url + "/metrics", basic("prom", "wrong"))[0] == 401
    assert http_get(url + "/metrics", {"Authorization": "Basic !!!"})[0] == 401
    assert http_get(url + "/metrics", basic("prom", "s3cret"))[0] == 200
    assert http_get(url + "/")[0] == 200


@pytest.fixture
def self_signed(tmp_path):
    openssl = require_binary("openssl", "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_serves_metrics_over_https(registry, start_server, self_signed):
    cert, key = self_signed
    port = start_server(make_app(registry), tls_context(str(cert), str(key)))
    client = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(
        f"https://127.0.0.1:{port}/metrics", context=client, timeout=5
    ) as response:
        assert b"node_load1 " in response.read()


def test_tls_rejects_plain_http_and_keeps_serving(registry, start_server, self_signed):
    cert, key = self_signed
    port = start_server(make_app(registry), tls_context(str(cert), str(key)))
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{port}/metrics")
    client = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(
        f"https://127.0.0.1:{port}/", context=client, timeout=5
    ) as response:
        assert response.status == 200


def test_text_format_even_when_openmetrics_is_preferred(registry, start_server):
    """Like node_exporter's default: Prometheus' OpenMetrics-first Accept still gets text 0.0.4."""
    port = start_server(make_app(registry))
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    status, headers, body = http_get(f"http://127.0.0.1:{port}/metrics", {"Accept": accept})
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# EOF" not in body
