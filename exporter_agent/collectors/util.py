"""Small helpers shared by the collectors: file reading and device filters."""

import os
import re

READ_CHUNK = 65536


def read_text(path: str) -> str:
    """Return the whole content of a (small, virtual) file such as one under /proc.

    What ``open(path, encoding="utf-8", errors="replace").read()`` returns (newlines made
    ``\\n`` included), read with ``os.read``: a scrape reads ~30 of these, and skipping the
    buffered text layer halves the cost of a small one (about 7 µs down to 3).
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, READ_CHUNK):  # /proc hands out big files a page at a time
            chunks.append(chunk)
    finally:
        os.close(fd)
    text = b"".join(chunks).decode("utf-8", "replace")
    if "\r" in text:  # universal newlines, as text mode reads
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def read_stripped(path: str) -> str:
    """Return a one-value sysfs/procfs file's content without the trailing newline."""
    return read_text(path).strip()


class DeviceFilter:
    """Decides which devices a collector reports, from node_exporter-style exclude/include regexes.

    A device is reported when it matches ``include`` (if given) and does not match ``exclude``.
    Patterns are searched like Go's ``regexp.MatchString``: they are unanchored unless they
    anchor themselves.
    """

    def __init__(self, exclude: str | None = None, include: str | None = None) -> None:
        self._exclude = re.compile(exclude) if exclude else None
        self._include = re.compile(include) if include else None

    def ignored(self, name: str) -> bool:
        """Return True when ``name`` must not be reported."""
        if self._include is not None and not self._include.search(name):
            return True
        return self._exclude is not None and bool(self._exclude.search(name))
