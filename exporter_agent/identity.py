"""The agent's identity: the key it reports with, and the bound key control gave it.

The first heartbeat goes out with the configured key (the shared bootstrap key, say). When
control answers it with ``agent_key`` (this heartbeat enrolled the server), that key is kept
in the state directory with the server id it is bound to (``enrollment.json``, mode 600) and
used from then on, also after a restart, as long as the agent reports as that server id.

The kept key is the only thing that may speak for an enrolled server, and control will not
mint another until an operator resets the enrollment, so it is guarded:

- it is replaced only by a new well-formed key from control, never dropped on a doubtful answer
  (heartbeat.py decides when to try the configured key);
- only ``hlc_`` and 43 URL-safe characters is a key, on receipt and on load (anything else
  would, at best, break every later request);
- the file is written crash-safe (private temporary file, fsync, rename, fsync of the
  directory) and never read or written through a symlink;
- a key kept for another server id (the hostname and so the default id changed, or a VM was
  cloned with its state directory) is not sent: the configured key enrolls the new id.
"""

import errno
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ENROLLMENT_FILE = "enrollment.json"
# control/keys.py generate_key(): "hlc_" + secrets.token_urlsafe(32), 43 characters.
AGENT_KEY = re.compile(r"hlc_[A-Za-z0-9_-]{43}", re.ASCII)
# Far more than a server id and a key need; a bigger file is not ours.
MAX_FILE_BYTES = 4096
# Temporary names need only be unguessable: os.urandom, which secrets.token_hex reads, without
# secrets' import of hmac and hashlib (~0.5 MB of OpenSSL state in every agent).
_TOKEN_BYTES = 8
_PRIVATE_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def default_state_dir(environ: Mapping[str, str] = os.environ) -> str:
    """Where the agent keeps state when not told: systemd's StateDirectory, else ~/.local/state."""
    systemd = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return systemd
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "homelab-agent")


def valid_agent_key(value: object) -> bool:
    """Whether ``value`` is a key as control mints them: ``hlc_`` and 43 URL-safe characters."""
    return isinstance(value, str) and AGENT_KEY.fullmatch(value) is not None


class Identity:
    """The key to send now: the one kept for this server id, else the configured one."""

    def __init__(
        self, configured_key: str, state_dir: str | None = None, server_id: str | None = None
    ) -> None:
        if state_dir and not server_id:
            raise ValueError("a state directory needs the server id its key is bound to")
        self._configured = configured_key
        self._server_id = server_id
        self._dir = Path(state_dir) if state_dir else None
        self._lock = threading.Lock()
        self._malformed_logged = False
        self._enrolled = self._load()

    @property
    def key(self) -> str:
        """The key to send with the next heartbeat."""
        with self._lock:
            return self._enrolled or self._configured

    @property
    def configured_key(self) -> str:
        """The key the agent was configured with (the shared key that enrolls)."""
        return self._configured

    @property
    def enrolled(self) -> bool:
        """Whether the agent reports with a key control bound to this server."""
        with self._lock:
            return self._enrolled is not None

    def check_state_dir(self, uid: int | None = None) -> None:
        """Say at start-up what would make the kept key unsafe or lost; never raises.

        An error if the state directory cannot be written (the agent runs on, keeping a key
        in memory only); a warning if another user could tamper with it: writable by group or
        others, or owned by another user than ``uid`` (default: the agent's effective uid).
        """
        if self._dir is None:
            return
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Actually write: a read-only filesystem, a full disk or a foreign owner all show.
            probe = self._dir / f".probe.{os.urandom(_TOKEN_BYTES).hex()}"
            os.close(os.open(probe, _PRIVATE_CREATE, 0o600))
            probe.unlink()
        except OSError as exc:
            log.error(
                "cannot write the state directory %s (%s): a key control binds to this server "
                "at enrollment is kept in memory only and lost at restart (then only an "
                "operator's enrollment reset lets this box report again)",
                self._dir,
                exc.strerror or exc,
            )
        try:
            info = os.stat(self._dir)  # a symlinked directory is fine (systemd DynamicUser)
        except OSError:
            return
        if info.st_mode & 0o022:
            log.warning(
                "the state directory %s is writable by group or others (mode %04o): another "
                "user could replace the kept key; chmod 700 it",
                self._dir,
                stat.S_IMODE(info.st_mode),
            )
        expected = os.geteuid() if uid is None else uid
        if info.st_uid != expected:
            log.warning(
                "the state directory %s is owned by uid %d, not by the agent's user (uid %d): "
                "that user could read or replace the kept key; chown it",
                self._dir,
                info.st_uid,
                expected,
            )

    def accept(self, minted: object) -> bool:
        """Keep the ``agent_key`` control answered with if it is a well-formed key.

        Anything else is ignored and logged (once until a good key comes): a value such as
        ``"hlc_x\\r\\nX: y"`` would make every later request fail. Returns whether it was kept.
        """
        if not valid_agent_key(minted):
            level = logging.DEBUG if self._malformed_logged else logging.ERROR
            self._malformed_logged = True
            log.log(
                level,
                "control's answer carried an agent_key that is not a key (expected hlc_ and 43 "
                "URL-safe characters): ignored; still reporting with the %s key",
                "kept" if self.enrolled else "configured",
            )
            return False
        self._malformed_logged = False
        self.enroll(str(minted))
        return True

    def enroll(self, key: str) -> None:
        """Keep the bound key control minted for this server, on disk (mode 600) and in memory."""
        if not valid_agent_key(key):
            raise ValueError("not an agent key")
        with self._lock:
            replaced = self._enrolled is not None
            self._enrolled = key
        what = (
            "enrolled again: control bound a new key"
            if replaced
            else "enrolled: control bound a key"
        )
        if self._dir is None:
            log.warning("%s to this server, but no state directory: lost at restart", what)
            return
        path = self._dir / ENROLLMENT_FILE
        try:
            self._write(path, key)
        except OSError as exc:
            log.error(
                "%s to server_id=%s, but cannot keep it in %s (%s): kept in memory only, lost "
                "at restart",
                what,
                self._server_id,
                path,
                exc.strerror or exc,
            )
            return
        log.info(
            "%s to server_id=%s%s; kept in %s",
            what,
            self._server_id,
            " (it replaces the kept one)" if replaced else "",
            path,
        )

    def _write(self, path: Path, key: str) -> None:
        """Replace ``path`` crash-safe: the whole new file or the whole old one, never half.

        A private temporary file (created, never opened through a symlink) is flushed to disk
        before the rename, and the directory after it, so a power cut cannot leave an empty or
        missing key. The rename replaces a symlink at ``path`` itself, never its target.
        """
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = json.dumps({"server_id": self._server_id, "agent_key": key}).encode() + b"\n"
        temporary = path.parent / f".{path.name}.{os.urandom(_TOKEN_BYTES).hex()}"
        fd = os.open(temporary, _PRIVATE_CREATE, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)  # whatever the umask
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        try:
            directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            log.warning("kept the key in %s but cannot flush its directory: %s", path, exc)

    def _load(self) -> str | None:
        """The key kept for this server id, or None (nothing kept, or not usable: logged)."""
        if self._dir is None:
            return None
        path = self._dir / ENROLLMENT_FILE
        ignored = "ignored; reporting with the configured key"
        try:
            # O_NOFOLLOW: a symlink planted here must not make the agent read another file;
            # O_NONBLOCK: nor a FIFO hang the start.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None  # nothing kept (check_state_dir says if the directory is unusable)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                log.error("%s is a symlink, not followed: %s", path, ignored)
            else:
                log.error("cannot read %s (%s): %s", path, exc.strerror or exc, ignored)
            return None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                log.error("%s is not a regular file: %s", path, ignored)
                return None
            raw = handle.read(MAX_FILE_BYTES + 1)
        try:
            kept = json.loads(raw) if len(raw) <= MAX_FILE_BYTES else None
        except ValueError:  # not JSON, or not UTF-8
            kept = None
        if (
            not isinstance(kept, dict)
            or not isinstance(kept.get("server_id"), str)
            or not valid_agent_key(kept.get("agent_key"))
        ):
            log.error("%s does not hold a server_id and a well-formed agent_key: %s", path, ignored)
            return None
        if kept["server_id"] != self._server_id:
            log.warning(
                "%s holds the key for server_id %r, not for %r (the hostname changed, or the "
                "state directory was copied from another box?): not sending it; the "
                "configured key enrolls %r",
                path,
                kept["server_id"],
                self._server_id,
                self._server_id,
            )
            return None
        return str(kept["agent_key"])
