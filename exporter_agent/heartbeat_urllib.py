"""The heartbeat over urllib's opener, for a control URL behind a proxy (heartbeat_transport).

urllib.request is imported with this module, so only when a proxy applies: its opener
honours the proxy variables (CONNECT for https, Proxy-Authorization from the proxy URL).
"""

import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping

from exporter_agent.heartbeat_transport import Answer


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: urllib would resend the key (as a GET) to any Location."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx


class UrllibTransport:
    """POSTs to ``url`` through urllib's default opener (proxies from the environment)."""

    def __init__(self, url: str, timeout: float, context: ssl.SSLContext | None = None) -> None:
        self._url = url
        self._timeout = timeout
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _RefuseRedirects()
        )

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST ``body``; raises URLError (an OSError) or HTTPException when no answer came."""
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in config
            self._url, data=body, method="POST", headers=dict(headers)
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return Answer(response.status, response.read(),
                              response.headers.get("Location"),
                              response.headers.get("Retry-After"))  # fmt: skip
        except urllib.error.HTTPError as exc:
            with exc:
                location, retry_after = exc.headers.get("Location"), exc.headers.get("Retry-After")
                if 300 <= exc.code < 400:  # never followed, never read
                    return Answer(exc.code, b"", location, retry_after)
                return Answer(exc.code, exc.read(), location, retry_after)
