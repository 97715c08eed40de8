"""Peewee models: the tables control keeps. Times are naive UTC throughout.

Over 300 lines on purpose: the whole schema in one file reads as one picture, and the
migrations compare against it; each model is short and stands alone.
"""

from __future__ import annotations

import datetime as dt
import enum

import peewee as pw

from control.db import db


def utcnow() -> dt.datetime:
    """The current time as naive UTC, the form every timestamp column holds."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(pw.Model):
    """Binds every model to the module-level database proxy."""

    class Meta:
        database = db
        legacy_table_names = False


class ServerStatus(enum.StrEnum):
    """The values of `Server.status`."""

    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"


class ServerHealth(enum.StrEnum):
    """The values of `Server.health` (seed 002), judged by control.fleet.health."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class Server(BaseModel):
    """A box in the fleet: registered by hand or by its first heartbeat."""

    id = pw.CharField(primary_key=True, max_length=100)
    hostname = pw.CharField(max_length=255)
    display_name = pw.CharField(max_length=255, null=True)
    ip_address = pw.CharField(max_length=255, null=True)  # an IP or a DNS name, operator-set
    status = pw.CharField(max_length=16, default=ServerStatus.UNKNOWN, index=True)
    tdp_watts = pw.IntegerField(null=True)
    ssh_port = pw.IntegerField(default=22)
    ssh_user = pw.CharField(max_length=32, null=True)
    os_distribution = pw.CharField(max_length=100, null=True)
    os_version = pw.CharField(max_length=100, null=True)
    kernel_version = pw.CharField(max_length=100, null=True)
    architecture = pw.CharField(max_length=20, null=True)
    agent_version = pw.CharField(max_length=50, null=True)
    metrics_port = pw.IntegerField(null=True)
    last_seen_address = pw.CharField(max_length=45, null=True)
    # Where SSH goes when ip_address is unset: the host name the operator gave, or for a server
    # registered by its heartbeat the address that heartbeat came from. Heartbeats never change
    # it, so a box cannot move SSH commands (its own or another's) by reporting a new name.
    ssh_address = pw.CharField(max_length=255, null=True)
    is_paused = pw.BooleanField(default=False)  # maintenance mode: actions wait for approval
    tags = pw.TextField(null=True)  # JSON list of ^[a-z0-9_]{1,32}$ names; NULL means none
    paused_at = pw.DateTimeField(null=True)
    # Seed 002's inventory, set by the operator: grouping, deployment and a version lock.
    role = pw.CharField(max_length=64, null=True)
    branch = pw.CharField(max_length=64, null=True)
    segment = pw.CharField(max_length=64, null=True)
    update_enabled = pw.BooleanField(default=True)  # false: software-changing actions refused
    version_lock = pw.CharField(max_length=40, null=True)  # the commit the box must run
    metadata = pw.TextField(null=True)  # JSON object, at most 4 KB; NULL means none
    # The latest device-health facts the heartbeats carried (JSON; NULL: never reported).
    current_commit_hash = pw.CharField(max_length=40, null=True)
    containers = pw.TextField(null=True)  # JSON list of {name, image, state, health, ...}
    services = pw.TextField(null=True)  # JSON list of {name, active_state, sub_state}
    packages = pw.TextField(null=True)  # JSON object {upgradable, security, reboot_required}
    # The judged health (control.fleet.health) and why, and the operator's manual state,
    # which holds until cleared.
    health = pw.CharField(max_length=16, default=ServerHealth.UNKNOWN, index=True)
    health_reasons = pw.TextField(null=True)  # JSON list of sentences; NULL means none
    health_changed_at = pw.DateTimeField(null=True)
    manual_health = pw.CharField(max_length=16, null=True)
    manual_health_reason = pw.TextField(null=True)
    manual_health_by = pw.CharField(max_length=100, null=True)
    # Points at the newest MetricsSample so the list view joins once instead of N+1 lookups.
    latest_sample_id = pw.BigIntegerField(null=True)
    last_seen = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    # Bumped by a database trigger on every UPDATE of the row, whoever writes it (see
    # control.migrations.create_row_version_trigger): GET /servers reuses a server's
    # rendered JSON while it is unchanged. Never set it from Python.
    row_version = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])

    class Meta:
        indexes = ((("status", "last_seen"), False),)


class MetricsSample(BaseModel):
    """The metrics summary one heartbeat carried."""

    id = pw.BigAutoField()
    server = pw.ForeignKeyField(Server, backref="samples", on_delete="CASCADE", index=False)
    timestamp = pw.DateTimeField()  # the agent's clock
    received_at = pw.DateTimeField(default=utcnow)  # control's clock
    cpu_percent = pw.FloatField(null=True)
    memory_percent = pw.FloatField(null=True)
    memory_total_mb = pw.BigIntegerField(null=True)
    memory_used_mb = pw.BigIntegerField(null=True)
    disk_percent = pw.FloatField(null=True)
    disk_total_gb = pw.FloatField(null=True)
    disk_used_gb = pw.FloatField(null=True)
    network_rx_bytes = pw.BigIntegerField(null=True)
    network_tx_bytes = pw.BigIntegerField(null=True)
    load_1m = pw.FloatField(null=True)
    load_5m = pw.FloatField(null=True)
    load_15m = pw.FloatField(null=True)
    uptime_seconds = pw.BigIntegerField(null=True)
    temperature = pw.FloatField(null=True)  # °C, the hottest sensor
    containers_running = pw.IntegerField(null=True)
    containers_failed = pw.IntegerField(null=True)

    class Meta:
        indexes = (
            (("server", "received_at"), False),
            (("received_at",), False),
        )


METRIC_FIELDS = (
    "cpu_percent",
    "memory_percent",
    "memory_total_mb",
    "memory_used_mb",
    "disk_percent",
    "disk_total_gb",
    "disk_used_gb",
    "network_rx_bytes",
    "network_tx_bytes",
    "load_1m",
    "load_5m",
    "load_15m",
    "uptime_seconds",
    "temperature",
    "containers_running",
    "containers_failed",
)


class EventSeverity(enum.StrEnum):
    """The values of `Event.severity`, least to most severe."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Event(BaseModel):
    """Something that happened to a server or in control, kept for the event log.

    `server_id` is a plain column, not a foreign key, so a server's history outlives it.
    """

    id = pw.BigAutoField()
    server_id = pw.CharField(max_length=100, null=True)
    type = pw.CharField(max_length=50)
    severity = pw.CharField(max_length=8, default=EventSeverity.INFO)
    message = pw.TextField()
    details = pw.TextField(null=True)  # JSON
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("server_id", "id"), False),
            (("type", "id"), False),
            (("severity", "id"), False),
            (("created_at",), False),
        )


class UpdateKind(enum.StrEnum):
    """What an update record tracks a change of."""

    COMMIT = "commit"
    AGENT = "agent"
    OS = "os"
    KERNEL = "kernel"


class UpdateStatus(enum.StrEnum):
    """The values of `ServerUpdate.update_status` (seed 002's DeviceUpdate)."""

    PENDING = "pending"  # waiting for the post-update health check
    SUCCESS = "success"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class ServerUpdate(BaseModel):
    """A version change a heartbeat revealed: commit, agent, OS version or kernel.

    `server_id` is a plain column, like events: the history outlives the server.
    """

    id = pw.BigAutoField()
    server_id = pw.CharField(max_length=100)
    kind = pw.CharField(max_length=16)
    from_version = pw.CharField(max_length=100)
    to_version = pw.CharField(max_length=100)
    detected_at = pw.DateTimeField()
    check_due_at = pw.DateTimeField()  # when the post-update health check runs
    update_status = pw.CharField(max_length=16, default=UpdateStatus.PENDING)
    health_check_passed = pw.BooleanField(null=True)
    error_message = pw.TextField(null=True)
    checked_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("server_id", "kind", "id"), False),
            (("update_status", "check_due_at"), False),
        )


class ApiKeyScope(enum.StrEnum):
    """The values of `ApiKey.scope`."""

    AGENT = "agent"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ALERTS = "alerts"  # Alertmanager: may only post the webhook


class ApiKey(BaseModel):
    """A stored API key. Only the SHA-256 of the key is kept; the key is shown once."""

    id = pw.AutoField()
    name = pw.CharField(max_length=100, unique=True)
    scope = pw.CharField(max_length=16)
    key_hash = pw.CharField(max_length=64, unique=True)
    prefix = pw.CharField(max_length=16)  # first characters, to recognise a key in `keys list`
    server_id = pw.CharField(max_length=100, null=True)  # agent keys may be bound to one server
    created_at = pw.DateTimeField(default=utcnow)
    revoked_at = pw.DateTimeField(null=True)
    # For a key minted at enrollment: the name of the unbound key that enrolled the server
    # (the enroll rate counts these). NULL for keys made with `homelab-control keys create`.
    issued_by = pw.CharField(max_length=100, null=True)


class ActionStatus(enum.StrEnum):
    """The values of `Action.status`: pending → approved → executing → completed | failed."""

    PENDING = "pending"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"


# An action in one of these may still run; at most one such per (server, type, parameters).
OPEN_ACTION_STATUSES = (ActionStatus.PENDING, ActionStatus.APPROVED, ActionStatus.EXECUTING)


class NeverReusedId(pw.BigAutoField):
    """A BIGINT id never handed out twice, even after the newest row is deleted.

    SQLite's plain INTEGER PRIMARY KEY reuses the highest id once its row is gone; AUTOINCREMENT
    does not. PostgreSQL's sequences never reuse, so the keyword is SQLite's only.
    """

    def ddl(self, ctx: pw.Context) -> pw.NodeList:
        """The column definition, with AUTOINCREMENT on SQLite."""
        node = super().ddl(ctx)
        if isinstance(self.model._meta.database.obj, pw.SqliteDatabase):
            return pw.NodeList((node, pw.SQL("AUTOINCREMENT")))
        return node


class Action(BaseModel):
    """A queued remediation: one whitelisted command for one server, through the approval gate.

    `server_id` is a plain column, not a foreign key: an action's history (and its audit
    entries) outlive the server's deletion, like events do.
    """

    id = NeverReusedId()
    server_id = pw.CharField(max_length=100)
    action_type = pw.CharField(max_length=64)
    parameters = pw.TextField(default="{}")  # canonical JSON (sorted keys) for duplicate checks
    command = pw.TextField()  # the quoted shell command it renders to, for operators to read
    status = pw.CharField(max_length=16, default=ActionStatus.PENDING)
    alert_id = pw.BigIntegerField(null=True)
    created_by = pw.CharField(max_length=100)
    created_at = pw.DateTimeField(default=utcnow)
    approved_by = pw.CharField(max_length=100, null=True)
    approved_at = pw.DateTimeField(null=True)
    rejected_by = pw.CharField(max_length=100, null=True)
    rejected_at = pw.DateTimeField(null=True)
    rejection_reason = pw.TextField(null=True)
    claimed_by = pw.CharField(max_length=100, null=True)  # the dispatcher running it
    executed_at = pw.DateTimeField(null=True)
    completed_at = pw.DateTimeField(null=True)
    exit_code = pw.IntegerField(null=True)
    stdout = pw.TextField(null=True)
    stderr = pw.TextField(null=True)
    failure_reason = pw.TextField(null=True)

    class Meta:
        indexes = (
            (("server_id", "id"), False),
            (("status", "id"), False),
        )


class AuditEntry(BaseModel):
    """One execution attempt (queued action or synchronous call, allowed or refused)."""

    id = pw.BigAutoField()
    created_at = pw.DateTimeField(default=utcnow)
    actor = pw.CharField(max_length=100)  # key name, or "dispatcher"
    scope = pw.CharField(max_length=16, null=True)
    source = pw.CharField(max_length=16)  # "action" or "execute"
    server_id = pw.CharField(max_length=100, null=True)
    action_id = pw.BigIntegerField(null=True)
    action_type = pw.CharField(max_length=64, null=True)
    argv = pw.TextField(null=True)  # JSON list
    allowed = pw.BooleanField()
    result = pw.CharField(max_length=32)  # completed, failed, timeout, ssh_error, refused, ...
    exit_code = pw.IntegerField(null=True)
    duration_ms = pw.IntegerField(null=True)
    detail = pw.TextField(null=True)

    class Meta:
        indexes = (
            (("server_id", "id"), False),
            (("created_at",), False),
        )


class SchedulerLease(BaseModel):
    """The leader row: the scheduler holding it runs the jobs; others stand by."""

    name = pw.CharField(primary_key=True, max_length=50)
    holder = pw.CharField(max_length=64, null=True)
    expires_at = pw.DateTimeField(null=True)


class JobRun(BaseModel):
    """When each scheduler job last ran, visible to every process through the database."""

    job = pw.CharField(primary_key=True, max_length=50)
    last_run_at = pw.DateTimeField()
    last_result = pw.CharField(max_length=16)  # "ok" or "error"
    successes = pw.BigIntegerField(default=0)
    failures = pw.BigIntegerField(default=0)


class AlertStatus(enum.StrEnum):
    """The values of `Alert.status`, as Alertmanager reports them."""

    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(BaseModel):
    """One alert occurrence received from Alertmanager: unique by fingerprint and start time.

    A redelivery updates the row; `server_id` is a plain column (from the `server_id` label),
    so an alert outlives its server like events do.
    """

    id = pw.BigAutoField()
    fingerprint = pw.CharField(max_length=64)
    alertname = pw.CharField(max_length=255)
    status = pw.CharField(max_length=16)  # the alert's own status, never its `status` label
    labels = pw.TextField()  # JSON object
    annotations = pw.TextField()  # JSON object
    starts_at = pw.DateTimeField()
    ends_at = pw.DateTimeField(null=True)
    generator_url = pw.TextField(null=True)
    server_id = pw.CharField(max_length=100, null=True)
    first_received_at = pw.DateTimeField(default=utcnow)
    last_received_at = pw.DateTimeField(default=utcnow)
    received_count = pw.IntegerField(default=1)
    action_id = pw.BigIntegerField(null=True)
    remediation_rule = pw.CharField(max_length=64, null=True)
    remediation = pw.CharField(max_length=16, null=True)  # queued, duplicate, refused
    remediation_detail = pw.TextField(null=True)

    class Meta:
        indexes = (
            (("fingerprint", "starts_at"), True),
            (("status", "id"), False),
            (("server_id", "id"), False),
            (("alertname", "id"), False),
        )


class RateLimitHit(BaseModel):
    """One counted request of one API key: the entries of the per-key moving window.

    In the database rather than in memory so every worker (and every host) on one PostgreSQL
    shares a key's budget. Each check deletes the key's entries older than the window, so a key
    never has more rows than its limit.
    """

    id = pw.BigAutoField()
    bucket = pw.CharField(max_length=16)  # which budget: "actions" or "execute"
    key_name = pw.CharField(max_length=100)
    hit_at = pw.DateTimeField()

    class Meta:
        indexes = ((("bucket", "key_name", "hit_at"), False),)


class NotificationStatus(enum.StrEnum):
    """The values of `Notification.status` (control.notify.sender moves them)."""

    PENDING = "pending"  # waiting for its first attempt, a retry, or an incident's cooldown
    SENT = "sent"  # went out as its own message or as a line of a summary
    FOLDED = "folded"  # went out inside a later message about the same incident
    SUPPRESSED = "suppressed"  # a recovery of an incident that was never announced
    FAILED = "failed"  # every retry failed; given up
    DROPPED = "dropped"  # its channel is no longer configured


class NotificationKind(enum.StrEnum):
    """What a notification says: a problem, its end, an approval to give, or a summary."""

    ALERT = "alert"
    RECOVERY = "recovery"
    APPROVAL = "approval"
    SUMMARY = "summary"


class Notification(BaseModel):
    """The outbox: one message (an event, or an approval) for one channel, until it is sent.

    Written in the same transaction as its event, sent later by the leader's scheduler, so a
    restart loses nothing and a slow channel never delays a request. `channel` is a hash of
    the Apprise URL: the URL holds secrets and is never stored. `key` names the incident (one
    server's health, one action's approval): messages with the same key fold into one, and a
    key stays quiet for `HOMELAB_NOTIFY_COOLDOWN` after a message.
    """

    id = pw.BigAutoField()
    channel = pw.CharField(max_length=16)
    scheme = pw.CharField(max_length=32)  # the URL's scheme: the only part /metrics shows
    kind = pw.CharField(max_length=16)
    key = pw.CharField(max_length=200)
    event_type = pw.CharField(max_length=50)
    severity = pw.CharField(max_length=8)
    server_id = pw.CharField(max_length=100, null=True)
    state = pw.CharField(max_length=50, null=True)  # the health or status it reports, if any
    message = pw.TextField()
    link = pw.TextField(null=True)  # the console page to open
    status = pw.CharField(max_length=16, default=NotificationStatus.PENDING)
    created_at = pw.DateTimeField(default=utcnow)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    attempts = pw.IntegerField(default=0)
    claimed_by = pw.CharField(max_length=100, null=True)
    claimed_until = pw.DateTimeField(null=True)
    last_attempt_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)  # redacted: never a URL's secret
    sent_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("status", "next_attempt_at"), False),
            (("channel", "key", "id"), False),
            (("last_attempt_at",), False),
            (("created_at",), False),
        )


class NotificationTally(BaseModel):
    """Messages sent and attempts failed per channel scheme, for `/metrics` in every process."""

    scheme = pw.CharField(primary_key=True, max_length=32)
    sent = pw.BigIntegerField(default=0)
    failed = pw.BigIntegerField(default=0)


class ConsoleSessionEnd(BaseModel):
    """Console sessions ended before their time: by signing out, or "Sign out everywhere".

    A session (its cookie, and every copy of it) is over when a row names it, or names its
    key, with `ended_at` at or after the session's sign-in. `subject` is an HMAC (keyed with
    the app's secret) of the session's id, or of its key's hash: never an id or key a reader
    of the table could use or guess from. A row is needed only until every session it ends
    would have expired anyway (`expires_at`); the console prunes older ones when it adds one.
    """

    subject = pw.CharField(max_length=64, primary_key=True)
    ended_at = pw.DateTimeField()
    expires_at = pw.DateTimeField(index=True)


ALL_MODELS = [
    Server,
    MetricsSample,
    Event,
    ApiKey,
    Action,
    AuditEntry,
    SchedulerLease,
    JobRun,
    Alert,
    RateLimitHit,
    ServerUpdate,
    Notification,
    NotificationTally,
    ConsoleSessionEnd,
]
