"""The agent's version, read from the installed package metadata.

Found as ``importlib.metadata.version("homelabcmd")`` finds it (the first ``homelabcmd``
``*.dist-info``/``*.egg-info`` on ``sys.path``), without importing importlib.metadata: with
the zipfile, csv and importlib.resources it brings, that import alone is ~1 MB of the
agent's resident memory, for one string read once.
"""

import os
import re
import sys
from collections.abc import Iterable

DISTRIBUTION = "homelabcmd"
SOURCE_TREE_VERSION = "0.0.0+source"


def _normalized(name: str) -> str:
    """A distribution name as importlib.metadata compares them (PEP 503, ``_`` for ``-``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata_files(entry: str, distribution: str) -> Iterable[str]:
    """The metadata files of ``distribution`` directly under the ``sys.path`` entry."""
    try:
        names = os.listdir(entry or ".")
    except OSError:  # a missing directory, or a zip file
        return
    for name in names:
        stem, dot, kind = name.lower().rpartition(".")
        if not dot or kind not in ("dist-info", "egg-info"):
            continue
        if _normalized(stem.partition("-")[0]) != distribution:
            continue
        path = os.path.join(entry or ".", name)
        if kind == "dist-info":
            yield os.path.join(path, "METADATA")
        else:  # an egg-info directory holds PKG-INFO; an old egg-info file is PKG-INFO
            yield os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path


def _version(path: str) -> str | None:
    """The ``Version`` header of a metadata file, None when it has none or cannot be read."""
    try:
        with open(path, encoding="utf-8") as metadata:
            for line in metadata:
                if not line.strip():
                    return None  # the headers end at the first blank line
                key, _, value = line.partition(":")
                if key.strip().lower() == "version":
                    return value.strip()
    except (OSError, UnicodeDecodeError):
        return None
    return None


def agent_version(path: Iterable[str] | None = None) -> str:
    """Return the installed homelabcmd version, or a marker when running from a source tree.

    ``path`` is where to look (default ``sys.path``), as importlib.metadata searches it.
    """
    wanted = _normalized(DISTRIBUTION)
    for entry in sys.path if path is None else path:
        for metadata in _metadata_files(entry, wanted):
            version = _version(metadata)
            if version is not None:
                return version
    return SOURCE_TREE_VERSION
