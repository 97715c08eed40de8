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
    from control.models import Action, AuditEntry, MetricsSample

    Server.create(id="old", hostname="old")
    MetricsSample.create(server="old", timestamp="2026-01-01 00:00:00", cpu_percent=1.0)
    _drop_version_3_schema()
    db.drop_tables([Action, AuditEntry])
    db.execute_sql("ALTER TABLE server DROP COLUMN is_paused")
    db.execute_sql("ALTER TABLE server DROP COLUMN paused_at")
    SchemaVersion.update(version=1).execute()

    assert migrations.migrate() == migrations.LATEST_VERSION
    columns = {column.name for column in db.get_columns("server")}
    assert {"is_paused", "paused_at"} <= columns
    assert Server.get_by_id("old").is_paused is False
    # Adding NOT NULL columns must not rebuild `server` (the drop would cascade to samples).
    assert MetricsSample.select().count() == 1
    assert Action.select().count() == 0 and AuditEntry.select().count() == 0
    indexes = {index.name for index in db.get_indexes("action")}
    assert "action_one_open" in indexes


V8_SERVER_COLUMNS = (
    "role", "branch", "segment", "update_enabled", "version_lock", "metadata",
    "current_commit_hash", "containers", "services", "packages", "health", "health_reasons",
    "health_changed_at", "manual_health", "manual_health_reason", "manual_health_by",
)  # fmt: skip


def _drop_version_9_schema() -> None:
    """Take a current database back to the version-8 shape: no notification outbox."""
    from control.models import Notification, NotificationTally

    db.drop_tables([Notification, NotificationTally])
    SchemaVersion.update(version=8).execute()


def _drop_version_8_schema() -> None:
    """Take a current database back to the version-7 shape: no device health."""
    from control.models import ServerUpdate

    _drop_version_9_schema()
    db.execute_sql('DROP INDEX "server_health"')
    db.execute_sql('DROP INDEX "event_severity_id"')
    for column in V8_SERVER_COLUMNS:
        db.execute_sql(f'ALTER TABLE server DROP COLUMN "{column}"')
    for column in ("temperature", "containers_running", "containers_failed"):
        db.execute_sql(f'ALTER TABLE metrics_sample DROP COLUMN "{column}"')
    db.execute_sql('ALTER TABLE event DROP COLUMN "severity"')
    db.drop_tables([ServerUpdate])
    SchemaVersion.update(version=7).execute()


def _drop_version_7_schema() -> None:
    """Take a current database back to the version-6 shape: no pinned SSH address."""
    _drop_version_8_schema()
    db.execute_sql("ALTER TABLE server DROP COLUMN ssh_address")
    SchemaVersion.update(version=6).execute()


def _drop_version_6_schema() -> None:
    """Take a current database back to the version-5 shape: no rate limit table."""
    from control.models import RateLimitHit

    _drop_version_7_schema()
    db.drop_tables([RateLimitHit])
    SchemaVersion.update(version=5).execute()


def _drop_version_5_schema() -> None:
    """Take a current database back to the version-4 shape: keys without `issued_by`."""
    _drop_version_6_schema()
    db.execute_sql("ALTER TABLE api_key DROP COLUMN issued_by")
    SchemaVersion.update(version=4).execute()


def _drop_version_3_schema() -> None:
    """Take a current database back to the version-2 shape: no server tags, no alert table."""
    from control.models import Alert

    _drop_version_5_schema()
    db.drop_tables([Alert])
    db.execute_sql("ALTER TABLE server DROP COLUMN tags")
    SchemaVersion.update(version=2).execute()


def test_version_2_database_gains_tags_and_the_alert_table(app):
    from control.models import Action, Alert

    Server.create(id="old", hostname="old", is_paused=True)
    Action.create(server_id="old", action_type="clear_logs", command="journalctl", created_by="me")
    _drop_version_3_schema()
    assert "tags" not in {column.name for column in db.get_columns("server")}

    assert migrations.migrate() == migrations.LATEST_VERSION == 11
    assert "tags" in {column.name for column in db.get_columns("server")}
    old = Server.get_by_id("old")
    assert (old.tags, old.is_paused) == (None, True)
    assert Action.select().count() == 1
    assert Alert.select().count() == 0
    indexes = {tuple(index.columns): index.unique for index in db.get_indexes("alert")}
    assert indexes[("fingerprint", "starts_at")] is True


def _restore_version_3_action_table() -> None:
    """Give the action table its version-3 shape: a cascading foreign key to the server and,
    on SQLite, a plain INTEGER PRIMARY KEY (which hands the highest id out again)."""
    from control.db import is_sqlite
    from control.models import Action

    _drop_version_5_schema()
    if is_sqlite():
        create = Action._schema._create_table(safe=False).query()[0]
        create = create.replace(" AUTOINCREMENT", "").replace(
            '"server_id" VARCHAR(100) NOT NULL',
            '"server_id" VARCHAR(100) NOT NULL REFERENCES "server" ("id") ON DELETE CASCADE',
        )
        db.drop_tables([Action])
        db.execute_sql(create)
        Action._schema.create_indexes(safe=True)
        db.execute_sql(migrations.OPEN_ACTION_INDEX)
    else:
        # Not the name PostgreSQL would give it: the step must find the key, not guess it.
        db.execute_sql(
            'ALTER TABLE "action" ADD CONSTRAINT "some_older_name" FOREIGN KEY '
            '("server_id") REFERENCES "server" ("id") ON DELETE CASCADE'
        )
    SchemaVersion.update(version=3).execute()


def test_version_3_actions_outlive_their_server_and_never_reuse_an_id(app):
    from control.fleet import servers
    from control.models import Action

    Server.create(id="old", hostname="old")
    _restore_version_3_action_table()
    kept = Action.create(
        server_id="old", action_type="clear_logs", command="journalctl", created_by="me"
    )
    newest = Action.create(
        server_id="old", action_type="reboot", command="reboot", created_by="me", status="failed"
    )

    assert migrations.migrate() == migrations.LATEST_VERSION
    assert [a.id for a in Action.select().order_by(Action.id)] == [kept.id, newest.id]
    indexes = {index.name for index in db.get_indexes("action")}
    assert {"action_one_open", "action_server_id_id", "action_status_id"} <= indexes

    servers.delete_server("old")
    assert Action.select().count() == 2  # the history stays
    assert Action.get_by_id(kept.id).status == "failed"  # it can never run now
    newest.delete_instance()
    again = Action.create(
        server_id="new", action_type="clear_logs", command="journalctl", created_by="me"
    )
    assert again.id > newest.id


def test_version_4_keys_gain_issued_by_and_servers_room_for_a_dns_name(app):
    from control.keys import create_key
    from control.models import ApiKey

    _, old = create_key("agent", name="old-agent")
    _drop_version_5_schema()
    assert migrations.migrate() == migrations.LATEST_VERSION
    assert ApiKey.get_by_id(old.id).issued_by is None
    name = "box-" + "a" * 60 + "." + "b" * 60 + ".lan"  # longer than the old 45 characters
    Server.create(id="named", hostname="named", ip_address=name)
    assert Server.get_by_id("named").ip_address == name


def test_version_5_database_gains_the_rate_limit_table_keeping_its_data(app):
    from control.keys import create_key
    from control.models import ApiKey, RateLimitHit, utcnow
    from control.remediation.ratelimit import KeyRateLimiter

    Server.create(id="old", hostname="old")
    _, key = create_key("operator", name="old-operator")
    _drop_version_6_schema()
    assert "rate_limit_hit" not in db.get_tables()

    assert migrations.migrate() == migrations.LATEST_VERSION == 11
    assert "rate_limit_hit" in db.get_tables()
    indexes = {tuple(index.columns) for index in db.get_indexes("rate_limit_hit")}
    assert ("bucket", "key_name", "hit_at") in indexes
    assert Server.get_by_id("old").hostname == "old"
    assert ApiKey.get_by_id(key.id).name == "old-operator"
    KeyRateLimiter(1).hit("old-operator", "actions", now=utcnow())
    assert RateLimitHit.select().count() == 1


def test_version_6_servers_gain_a_pinned_ssh_address_from_their_hostname(app):
    Server.create(id="old", hostname="old.lan", last_seen_address="10.6.6.6")
    _drop_version_7_schema()
    assert migrations.migrate() == migrations.LATEST_VERSION
    assert Server.get_by_id("old").ssh_address == "old.lan"  # never the heartbeat address


def test_version_7_servers_gain_device_health_keeping_their_data(app):
    from control.models import Event, MetricsSample, ServerHealth, ServerUpdate

    Server.create(id="up", hostname="up", status="online")
    Server.create(id="down", hostname="down", status="offline")
    MetricsSample.create(server="up", timestamp="2026-01-01 00:00:00", cpu_percent=5.0)
    Event.create(type="status_changed", message="m")
    _drop_version_8_schema()
    assert migrations.migrate() == migrations.LATEST_VERSION
    assert Server.get_by_id("up").health == ServerHealth.UNKNOWN
    assert Server.get_by_id("down").health == ServerHealth.OFFLINE  # judged at once
    assert Server.get_by_id("up").update_enabled is True
    assert MetricsSample.get().cpu_percent == 5.0 and MetricsSample.get().temperature is None
    assert Event.get().severity == "info"
    assert ServerUpdate.select().count() == 0
    assert "server_health" in {index.name for index in db.get_indexes("server")}


def test_version_8_database_gains_the_notification_outbox_keeping_its_data(app):
    from control.models import Event, Notification, NotificationTally

    Server.create(id="up", hostname="up", status="online", health="degraded")
    Event.create(type="health_changed", severity="warning", message="m")
    _drop_version_9_schema()
    assert "notification" not in db.get_tables()

    assert migrations.migrate() == migrations.LATEST_VERSION == 11
    assert {"notification", "notification_tally"} <= set(db.get_tables())
    indexes = {tuple(index.columns) for index in db.get_indexes("notification")}
    assert ("status", "next_attempt_at") in indexes and ("channel", "key", "id") in indexes
    assert Server.get_by_id("up").health == "degraded"
    assert Event.get().severity == "warning"
    row = Notification.create(
        channel="0123456789abcdef", scheme="json", kind="alert", key="server:up",
        event_type="health_changed", severity="warning", message="m",
    )  # fmt: skip
    assert (row.status, row.attempts) == ("pending", 0)
    assert NotificationTally.select().count() == 0
