"""The agent's version, read from the installed package metadata."""

from importlib import metadata


def agent_version() -> str:
    """Return the installed homelabcmd version, or a marker when running from a source tree."""
    try:
        return metadata.version("homelabcmd")
    except metadata.PackageNotFoundError:
        return "0.0.0+source"
