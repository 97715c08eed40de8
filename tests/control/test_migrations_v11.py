"""Schema version 11: a version-10 database gains the console's ended-session table, keeping
its data, and the console's sign-out works on it at once."""

from __future__ import annotations

from control import keys, migrations
from control.db import db
from control.migrations import SchemaVersion
from control.models import ApiKey, ConsoleSessionEnd, Server
from tests.conftest import OPERATOR_KEY
from tests.console import ConsolePages


def _drop_version_11_schema() -> None:
    """Take a current database back to the version-10 shape: no ended console sessions."""
    db.drop_tables([ConsoleSessionEnd])
    SchemaVersion.update(version=10).execute()


def test_version_11_is_the_latest():
    assert migrations.LATEST_VERSION == 11
    assert migrations.MIGRATIONS[11 - 2] is migrations._v11_console_session_ends


def test_version_10_database_gains_the_ended_sessions_table_keeping_its_data(app):
    with app.app_context():
        Server.create(id="kept", hostname="kept.lan")
        keys.create_key("operator", name="alice")
        fresh_indexes = {
            (tuple(index.columns), index.unique) for index in db.get_indexes("console_session_end")
        }
        _drop_version_11_schema()
        assert "console_session_end" not in db.get_tables()

        assert migrations.migrate() == 11
        assert SchemaVersion.get_by_id(1).version == 11
        assert "console_session_end" in db.get_tables()
        columns = {column.name for column in db.get_columns("console_session_end")}
        assert columns == {"subject", "ended_at", "expires_at"}
        indexes = {
            (tuple(index.columns), index.unique) for index in db.get_indexes("console_session_end")
        }
        assert indexes == fresh_indexes  # the same shape a fresh database gets
        assert (("expires_at",), False) in indexes  # pruning on every sign-out is indexed
        assert Server.get_by_id("kept").hostname == "kept.lan"
        assert ApiKey.get(ApiKey.name == "alice").revoked_at is None
        assert migrations.migrate() == 11  # running again changes nothing


def test_sign_out_works_on_a_migrated_database(app, client):
    with app.app_context():
        _drop_version_11_schema()
        assert migrations.migrate() == 11
    pages = ConsolePages(client)
    pages.sign_in(OPERATOR_KEY)
    pages.page("/ui/")
    assert pages.post("/ui/logout").status_code == 303
    with app.app_context():
        assert ConsoleSessionEnd.select().count() == 1
