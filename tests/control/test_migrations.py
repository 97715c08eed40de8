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


def test_version_1_database_gains_the_remediation_schema(app):
    """Rebuild a version-1 shape (no pause columns, no action/audit tables), then migrate."""
    from control.models import Action, AuditEntry

    Server.create(id="old", hostname="old")
    _drop_version_3_schema()
    db.drop_tables([Action, AuditEntry])
    db.execute_sql("ALTER TABLE server DROP COLUMN is_paused")
    db.execute_sql("ALTER TABLE server DROP COLUMN paused_at")
    SchemaVersion.update(version=1).execute()

    assert migrations.migrate() == migrations.LATEST_VERSION
    columns = {column.name for column in db.get_columns("server")}
    assert {"is_paused", "paused_at"} <= columns
    assert Server.get_by_id("old").is_paused is False
    assert Action.select().count() == 0 and AuditEntry.select().count() == 0
    indexes = {index.name for index in db.get_indexes("action")}
    assert "action_one_open" in indexes


def _drop_version_3_schema() -> None:
    """Take a current database back to the version-2 shape: no server tags, no alert table."""
    from control.models import Alert

    db.drop_tables([Alert])
    db.execute_sql("ALTER TABLE server DROP COLUMN tags")
    SchemaVersion.update(version=2).execute()


def test_version_2_database_gains_tags_and_the_alert_table(app):
    from control.models import Action, Alert

    Server.create(id="old", hostname="old", is_paused=True)
    Action.create(server="old", action_type="clear_logs", command="journalctl", created_by="me")
    _drop_version_3_schema()
    assert "tags" not in {column.name for column in db.get_columns("server")}

    assert migrations.migrate() == migrations.LATEST_VERSION == 3
    assert "tags" in {column.name for column in db.get_columns("server")}
    old = Server.get_by_id("old")
    assert (old.tags, old.is_paused) == (None, True)
    assert Action.select().count() == 1
    assert Alert.select().count() == 0
    indexes = {tuple(index.columns): index.unique for index in db.get_indexes("alert")}
    assert indexes[("fingerprint", "starts_at")] is True
