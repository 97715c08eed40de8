"""Driving the operator console through Flask's test client, as a browser would without script.

`ConsolePages(client)` signs in with a key, GETs pages and POSTs their forms with the CSRF
token a page carried, so a test reads like the clicks it stands for.
"""

from __future__ import annotations

import html
import re

TOKEN = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')
SESSION = "<this session's token>"
FLASH = re.compile(r'<p class="flash (\w+)" role="\w+">(.*?)</p>', re.S)


def csrf_token(page: str) -> str:
    """The CSRF token of the first form on `page`."""
    found = TOKEN.search(page)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


def flashes(page: str) -> list[tuple[str, str]]:
    """The (category, text) of each flashed message shown on `page`."""
    return [(kind, html.unescape(text)) for kind, text in FLASH.findall(page)]


class ConsolePages:
    """One browser's view of the console: its cookie jar is the Flask client's."""

    def __init__(self, client, remote_addr: str = "127.0.0.1"):
        self.client = client
        self.environ = {"REMOTE_ADDR": remote_addr}
        self.last = ""

    def get(self, path: str, **kwargs):
        """GET a console page (redirects not followed); remembers it for its token."""
        response = self.client.get(path, environ_base=self.environ, **kwargs)
        if response.status_code == 200:
            self.last = response.get_data(as_text=True)
        return response

    def token(self) -> str:
        """A CSRF token for this session: from the last page, or from the sign-in page."""
        if not TOKEN.search(self.last):
            self.get("/ui/login")
        return csrf_token(self.last)

    def post(self, path: str, data: dict | None = None, token: str | None = SESSION, **kwargs):
        """POST a form; by default with this session's CSRF token, `token=None` with none."""
        form = dict(data or {})
        if token == SESSION:
            form["csrf_token"] = self.token()
        elif token is not None:
            form["csrf_token"] = token
        return self.client.post(path, data=form, environ_base=self.environ, **kwargs)

    def sign_in(self, key: str, next_page: str | None = None):
        """Fill in the sign-in form with `key`; returns the POST's response."""
        self.get("/ui/login" + (f"?next={next_page}" if next_page else ""))
        data = {"api_key": key}
        if next_page is not None:
            data["next"] = next_page
        return self.post("/ui/login", data)

    def follow(self, response):
        """GET where a redirect points; returns that page's response."""
        assert response.status_code in (302, 303), response.status_code
        return self.get(response.headers["Location"])

    def page(self, path: str) -> str:
        """The text of a page that must answer 200."""
        response = self.get(path)
        assert response.status_code == 200, (path, response.status_code, response.location)
        return response.get_data(as_text=True)
