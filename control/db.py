"""The database handle: one `DatabaseProxy`, bound at start-up from a URL.

SQLite (the embedded default) runs in WAL mode with a busy timeout so concurrent writers queue
instead of failing with "database is locked"; PostgreSQL is used through psycopg2 for scale-out.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as connect_url

from control.errors import ConfigError

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


class FileSqliteDatabase(peewee.SqliteDatabase):
    """SQLite on a file that notices when the file is removed or replaced under it.

    An open SQLite connection keeps using a deleted file's inode, so without this check writes
    would go on "succeeding" into a file nobody will ever read again. Each request's
    `connect(reuse_if_open=True)` compares the path with the file this thread opened: a missing
    file is an OperationalError (the API answers 503) and never silently creates an empty
    database; a file put back (restored) is reopened, so control recovers without a restart.
    """

    def __init__(self, path: str, **kwargs):
        super().__init__(path, **kwargs)
        self._opened = threading.local()  # (st_dev, st_ino) of the file each thread opened

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.database)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def _connect(self):
        identity = self._file_identity()
        if identity is None and getattr(self, "_existed", False):
            raise peewee.OperationalError(f"database file {self.database} is missing")
        # peewee's stubs omit Database._connect, the hook subclasses override.
        connection = super()._connect()  # type: ignore[misc]
        self._existed = True
        self._opened.identity = self._file_identity()
        return connection

    def connect(self, reuse_if_open: bool = False) -> bool:
        """Connect this thread, first dropping a connection whose file was removed or replaced."""
        if not self.is_closed() and self._file_identity() != getattr(
            self._opened, "identity", None
        ):
            self.close()
        return super().connect(reuse_if_open=reuse_if_open)

    def writable_problem(self) -> str | None:
        """Why writes would fail right now (read-only, full, file gone), or None."""
        if self._file_identity() is None:
            return "database file is missing"
        if not os.access(self.database, os.W_OK):
            return "database file is read-only"
        if self.execute_sql("PRAGMA query_only").fetchone()[0]:
            return "database is read-only"
        pages = self.execute_sql("PRAGMA page_count").fetchone()[0]
        if pages >= self.execute_sql("PRAGMA max_page_count").fetchone()[0]:
            return "database is full"
        return None


def write_problem() -> str | None:
    """Why the bound database cannot take writes right now, or None (SQLite file only)."""
    database = db.obj
    return database.writable_problem() if isinstance(database, FileSqliteDatabase) else None


def drop_broken_connection() -> None:
    """After a database error, close this thread's connection if it may be dead.

    peewee keeps one connection per thread; after a PostgreSQL restart it is dead and every
    later request on the thread would fail. Closing it makes the next request reconnect.
    SQLite connections survive errors (and carry per-connection state), so they are kept.
    """
    if db.obj is None or is_sqlite() or db.is_closed():
        return
    with contextlib.suppress(peewee.DatabaseError):
        db.close()


def open_database(url: str) -> peewee.Database:
    """Create (not yet connect) a database object for `url`, checking it is usable."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            directory = Path(path).parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"HOMELAB_DATA_DIR: cannot create {directory}: {exc}") from None
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
        with _sqlite_writer, db.atomic("IMMEDIATE"):
            yield
    else:
        with db.atomic():
            yield
