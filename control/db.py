"""The database handle: one `DatabaseProxy`, bound at start-up from a URL.

SQLite (the embedded default) runs in WAL mode with a busy timeout so concurrent writers queue
instead of failing with "database is locked"; PostgreSQL is used through psycopg2 for scale-out.
"""

from __future__ import annotations

import contextlib
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
        return peewee.SqliteDatabase(
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
