"""`POST /api/v1/agents/heartbeat`: the agent's check-in (seed 001, device health of seed 002)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, Literal

import marshmallow as ma
import msgspec
import orjson
from flask import Flask, Response, current_app, request
from flask.views import MethodView

from control import context
from control.api.auth import authenticate, require
from control.api.base import Blueprint
from control.api.compiled import FastLoadSchema
from control.api.fields import (
    NO_NUL_PATTERN,
    AgentClock,
    BigInt,
    Float,
    Hostname,
    ServerId,
    Struct,
    Text,
    fullmatch,
)
from control.errors import Forbidden, RateLimited, Unauthorized
from control.fleet import enrollment
from control.fleet.enrollment import EnrollmentPolicy
from control.fleet.heartbeats import IngestRules
from control.keys import Principal

blp = Blueprint(
    "agents",
    __name__,
    url_prefix="/api/v1/agents",
    description="Agent check-ins: heartbeats with metrics and OS facts.",
)


class Lenient(ma.Schema):
    """Ignore fields we do not know, so a newer agent can still talk to an older control."""

    class Meta:
        unknown = ma.EXCLUDE


class OsInfoSchema(Lenient):
    """Operating system facts the agent reports."""

    distribution = Text(100, allow_none=True)
    version = Text(100, allow_none=True)
    kernel = Text(100, allow_none=True)
    architecture = Text(20, allow_none=True)


class MetricsSchema(Lenient):
    """The metrics summary of one heartbeat; every field optional."""

    cpu_percent = Float(0, 100, allow_none=True)
    memory_percent = Float(0, 100, allow_none=True)
    memory_total_mb = BigInt(allow_none=True)
    memory_used_mb = BigInt(allow_none=True)
    disk_percent = Float(0, 100, allow_none=True)
    disk_total_gb = Float(0, 1e12, allow_none=True)
    disk_used_gb = Float(0, 1e12, allow_none=True)
    network_rx_bytes = BigInt(allow_none=True)
    network_tx_bytes = BigInt(allow_none=True)
    load_1m = Float(0, 1e6, allow_none=True)
    load_5m = Float(0, 1e6, allow_none=True)
    load_15m = Float(0, 1e6, allow_none=True)
    uptime_seconds = BigInt(allow_none=True)
    temperature = Float(-50, 200, allow_none=True, metadata={"description": "°C, hottest sensor"})
    containers_running = ma.fields.Integer(
        allow_none=True, strict=True, validate=ma.validate.Range(0, 100000)
    )
    containers_failed = ma.fields.Integer(
        allow_none=True, strict=True, validate=ma.validate.Range(0, 100000)
    )


# The device-health parts of a heartbeat (the wire contract of seed 002), checked by msgspec:
# a heartbeat may carry hundreds of containers, and marshmallow's per-field cost on nested
# objects would dominate the request (see control.api.fields.Struct). msgspec matches patterns
# with `re.search`, so they end in `\\Z`, not `$` (which would let a trailing newline through).
CONTAINER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z"
SERVICE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9@._:\\-]{0,255}\Z"
SUB_STATE_PATTERN = r"^[a-z][a-z-]{0,31}\Z"
COMMIT_HASH_PATTERN = r"^[0-9a-f]{7,40}$"
NO_NUL = NO_NUL_PATTERN.removesuffix("$") + "\\Z"

Count = Annotated[int, msgspec.Meta(ge=0, le=100000)]


class Container(msgspec.Struct):
    """One container of the box's engine; `health`, `exit_code`, `restart_count` null: unknown."""

    name: Annotated[str, msgspec.Meta(pattern=CONTAINER_NAME_PATTERN)]
    image: Annotated[str, msgspec.Meta(max_length=255, pattern=NO_NUL)]
    state: Literal["created", "running", "paused", "restarting", "removing", "exited", "dead"]
    health: Literal["starting", "healthy", "unhealthy"] | None = None
    exit_code: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] | None = None
    restart_count: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)] | None = None


class Service(msgspec.Struct):
    """One systemd unit the operator watches (`--collector.systemd.units`)."""

    name: Annotated[str, msgspec.Meta(pattern=SERVICE_NAME_PATTERN)]
    active_state: Literal[
        "active",
        "reloading",
        "inactive",
        "failed",
        "activating",
        "deactivating",
        "maintenance",
        "refreshing",
    ]
    sub_state: Annotated[str, msgspec.Meta(pattern=SUB_STATE_PATTERN)]


class Packages(msgspec.Struct):
    """The box's pending package upgrades, from the agent's background package check."""

    upgradable: Count
    security: Count
    reboot_required: bool


class HeartbeatSchema(FastLoadSchema, Lenient):
    """Body of POST /agents/heartbeat.

    Checked by the msgspec type compiled from these very fields (control.api.compiled): the
    heartbeat is control's hot path. Marshmallow answers whatever that type refuses, so every
    422 reads as it always did.
    """

    server_id = ServerId(required=True)
    hostname = Hostname(required=True)
    # The agent's clock. One that is no instant, or more than ten years off, is not refused:
    # the sample is stored at control's receive time (fleet.heartbeats.sample_time).
    timestamp = AgentClock(
        required=True,
        metadata={
            "description": "The agent's clock (ISO 8601). A time that is no instant in UTC or "
            "lies more than ten years from control's clock is accepted, and the sample is "
            "stored at control's receive time instead."
        },
    )
    os_info = ma.fields.Nested(OsInfoSchema, allow_none=True)
    metrics = ma.fields.Nested(MetricsSchema, allow_none=True)
    agent_version = Text(50, allow_none=True)
    metrics_port = ma.fields.Integer(
        allow_none=True, strict=True, validate=ma.validate.Range(1, 65535)
    )
    # Device health (seed 002); each omitted when the agent has no source for it, and null is
    # read as omitted, like os_info and metrics: the server keeps what it last reported.
    containers = Struct(
        Annotated[list[Container], msgspec.Meta(max_length=500)],
        allow_none=True,
        metadata={"description": "The containers of the box's engine; [] means none."},
    )
    services = Struct(
        Annotated[list[Service], msgspec.Meta(max_length=256)],
        allow_none=True,
        metadata={"description": "The systemd units the agent watches."},
    )
    packages = Struct(Packages, allow_none=True)
    commit_hash = ma.fields.String(
        allow_none=True,
        validate=fullmatch(COMMIT_HASH_PATTERN, "A lowercase hex commit hash, 7-40 digits."),
        metadata={"description": "The deployed commit of what the box runs."},
    )


class HeartbeatResponseSchema(ma.Schema):
    """What control answers an agent."""

    status = ma.fields.String(metadata={"example": "ok"})
    server_registered = ma.fields.Boolean()
    pending_commands = ma.fields.List(ma.fields.Dict())
    agent_key = ma.fields.String(
        metadata={
            "description": "Only when this heartbeat enrolled the server: a key bound to it, "
            "shown this once. Keep it (mode 600) and send it from now on."
        }
    )


REFUSAL = "homelab.heartbeat_refusal"
"""The WSGI environ key under which the fast path hands a refusal it met to the view."""


def replays_refusal(view: Callable) -> Callable:
    """Decorate the heartbeat view: raise the refusal the fast path met, before anything else.

    The fast path (control.api.heartbeat_wsgi) has already authenticated, validated and called
    the domain, which refused; running them again would count the refusal twice (or enroll
    twice). Raised here, it is answered by the app's error handlers like any other.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refusal = request.environ.pop(REFUSAL, None)
        if refusal is not None:
            raise refusal
        return view(*args, **kwargs)

    return wrapper


HEARTBEAT_SCHEMA = HeartbeatSchema()
"""The one instance both paths load heartbeats with: webargs would otherwise build a new
schema (and its nested ones, with deep copies of every field) for each request, a third of a
heartbeat's CPU time; the compiled msgspec type is built once, on it."""


@blp.route("/heartbeat")
class Heartbeat(MethodView):
    """The heartbeat endpoint.

    Most heartbeats never get here: `control.api.heartbeat_wsgi` answers a well-formed one
    before Flask runs. This view answers the rest (a missing or unknown key, a body to refuse,
    a refusal the fast path met and hands over), so every error reads as everywhere else.
    """

    @replays_refusal
    # A stored key may come from the key ring's memory: ingest checks it in its transaction.
    @require("heartbeat", rechecked=True)
    @blp.arguments(HEARTBEAT_SCHEMA)
    @blp.response(200, HeartbeatResponseSchema)
    @blp.alt_response(429, response="TOO_MANY_REQUESTS", description="enrollment rate limit")
    def post(self, beat):
        """Record a heartbeat: registers the server if new and marks it online"""
        answer = record_heartbeat(
            current_app, beat, authenticate(rechecked=True), request.remote_addr
        )
        return Response(answer, mimetype="application/json")


def record_heartbeat(
    app: Flask, beat: dict[str, Any], caller: Principal, remote_address: str | None
) -> bytes:
    """Accept one validated heartbeat from `caller`; the JSON answer, encoded.

    The one domain call of both heartbeat paths (the view and the fast path), with what a
    refusal does to the key ring and the counters; the refusal itself is raised for the
    caller's error handling.
    """
    ctx = context.of(app)
    policy, rules = _policies(app, ctx)
    try:
        accepted = enrollment.accept_heartbeat(
            beat, caller, policy, remote_address=remote_address, rules=rules
        )
    except Unauthorized:
        # Revoked since the key ring verified it: from now on asked of the database again.
        ctx.keyring.forget(caller.key_hash or "")
        ctx.metrics.auth_failures.labels("invalid").inc()
        raise
    except (Forbidden, RateLimited) as refused:
        # A box probing enrolled ids shows up here, not in the audit log (a flood of
        # refusals must not fill the database).
        reason = "not_bound" if isinstance(refused, Forbidden) else "enroll_rate"
        ctx.metrics.auth_failures.labels(reason).inc()
        raise
    ctx.metrics.heartbeats.inc()
    if accepted.agent_key is None:
        # The usual answer, encoded once: the response schema would only repeat it.
        return _ANSWERS[accepted.registered]
    return orjson.dumps(
        {
            "status": "ok",
            "server_registered": accepted.registered,
            "pending_commands": [],
            "agent_key": accepted.agent_key,
        }
    )


_ANSWERS = {
    registered: orjson.dumps(
        {"status": "ok", "server_registered": registered, "pending_commands": []}
    )
    for registered in (False, True)
}


def _policies(app: Flask, ctx: context.ControlContext) -> tuple[EnrollmentPolicy, IngestRules]:
    """The enrollment policy and ingest rules of this app's settings, built once per app."""
    cached = app.extensions.get(_POLICIES)
    if cached is None or cached[0] is not ctx.settings:
        settings = ctx.settings
        cached = (
            settings,
            EnrollmentPolicy(settings.enrollment, settings.enroll_rate),
            IngestRules.from_settings(settings),
        )
        app.extensions[_POLICIES] = cached
    return cached[1], cached[2]


_POLICIES = "homelab.heartbeat_policies"
