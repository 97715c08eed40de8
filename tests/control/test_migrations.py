"""Schema creation at start-up and upgrades of an existing database without losing data."""

from __future__ import annotations

import peewee as pw
from playhouse.migrate import migrate as run_operations

from control import migrations
from control.db import db
from control.migrations import SchemaVersion
from control.models import Server


def test_fresh_database_is_at_latest_version(app):
    assert SchemaVersion.get_by_id(1).version == migrations.LATEST_VERSION
    assert migrations.migrate() == migrations.LATEST_VERSION  # running again changes nothing


def test_old_database_is_upgraded_in_place_keeping_data(app, monkeypatch):
    Server.create(id="keep-me", hostname="keep-me")

    def add_notes_column(migrator):
        run_operations(migrator.add_column("server", "notes", pw.TextField(null=True)))

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, add_notes_column])
    monkeypatch.setattr(migrations, "LATEST_VERSION", migrations.LATEST_VERSION + 1)
    assert migrations.migrate() == migrations.LATEST_VERSION
    columns = {column.name for column in db.get_columns("server")}
    assert "notes" in columns
    assert Server.get_by_id("keep-me").hostname == "keep-me"
    assert SchemaVersion.get_by_id(1).version == migrations.LATEST_VERSION
    db.execute_sql("ALTER TABLE server DROP COLUMN notes")  # leave the shared PG schema as found
    SchemaVersion.update(version=migrations.LATEST_VERSION - 1).execute()
