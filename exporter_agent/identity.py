"""The agent's identity: the key it reports with, and the bound key control gave it.

The first heartbeat goes out with the configured key (the shared bootstrap key, say). When
control answers it with ``agent_key`` (this heartbeat enrolled the server), that key is kept
in the state directory, file mode 600, and used from then on, also after a restart. If control
stops accepting the kept key (an operator reset the enrollment: 401), it is forgotten and the
configured key enrolls the box again.
"""

import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

KEY_FILE = "agent_key"


def default_state_dir(environ: Mapping[str, str] = os.environ) -> str:
    """Where the agent keeps state when not told: systemd's StateDirectory, else ~/.local/state."""
    systemd = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return systemd
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "homelab-agent")


class Identity:
    """The key to send now: the enrolled one if the state directory holds it, else configured."""

    def __init__(self, configured_key: str, state_dir: str | None) -> None:
        self._configured = configured_key
        self._file = Path(state_dir) / KEY_FILE if state_dir else None
        self._lock = threading.Lock()
        self._enrolled = self._load()

    @property
    def key(self) -> str:
        """The key to send with the next heartbeat."""
        with self._lock:
            return self._enrolled or self._configured

    @property
    def enrolled(self) -> bool:
        """Whether the agent reports with a key control bound to this server."""
        with self._lock:
            return self._enrolled is not None

    def enroll(self, key: str) -> None:
        """Keep the bound key control minted for this server, on disk (mode 600) and in memory."""
        with self._lock:
            self._enrolled = key
        if self._file is None:
            log.warning("enrolled, but no state directory: the key is lost at restart")
            return
        try:
            self._file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Written to a private temporary file, then renamed: never a half-written key, and
            # never a moment where the key sits in a file others may read.
            fd, tmp = tempfile.mkstemp(dir=self._file.parent, prefix=".agent_key.")
            with os.fdopen(fd, "w") as handle:
                handle.write(key + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._file)
        except OSError as exc:
            log.error("enrolled, but cannot keep the key in %s: %s", self._file.parent, exc)
            return
        log.info("enrolled: control bound a key to this server; kept in %s", self._file)

    def forget(self) -> None:
        """Drop the enrolled key (control no longer accepts it) and fall back to the configured."""
        with self._lock:
            self._enrolled = None
        if self._file is not None:
            try:
                self._file.unlink(missing_ok=True)
            except OSError as exc:
                log.error("cannot remove %s: %s", self._file, exc)

    def _load(self) -> str | None:
        if self._file is None:
            return None
        try:
            key = self._file.read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("cannot read the enrolled key %s: %s", self._file, exc)
            return None
        return key or None
