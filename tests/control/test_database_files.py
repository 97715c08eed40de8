"""The SQLite database is private: its data dir 700 when control creates it, its files 600.

SQLite only, on purpose: file modes are SQLite's alone, so these tests build their own
`sqlite:///` data dir rather than taking the parametrized `app`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.config import load_settings

pytestmark = pytest.mark.api

OPERATOR, AGENT = "files-operator-key", "files-agent-key"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask 022, under which SQLite alone would create its files 644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def start(data_dir: Path):
    """Build the app on a SQLite file in `data_dir` and send one heartbeat (WAL and SHM exist)."""
    from control.app import create_app

    app = create_app(
        load_settings(environ={}, data_dir=str(data_dir), operator_key=OPERATOR, agent_key=AGENT)
    )
    beat = {"server_id": "box", "hostname": "box", "timestamp": "2026-01-01T00:00:00Z"}
    response = app.test_client().post(
        "/api/v1/agents/heartbeat", json=beat, headers={"X-API-Key": AGENT}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return app


@pytest.fixture
def close_database() -> Iterator[None]:
    yield
    from control.db import db

    db.close()


def test_new_data_dir_is_700_and_database_files_600(tmp_path, open_umask, close_database):
    data_dir = tmp_path / "fresh" / "data"
    start(data_dir)
    assert mode(data_dir) == 0o700
    files = [data_dir / name for name in ("homelab.db", "homelab.db-wal", "homelab.db-shm")]
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}


def test_existing_data_dir_keeps_its_mode(tmp_path, open_umask, close_database):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o750)
    data_dir.chmod(0o750)
    start(data_dir)
    assert mode(data_dir) == 0o750  # the operator's choice
    assert mode(data_dir / "homelab.db") == 0o600


def test_database_an_older_version_left_readable_is_tightened(
    tmp_path, open_umask, close_database, caplog
):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = data_dir / "homelab.db"
    older = sqlite3.connect(database)  # as SQLite alone creates it: 644 under umask 022
    older.execute("PRAGMA journal_mode = wal")
    older.close()
    assert mode(database) == 0o644
    with caplog.at_level(logging.WARNING, logger="control.db"):
        start(data_dir)
    assert mode(database) == 0o600
    assert mode(data_dir / "homelab.db-wal") == 0o600
    assert "readable by others" in caplog.text
