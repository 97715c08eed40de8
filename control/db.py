"""The database handle: one `DatabaseProxy`, bound at start-up from a URL.

SQLite (the embedded default) runs in WAL mode with a busy timeout so concurrent writers queue
instead of failing with "database is locked"; PostgreSQL is used through psycopg2 for scale-out.

Every thread keeps its own connection, so a database fault (a read-only or full disk, a dead
PostgreSQL) is healed per connection: a connection that may be broken is closed after the
error and the thread's next request opens a fresh one. No restart is needed.

Over 300 lines: connection handling and its fault recovery (read-only, full or removed
files, dead PostgreSQL connections) are one concern: each recovery rule depends on how the
connection was opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as connect_url

from control.errors import ConfigError

log = logging.getLogger(__name__)

db = peewee.DatabaseProxy()

# SQLite allows one writer at a time. Left to SQLite, waiting writers poll with sleeps of up to
# 100 ms (its busy handler), which showed as 750 ms p99 heartbeats under 16 concurrent agents.
# Within one process we queue them on a lock instead, which hands over at once; other processes
# (a separate scheduler, the CLI) still wait through busy_timeout. Reentrant, so nested
# write_transaction() calls (savepoints) keep working.
_sqlite_writer = threading.RLock()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",  # WAL + NORMAL is durable across application crashes
    "foreign_keys": 1,
    "busy_timeout": 10_000,
    "cache_size": -16_000,  # 16 MB page cache
}

# SQLite's primary result codes (the low byte of an extended code) for waiting on another
# writer: the connection itself is fine, so it is kept.
SQLITE_BUSY, SQLITE_LOCKED = 5, 6

# Less free space than this on the database's filesystem is a full disk for /health: a WAL
# checkpoint alone may need a few MB, so writes are about to fail (or already do).
DISK_FULL_BELOW = 1 << 20


class FileSqliteDatabase(peewee.SqliteDatabase):
    """SQLite on a file that notices when the file is removed, replaced or made unwritable.

    An open SQLite connection keeps using a deleted file's inode, so without this check writes
    would go on "succeeding" into a file nobody will ever read again. Each request's
    `connect(reuse_if_open=True)` compares the path with the file this thread opened: a missing
    file is an OperationalError (the API answers 503) and never silently creates an empty
    database; a file put back (restored) is reopened, so control recovers without a restart.

    SQLite opens a file it may not write (read-only disk, immutable or chmod'ed file) read-only,
    without an error, and that connection stays read-only after the disk is writable again:
    `connect()` replaces such a connection as soon as the file can be written.
    """

    def __init__(self, path: str, **kwargs):
        super().__init__(path, **kwargs)
        # Per thread: (st_dev, st_ino) of the file opened, and whether it was opened read-only.
        self._opened = threading.local()

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            stat_result = os.stat(self.database)
        except FileNotFoundError:
            return None
        return stat_result.st_dev, stat_result.st_ino

    def _files_writable(self) -> bool:
        """Whether this process may write the database file and its WAL (if there is one).

        os.access, never a test open(): closing any descriptor of the file would drop every
        POSIX lock this process holds on it, SQLite's own included.
        """
        wal = f"{self.database}-wal"
        return os.access(self.database, os.W_OK) and (
            not os.path.exists(wal) or os.access(wal, os.W_OK)
        )

    def _connect(self):
        identity = self._file_identity()
        if identity is None and getattr(self, "_existed", False):
            raise peewee.OperationalError(f"database file {self.database} is missing")
        writable = identity is None or self._files_writable()
        # peewee's stubs omit Database._connect, the hook subclasses override.
        connection = super()._connect()  # type: ignore[misc]
        self._existed = True
        self._opened.identity = self._file_identity()
        # Checked before and after the open, so a fault that starts in between still counts.
        self._opened.read_only = not (writable and self._files_writable())
        return connection

    def connect(self, reuse_if_open: bool = False) -> bool:
        """Connect this thread, first dropping a connection that can no longer be trusted.

        That is one whose file was removed or replaced, or one SQLite opened read-only while
        the file could not be written, once it can be.
        """
        if not self.is_closed() and not self.in_transaction():
            replaced = self._file_identity() != getattr(self._opened, "identity", None)
            stale = getattr(self._opened, "read_only", False) and self._files_writable()
            if replaced or stale:
                self.close()
        return super().connect(reuse_if_open=reuse_if_open)

    def rollback(self) -> None:
        """Roll back this thread's transaction, unless SQLite already has.

        On a full disk or an I/O error SQLite rolls the transaction back itself; a ROLLBACK
        then fails with "cannot rollback - no transaction is active", and that error would
        replace the real one (the disk is full) in the response and in the log.
        """
        if not self.is_closed() and not self.connection().in_transaction:
            return
        super().rollback()

    def savepoint(self):
        """A savepoint whose rollback, too, is skipped once SQLite rolled everything back."""
        return _Savepoint(self)

    def writable_problem(self) -> str | None:
        """Why writes would fail right now (file gone, read-only, disk full), or None.

        Cheap, for every /health: a stat of the filesystem and the files and three PRAGMAs.
        The write probe, which also needs the write lock, is `write_problem()`.
        """
        if self._file_identity() is None:
            return "database file is missing"
        disk = os.statvfs(os.path.dirname(os.path.abspath(self.database)))
        if disk.f_flag & os.ST_RDONLY:
            return "filesystem is read-only"
        # Root may use the blocks ext4 reserves for it; anyone else only what is available.
        free = (disk.f_bfree if os.geteuid() == 0 else disk.f_bavail) * disk.f_frsize
        if free < DISK_FULL_BELOW:
            return f"disk is full ({free // 1024} KiB free)"
        if not self._files_writable():
            return "database file is read-only"
        if self.execute_sql("PRAGMA query_only").fetchone()[0]:
            return "database is read-only"
        pages = self.execute_sql("PRAGMA page_count").fetchone()[0]
        if pages >= self.execute_sql("PRAGMA max_page_count").fetchone()[0]:
            return "database is full"
        return None


class _Savepoint(peewee._savepoint):
    """peewee's savepoint, but with no ROLLBACK TO once the whole transaction is gone."""

    def rollback(self, begin: bool = True) -> None:
        """Roll back to the savepoint, if SQLite has not already rolled back everything."""
        if not self.db.is_closed() and not self.db.connection().in_transaction:
            return  # "no such savepoint" would mask the error that ended the transaction
        super().rollback(begin)


class _ProbeDone(Exception):
    """Raised inside the write probe's transaction to roll it back."""


def write_problem() -> str | None:
    """Why the bound database cannot take writes right now, or None.

    PostgreSQL: a standby, or read-only by configuration (`default_transaction_read_only`).
    SQLite (a file): after the cheap checks (`writable_problem`), a real write: `BEGIN
    IMMEDIATE`, a header field rewritten with its own value, `ROLLBACK`. Nothing reaches the
    disk, but a connection that cannot write (SQLite opened it read-only) fails here, and is
    replaced like after any failed write.
    """
    database = db.obj
    if isinstance(database, peewee.PostgresqlDatabase):
        read_only, standby = db.execute_sql(
            "SELECT current_setting('transaction_read_only'), pg_is_in_recovery()"
        ).fetchone()
        if standby:
            return "database is a read-only standby"
        return "database is read-only" if read_only == "on" else None
    if not isinstance(database, FileSqliteDatabase):
        return None
    problem = database.writable_problem()
    if problem:
        return problem
    try:
        with write_transaction():
            (version,) = db.execute_sql("PRAGMA user_version").fetchone()
            db.execute_sql(f"PRAGMA user_version = {int(version)}")
            raise _ProbeDone
    except _ProbeDone:
        return None
    except peewee.OperationalError as exc:
        return f"cannot write: {exc}"


def _only_waited(error: BaseException) -> bool:
    """Whether a SQLite error only means another writer held the lock too long."""
    original = getattr(error, "orig", error)
    code = getattr(original, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)


def drop_broken_connection(error: BaseException | None = None) -> None:
    """After a database error, close this thread's connection if it may be broken.

    peewee keeps one connection per thread, and a broken one would fail every later request on
    its thread: a PostgreSQL connection after a server restart; a SQLite connection opened
    read-only while the disk was, or left mid-transaction by an I/O error or a full disk.
    Closing it makes the next request open a fresh one. A SQLite connection that only waited
    for another writer is fine and kept (so is an in-memory database, which closing would lose).
    """
    if db.obj is None or db.is_closed():
        return
    if is_sqlite() and (
        not isinstance(db.obj, FileSqliteDatabase) or error is None or _only_waited(error)
    ):
        return
    with contextlib.suppress(peewee.DatabaseError):
        db.close()


def _create_private(path: str) -> None:
    """Create the SQLite file mode 600, before SQLite would create it 644 (umask permitting).

    SQLite gives the -wal and -shm files the database file's mode, so they follow. A file an
    older version created readable by others is tightened, with a warning.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create database file {path}: {exc.strerror}") from None
    else:
        os.close(fd)  # an empty file is an empty SQLite database; no connection is open yet
        return
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
        except OSError:
            continue  # no such file (yet): SQLite creates it with the database file's mode
        if not mode & 0o077:
            continue
        try:
            os.chmod(name, mode & 0o700)
        except OSError as exc:  # not ours to change: say so, and carry on
            log.warning("%s is mode %o, readable by others: %s", name, mode, exc.strerror)
        else:
            log.warning("%s was mode %o, readable by others: now %o", name, mode, mode & 0o700)


def open_database(url: str) -> peewee.Database:
    """Create (not yet connect) a database object for `url`, checking it is usable."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            directory = Path(path).parent
            try:
                # 700 when control creates it: it holds the database (an existing one is kept).
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"HOMELAB_DATA_DIR: cannot create {directory}: {exc}") from None
            _create_private(path)
        kind = peewee.SqliteDatabase if path == ":memory:" else FileSqliteDatabase
        return kind(
            path, pragmas=SQLITE_PRAGMAS, timeout=10, check_same_thread=False, returning_clause=True
        )
    if scheme in {"postgres", "postgresql"}:
        return connect_url(url.replace("postgres://", "postgresql://", 1))
    raise ConfigError(
        f"HOMELAB_DATABASE_URL: unsupported scheme {scheme!r} (use sqlite:/// or postgresql://)"
    )


def bind(database: peewee.Database) -> None:
    """Point the module-level proxy (and so every model) at `database`."""
    db.initialize(database)


def is_sqlite() -> bool:
    """True when the bound database is SQLite (it needs IMMEDIATE transactions for writes)."""
    return isinstance(db.obj, peewee.SqliteDatabase)


@contextlib.contextmanager
def write_transaction() -> Iterator[None]:
    """A transaction for read-then-write work.

    On SQLite it is `BEGIN IMMEDIATE`, which takes the write lock up front; a deferred
    transaction that reads first would fail with SQLITE_BUSY when it tries to upgrade.
    """
    if is_sqlite():
        with _sqlite_writer:
            outermost = db.transaction_depth() == 0
            try:
                with db.atomic("IMMEDIATE"):
                    yield
            except peewee.OperationalError as exc:
                # The disk went read-only or full, or an I/O error: SQLite may have rolled the
                # transaction back itself, or the connection may be read-only for good. Drop it
                # (once the whole transaction is over), so the next request gets a fresh one.
                if outermost:
                    drop_broken_connection(exc)
                raise
    else:
        with db.atomic():
            yield
