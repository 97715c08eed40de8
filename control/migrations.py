"""Schema creation and upgrades, run at every start-up so no one runs a manual step.

The mechanism: a one-row `schema_version` table. A fresh database gets every table from the
current models (plus what models cannot say: the open-action index and the row-version
trigger) and the latest version number. An existing one gets each step in `MIGRATIONS`
above its stored version, in order, inside one transaction. To change the schema: edit the
model, then append a step here that brings an old database to the same shape (with
`playhouse.migrate`), so nobody ever has to delete their data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import peewee as pw
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_operations

from control.db import db, is_sqlite, write_transaction
from control.models import (
    ALL_MODELS,
    Action,
    Alert,
    AuditEntry,
    BaseModel,
    ConsoleSessionEnd,
    MetricsSample,
    Notification,
    NotificationTally,
    RateLimitHit,
    SchedulerLease,
    Server,
    ServerHealth,
    ServerStatus,
    ServerUpdate,
)

log = logging.getLogger(__name__)


class SchemaVersion(BaseModel):
    """The schema version this database has been brought to."""

    id = pw.IntegerField(primary_key=True)
    version = pw.IntegerField()


# At most one open action per (server, type, parameters): the database enforces the 409, so two
# concurrent identical requests cannot both slip past a check-then-insert. Raw SQL because the
# partial index reads the same on SQLite and PostgreSQL.
OPEN_ACTION_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS action_one_open ON action "
    "(server_id, action_type, parameters) "
    "WHERE status IN ('pending', 'approved', 'executing')"
)


# Every UPDATE of a server row bumps its `row_version`, whoever writes it (heartbeats, the
# group-commit writer, the API, the scheduler, the CLI, another worker process, raw SQL), so
# GET /servers can trust a rendered row while its version is unchanged
# (control/api/server_list_cache.py). PostgreSQL sets the new row's value before it is
# written. SQLite cannot change NEW, so it updates the row again after the update; the guard
# lets that second update through without firing again even if recursive triggers were on, and
# bumps past a writer that wrote back an older value (a whole-row save of a stale copy).
PG_ROW_VERSION_TRIGGER = (
    "CREATE OR REPLACE FUNCTION server_row_version_bump() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN NEW.row_version := OLD.row_version + 1; RETURN NEW; END $$",
    'DROP TRIGGER IF EXISTS server_row_version ON "server"',
    'CREATE TRIGGER server_row_version BEFORE UPDATE ON "server" '
    "FOR EACH ROW EXECUTE FUNCTION server_row_version_bump()",
)
SQLITE_ROW_VERSION_TRIGGER = (
    'CREATE TRIGGER IF NOT EXISTS server_row_version AFTER UPDATE ON "server" '
    "FOR EACH ROW WHEN NEW.row_version <= OLD.row_version BEGIN "
    'UPDATE "server" SET row_version = OLD.row_version + 1 WHERE id = NEW.id; END',
)


def create_row_version_trigger() -> None:
    """Install (or replace) the trigger that bumps `server.row_version` on every update."""
    for statement in SQLITE_ROW_VERSION_TRIGGER if is_sqlite() else PG_ROW_VERSION_TRIGGER:
        db.execute_sql(statement)


def _add_not_null_column(table: str, column: str, sql_type: str, default: str) -> None:
    """Add a NOT NULL column with a default in one statement, on either database.

    playhouse's add_column adds such a column as nullable and then rebuilds a SQLite table to
    make it NOT NULL; dropping the old table then cascades into every table with a foreign key
    to it (metrics samples, for `server`). SQLite accepts the constraint with a default in
    ADD COLUMN, so nothing is rebuilt.
    """
    db.execute_sql(
        f'ALTER TABLE "{table}" ADD COLUMN "{column}" {sql_type} NOT NULL DEFAULT {default}'
    )


def _v2_remediation(migrator: SchemaMigrator) -> None:
    """Version 2: maintenance mode on servers, the action queue and the audit log."""
    boolean, false = ("INTEGER", "0") if is_sqlite() else ("BOOLEAN", "FALSE")
    _add_not_null_column("server", "is_paused", boolean, false)  # see there: no table rebuild
    run_operations(migrator.add_column("server", "paused_at", pw.DateTimeField(null=True)))
    db.create_tables([Action, AuditEntry], safe=True)
    db.execute_sql(OPEN_ACTION_INDEX)


def _v3_alerts(migrator: SchemaMigrator) -> None:
    """Version 3: server tags (http_sd labels) and the alerts received from Alertmanager."""
    run_operations(migrator.add_column("server", "tags", pw.TextField(null=True)))
    db.create_tables([Alert], safe=True)


# The action table as version 4 defines it, spelled out rather than read from the live model,
# so this step still builds the same table after later versions add columns to the model.
V4_ACTION_COLUMNS = (
    "id", "server_id", "action_type", "parameters", "command", "status", "alert_id",
    "created_by", "created_at", "approved_by", "approved_at", "rejected_by", "rejected_at",
    "rejection_reason", "claimed_by", "executed_at", "completed_at", "exit_code", "stdout",
    "stderr", "failure_reason",
)  # fmt: skip
V4_SQLITE_ACTION_TABLE = (
    'CREATE TABLE "action" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"server_id" VARCHAR(100) NOT NULL, "action_type" VARCHAR(64) NOT NULL, '
    '"parameters" TEXT NOT NULL, "command" TEXT NOT NULL, "status" VARCHAR(16) NOT NULL, '
    '"alert_id" INTEGER, "created_by" VARCHAR(100) NOT NULL, "created_at" DATETIME NOT NULL, '
    '"approved_by" VARCHAR(100), "approved_at" DATETIME, "rejected_by" VARCHAR(100), '
    '"rejected_at" DATETIME, "rejection_reason" TEXT, "claimed_by" VARCHAR(100), '
    '"executed_at" DATETIME, "completed_at" DATETIME, "exit_code" INTEGER, "stdout" TEXT, '
    '"stderr" TEXT, "failure_reason" TEXT)'
)
V4_ACTION_INDEXES = (
    'CREATE INDEX IF NOT EXISTS "action_server_id_id" ON "action" ("server_id", "id")',
    'CREATE INDEX IF NOT EXISTS "action_status_id" ON "action" ("status", "id")',
    OPEN_ACTION_INDEX,
)


def _v4_actions_outlive_servers(migrator: SchemaMigrator) -> None:
    """Version 4: actions keep their server id as text (no cascade) and never reuse an id."""
    if not is_sqlite():
        # PostgreSQL sequences never reuse ids; only the foreign key goes, whatever its name.
        rows = db.execute_sql(
            "SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'action'::regclass AND contype = 'f'"
        ).fetchall()
        for (name,) in rows:
            db.execute_sql(f'ALTER TABLE "action" DROP CONSTRAINT "{name}"')
        return
    # SQLite can change neither a column's constraints nor its AUTOINCREMENT in place: rebuild
    # the table. Its indexes go with the old table and are made again for the new one.
    columns = ", ".join(f'"{name}"' for name in V4_ACTION_COLUMNS)
    db.execute_sql('ALTER TABLE "action" RENAME TO "action_v3"')
    for (name,) in db.execute_sql(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'action_v3' "
        "AND sql IS NOT NULL"
    ).fetchall():
        db.execute_sql(f'DROP INDEX "{name}"')
    db.execute_sql(V4_SQLITE_ACTION_TABLE)
    db.execute_sql(
        f'INSERT INTO "action" ({columns}) SELECT {columns} FROM "action_v3"'  # noqa: S608
    )
    db.execute_sql('DROP TABLE "action_v3"')
    for statement in V4_ACTION_INDEXES:
        db.execute_sql(statement)


def _v5_enrollment(migrator: SchemaMigrator) -> None:
    """Version 5: who issued each key (enrollment), and room for a DNS name as ip_address."""
    run_operations(
        migrator.add_column("api_key", "issued_by", pw.CharField(max_length=100, null=True))
    )
    if not is_sqlite():  # SQLite does not enforce VARCHAR lengths
        db.execute_sql('ALTER TABLE "server" ALTER COLUMN "ip_address" TYPE VARCHAR(255)')


def _v6_rate_limit_hits(migrator: SchemaMigrator) -> None:
    """Version 6: the per-key rate limit's window in the database, shared by every worker."""
    db.create_tables([RateLimitHit], safe=True)


def _v7_ssh_address(migrator: SchemaMigrator) -> None:
    """Version 7: the SSH address pinned at registration (heartbeats no longer move SSH)."""
    run_operations(
        migrator.add_column("server", "ssh_address", pw.CharField(max_length=255, null=True))
    )
    # Existing servers keep going where they went before, minus the heartbeat address.
    db.execute_sql('UPDATE "server" SET "ssh_address" = "hostname"')


def _v8_device_health(migrator: SchemaMigrator) -> None:
    """Version 8: seed 002's device health: inventory, health, facts, severity and updates."""
    nullable_server_columns = (
        "role", "branch", "segment", "version_lock", "metadata", "current_commit_hash",
        "containers", "services", "packages", "health_reasons", "health_changed_at",
        "manual_health", "manual_health_reason", "manual_health_by",
    )  # fmt: skip
    run_operations(
        *(
            migrator.add_column("server", name, Server._meta.fields[name])
            for name in nullable_server_columns
        ),
        *(
            migrator.add_column("metrics_sample", name, MetricsSample._meta.fields[name])
            for name in ("temperature", "containers_running", "containers_failed")
        ),
    )
    boolean, true = ("INTEGER", "1") if is_sqlite() else ("BOOLEAN", "TRUE")
    _add_not_null_column("server", "update_enabled", boolean, true)
    _add_not_null_column("server", "health", "VARCHAR(16)", f"'{ServerHealth.UNKNOWN}'")
    _add_not_null_column("event", "severity", "VARCHAR(8)", "'info'")
    run_operations(
        migrator.add_index("server", ("health",), False),
        migrator.add_index("event", ("severity", "id"), False),
    )
    # A server already offline is judged offline; the others at their next heartbeat.
    Server.update(health=ServerHealth.OFFLINE).where(
        Server.status == ServerStatus.OFFLINE
    ).execute()
    db.create_tables([ServerUpdate], safe=True)


def _v9_notifications(migrator: SchemaMigrator) -> None:
    """Version 9: the notification outbox and the sent/failed tallies per channel scheme."""
    db.create_tables([Notification, NotificationTally], safe=True)


def _v10_row_version(migrator: SchemaMigrator) -> None:
    """Version 10: `server.row_version`, bumped by a trigger on every update of the row.

    Idempotent, so a database taken back to an older version number with the column and the
    trigger still in place (the migration tests do) comes forward again.
    """
    if "row_version" not in {column.name for column in db.get_columns("server")}:
        _add_not_null_column("server", "row_version", "INTEGER", "0")
    create_row_version_trigger()


def _v11_console_session_ends(migrator: SchemaMigrator) -> None:
    """Version 11: console sessions ended by signing out (or out everywhere) before expiry."""
    db.create_tables([ConsoleSessionEnd], safe=True)


# Each step takes a SchemaMigrator; step N brings version N-1 to version N.
# Version 1 is the initial schema (servers, samples, events, keys, scheduler rows).
MIGRATIONS: list[Callable[[SchemaMigrator], None]] = [
    _v2_remediation,
    _v3_alerts,
    _v4_actions_outlive_servers,
    _v5_enrollment,
    _v6_rate_limit_hits,
    _v7_ssh_address,
    _v8_device_health,
    _v9_notifications,
    _v10_row_version,
    _v11_console_session_ends,
]
LATEST_VERSION = 1 + len(MIGRATIONS)
MIGRATION_LOCK_ID = 0x484F4D45  # arbitrary, constant: "HOME"


def migrate() -> int:
    """Create or upgrade the schema; return the version the database is now at."""
    with write_transaction():
        if not is_sqlite():
            # Serialise concurrent start-ups (API and scheduler processes) on PostgreSQL.
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        db.create_tables([SchemaVersion], safe=True)
        row = SchemaVersion.get_or_none(SchemaVersion.id == 1)
        if row is None:
            db.create_tables(ALL_MODELS, safe=True)
            db.execute_sql(OPEN_ACTION_INDEX)
            create_row_version_trigger()  # the models cannot say it
            SchemaVersion.create(id=1, version=LATEST_VERSION)
            current = LATEST_VERSION
        else:
            current = row.version
            migrator = SchemaMigrator.from_database(db.obj)
            for version in range(current + 1, LATEST_VERSION + 1):
                log.info("migrating schema to version %d", version)
                MIGRATIONS[version - 2](migrator)
                current = version
            if current != row.version:
                SchemaVersion.update(version=current).where(SchemaVersion.id == 1).execute()
        SchedulerLease.insert(name="scheduler").on_conflict_ignore().execute()
    return current
