"""GET /servers' per-row render cache: each server's JSON kept while its row is unchanged.

Listing 10,000 servers costs ~180 ms of CPU when every row is read (55 values each) and
rendered (bench/README.md, "GET /servers at 10,000 servers"); between two polls of a fleet
heartbeating every 60 s, most rows have not changed. So a listing first reads only the page's
keys (`control.fleet.servers.list_server_keys`: id, row version, created_at, newest sample id),
serves each row whose key matches the cached one from its cached JSON, and reads and renders
only the others, both statements in one snapshot (`list_snapshot`). A row's version is bumped
by a database trigger on every update, from any process (control/migrations.py), so a cached
row is never served once the row changed, whoever changed it.

The cache is per process and bounded: a listing of the whole fleet drops the servers no longer
in it, and it never holds more than twice the last whole fleet (at least MIN_CAPACITY), the
longest-cached going first. Any number of request threads share it under one lock.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
from flask import Flask

from control.api.server_schemas import server_rows_to_json
from control.fleet import servers
from control.jsonprovider import OPTIONS

MIN_CAPACITY = 1000
# Where a listed row holds its key, in servers.ROW_KEY_COLUMNS' order: the server's
# row_version and created_at, and the joined sample's id (the first column after the server's)
# for `latest_sample_id`: the same value while the sample exists. A pointer to a missing sample
# (none is left so, see ROW_KEY_COLUMNS) would never match its key: that row is rendered again
# each time, never served stale.
_KEY_AT = (
    servers.SERVER_LIST_COLUMNS.index("row_version"),
    servers.SERVER_LIST_COLUMNS.index("created_at"),
    len(servers.SERVER_LIST_COLUMNS) + servers.SAMPLE_LIST_COLUMNS.index("id"),
)
assert servers.ROW_KEY_COLUMNS == (
    "row_version",
    "created_at",
    "latest_sample_id",
), "_KEY_AT reads list_server_rows' rows in ROW_KEY_COLUMNS' order"
_EXTENSION = "homelab.server_list_cache"

Key = tuple[Any, ...]


class ServerListCache:
    """Rendered servers by id, each with the key it was rendered from; thread-safe."""

    def __init__(self, min_capacity: int = MIN_CAPACITY) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Key, orjson.Fragment]] = {}
        self._min_capacity = min_capacity
        self._capacity = min_capacity

    def __len__(self) -> int:
        return len(self._entries)

    def listing(
        self, filters: dict[str, Any], limit: int | None, offset: int
    ) -> tuple[list[orjson.Fragment], int]:
        """The page GET /servers lists for `filters`/`limit`/`offset`: each server's JSON
        (as orjson fragments, in list order) and how many match in all.

        Byte for byte what rendering every row afresh gives (the tests compare the two).
        """
        keys: list[tuple[Any, ...]] | None = None
        if not self._entries:
            # Nothing cached (a new process): every row is read and rendered anyway, so in
            # one statement, as before there was a cache.
            rows, total = servers.list_server_rows(**filters, limit=limit, offset=offset)
        else:
            with servers.list_snapshot():
                keys, total = servers.list_server_keys(**filters, limit=limit, offset=offset)
                # Checked after the keys were read: an entry rendered from any other state of
                # the row than this snapshot's has another key and is not used.
                fragments, missing = self._cached(keys)
                if not missing:
                    rows = []
                elif len(missing) * 2 > len(keys):
                    # Mostly changed: one scan of the page costs less than thousands of
                    # lookups by id. The same snapshot, so the same rows as the keys.
                    wanted = set(missing)
                    page, _ = servers.list_server_rows(**filters, limit=limit, offset=offset)
                    rows = [row for row in page if row[0] in wanted]
                else:
                    rows = servers.server_rows_by_id(missing)
        whole = offset == 0 and limit is None and all(v is None for v in filters.values())
        listed = rows if keys is None else keys
        if whole:
            # At most twice the fleet: filtered and paged listings of the same servers never
            # evict one another, and nothing is evicted before this listing is stored.
            self._capacity = max(self._min_capacity, 2 * len(listed))
        stored = self._store(rows)
        if keys is None:
            fragments = [stored[row[0]][1] for row in rows]
        elif stored:
            fragments = [
                stored[key[0]][1] if fragment is None else fragment
                for key, fragment in zip(keys, fragments, strict=True)
            ]
        if whole:
            self._drop_unlisted(listed)
        return fragments, total

    def _cached(self, keys: list[tuple[Any, ...]]) -> tuple[list[Any], list[str]]:
        """For each key, the cached JSON if it was rendered from that key, else None; and
        the ids of the others, to read and render."""
        fragments: list[Any] = []
        missing: list[str] = []
        with self._lock:
            get = self._entries.get
            for key in keys:
                entry = get(key[0])
                if entry is not None and entry[0] == key:
                    fragments.append(entry[1])
                else:
                    fragments.append(None)
                    missing.append(key[0])
        return fragments, missing

    def _store(self, rows: list[tuple[Any, ...]]) -> dict[str, tuple[Key, orjson.Fragment]]:
        """Render `rows` (list_server_rows' shape) and cache each under its key; returns
        id → (key, JSON) of these rows."""
        version_at, created_at, sample_at = _KEY_AT
        dumps, fragment = orjson.dumps, orjson.Fragment
        stored = {
            row[0]: (
                (row[0], row[version_at], row[created_at], row[sample_at]),
                fragment(dumps(item, option=OPTIONS)),
            )
            for row, item in zip(rows, server_rows_to_json(rows), strict=True)
        }
        with self._lock:
            self._entries.update(stored)
            excess = len(self._entries) - self._capacity
            if excess > 0:  # the longest-cached first (an update keeps its place)
                for server_id in list(self._entries)[:excess]:
                    del self._entries[server_id]
        return stored

    def _drop_unlisted(self, fleet: list[tuple[Any, ...]]) -> None:
        """After a whole-fleet listing (`fleet`: its rows or keys, id first, all now cached),
        drop every other server: deleted ones."""
        with self._lock:
            if len(self._entries) > len(fleet):
                entries = self._entries
                self._entries = {row[0]: entries[row[0]] for row in fleet if row[0] in entries}


def server_list_cache(app: Flask) -> ServerListCache:
    """The app's cache (one per app, so per process), made on first use."""
    cache = app.extensions.get(_EXTENSION)
    if cache is None:
        cache = app.extensions.setdefault(_EXTENSION, ServerListCache())
    return cache
