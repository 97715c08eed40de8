"""How a heartbeat reaches control: over http.client, or urllib's opener when a proxy applies.

urllib.request costs the agent ~0.8 MB of RSS; http.client is loaded already (the /metrics
server needs it). So the heartbeat goes out over http.client as urllib's opener would send it
(same request line and headers, the same ssl context, timeout, one connection per request,
redirects never followed), and urllib's opener is imported only when a proxy applies to the
control URL, decided as urllib decides it (`proxy_applies`).

A transport answers every HTTP status as an `Answer` (a 3xx too, unread) and raises OSError
or HTTPException when no answer came; a failure before the request was sent (connect, TLS
handshake) is raised as `Unreachable` whose ``reason`` is the original error, as urllib's
URLError carries it.
"""

import http.client
import os
import re
import ssl
from collections.abc import Mapping
from typing import NamedTuple, Protocol
from urllib.parse import unquote

# urllib's _splittype, _splithost and _splitport: the same regular expressions, so the host
# checked against no_proxy and sent as Host is the one urllib takes.
_SCHEME = re.compile("([^/:]+):(.*)", re.DOTALL)
_HOST = re.compile("//([^/#?]*)(.*)", re.DOTALL)
_PORT = re.compile("(.*):([0-9]*)", re.DOTALL)


class Answer(NamedTuple):
    """Control's HTTP answer: status, body (empty for a 3xx) and the headers the loop reads."""

    status: int
    body: bytes
    location: str | None = None
    retry_after: str | None = None


class Unreachable(OSError):
    """The request never reached control; ``reason`` is the connect/TLS/send error."""

    def __init__(self, reason: OSError) -> None:
        super().__init__(reason)
        self.reason = reason


class Transport(Protocol):
    """POSTs one body to the control URL it was made for and returns control's answer."""

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer: ...


def split_url(url: str) -> tuple[str, str, str]:
    """``(scheme, host[:port], selector)`` of ``url`` as urllib's Request splits it."""
    url = url.rpartition("#")[0] if "#" in url else url
    match = _SCHEME.fullmatch(url)
    if not match:
        return "", "", url
    scheme, rest = match.group(1).lower(), match.group(2)
    host = _HOST.fullmatch(rest)
    if not host:
        return scheme, "", rest
    path = host.group(2)
    if path and path[0] != "/":
        path = "/" + path
    return scheme, unquote(host.group(1)), path


def proxy_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``{scheme: proxy}`` from ``<scheme>_proxy`` variables, as urllib's getproxies_environment.

    Names of any case first, then those ending in lower-case ``_proxy`` override them (an
    empty one removes the scheme); a CGI environment (REQUEST_METHOD) drops an upper-case
    HTTP_PROXY, which a client can set through a ``Proxy:`` header. ``no`` holds no_proxy.
    """
    proxies = {}
    for name, value in environ.items():
        name = name.lower()
        if value and name[-6:] == "_proxy":
            proxies[name[:-6]] = value
    if "REQUEST_METHOD" in environ:
        proxies.pop("http", None)
    for name, value in environ.items():
        if name[-6:] == "_proxy":
            if value:
                proxies[name.lower()[:-6]] = value
            else:
                proxies.pop(name.lower()[:-6], None)
    return proxies


def proxy_bypassed(host: str, proxies: Mapping[str, str]) -> bool:
    """Whether no_proxy (``proxies["no"]``) exempts ``host[:port]``, as urllib's
    proxy_bypass_environment: ``*``, or a listed name equal to the host (with or without its
    port) or a domain suffix of it; case and leading dots ignored."""
    no_proxy = proxies.get("no")
    if no_proxy is None:
        return False
    if no_proxy == "*":
        return True
    host = host.lower()
    port = _PORT.fullmatch(host)
    hostonly = port.group(1) if port and port.group(2) else host
    for name in no_proxy.split(","):
        name = name.strip().lstrip(".").lower()
        if not name:
            continue
        if name in (hostonly, host) or hostonly.endswith("." + name) or host.endswith("." + name):
            return True
    return False


def proxy_applies(url: str, environ: Mapping[str, str]) -> bool:
    """Whether urllib's default opener would send a request for ``url`` through a proxy."""
    scheme, host, _ = split_url(url)
    proxies = proxy_environment(environ)
    return scheme in proxies and not (host and proxy_bypassed(host, proxies))


class DirectTransport:
    """Sends over http.client exactly what urllib's opener sends when no proxy applies."""

    def __init__(self, url: str, timeout: float, context: ssl.SSLContext | None = None) -> None:
        scheme, self._host, self._selector = split_url(url)
        self._https = scheme == "https"
        self._timeout = timeout
        self._context = context

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, timeout=self._timeout,
                                               context=self._context)  # fmt: skip
        return http.client.HTTPConnection(self._host, timeout=self._timeout)

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST ``body``; raises Unreachable, OSError or HTTPException when no answer came."""
        # urllib's header names (title case) and order; http.client adds Accept-Encoding.
        sent = {"Content-Length": str(len(body)), "Host": self._host,
                **{name.title(): value for name, value in headers.items()},
                "Connection": "close"}  # fmt: skip
        if not self._host:
            raise Unreachable(OSError("no host given"))  # urllib's reason
        connection = self._connection()
        try:
            try:
                connection.request("POST", self._selector, body, sent)
            except OSError as exc:
                raise Unreachable(exc) from exc
            response = connection.getresponse()
            location = response.headers.get("Location")
            retry_after = response.headers.get("Retry-After")
            if 300 <= response.status < 400:  # never followed, never read
                return Answer(response.status, b"", location, retry_after)
            return Answer(response.status, response.read(), location, retry_after)
        finally:
            connection.close()


def make_transport(url: str, timeout: float, context: ssl.SSLContext | None = None) -> Transport:
    """The direct transport, or urllib's opener (imported only then) when a proxy applies.

    Both read the process environment (``os.environ``), as urllib's opener does.
    """
    if proxy_applies(url, os.environ):
        from exporter_agent.heartbeat_urllib import UrllibTransport

        return UrllibTransport(url, timeout, context)
    return DirectTransport(url, timeout, context)
