"""`/api/v1/servers`: register, list, read, update and delete servers (seed 000)."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import current_app
from flask.views import MethodView

from control.api.auth import authenticate, require
from control.api.base import Blueprint
from control.api.fields import (
    SSH_USER_PATTERN,
    HostAddress,
    Hostname,
    OneOf,
    ServerId,
    Tag,
    Text,
    UtcDateTime,
    fullmatch,
)
from control.api.paging import WholeListQuerySchema, page, page_schema
from control.fleet import enrollment, maintenance, servers, targets
from control.models import METRIC_FIELDS, ServerStatus

MAX_TAGS = 16


def _unique(tags: list[str]) -> None:
    if len(set(tags)) != len(tags):
        raise ma.ValidationError("Tags must be unique.")


blp = Blueprint(
    "servers",
    __name__,
    url_prefix="/api/v1/servers",
    description="Servers in the fleet: registration, inventory, status.",
)


class ServerFields(ma.Schema):
    """The fields an operator may set on a server."""

    hostname = Hostname()
    display_name = Text(255, allow_none=True)
    ip_address = HostAddress(allow_none=True)
    tdp_watts = ma.fields.Integer(
        allow_none=True, strict=True, validate=ma.validate.Range(0, 10000)
    )
    ssh_port = ma.fields.Integer(strict=True, validate=ma.validate.Range(1, 65535))
    ssh_user = ma.fields.String(
        allow_none=True,
        validate=fullmatch(
            SSH_USER_PATTERN, "A POSIX user name: lowercase letter or '_' first, up to 32 chars."
        ),
    )
    tags = ma.fields.List(
        Tag(),
        validate=[ma.validate.Length(max=MAX_TAGS), _unique],
        metadata={
            "description": 'Become Prometheus target labels tag_<name>="true".',
            "uniqueItems": True,
        },
    )


class ServerCreateSchema(ServerFields):
    """Body of POST /servers."""

    id = ServerId(required=True)
    hostname = Hostname(required=True)


class ServerUpdateSchema(ServerFields):
    """Body of PUT /servers/{id}: every field optional; an empty body changes nothing."""


class LatestMetricsSchema(ma.Schema):
    """The newest metrics sample a server's heartbeats carried."""

    timestamp = UtcDateTime()
    received_at = UtcDateTime()
    cpu_percent = ma.fields.Float()
    memory_percent = ma.fields.Float()
    disk_percent = ma.fields.Float()
    memory_total_mb = ma.fields.Integer()
    memory_used_mb = ma.fields.Integer()
    disk_total_gb = ma.fields.Float()
    disk_used_gb = ma.fields.Float()
    network_rx_bytes = ma.fields.Integer()
    network_tx_bytes = ma.fields.Integer()
    load_1m = ma.fields.Float()
    load_5m = ma.fields.Float()
    load_15m = ma.fields.Float()
    uptime_seconds = ma.fields.Integer()
    temperature = ma.fields.Float(metadata={"description": "°C, the hottest sensor"})
    containers_running = ma.fields.Integer()
    containers_failed = ma.fields.Integer()


assert set(METRIC_FIELDS) <= set(LatestMetricsSchema._declared_fields)


class ServerSchema(ma.Schema):
    """A server as the API returns it."""

    id = ma.fields.String()
    hostname = ma.fields.String()
    display_name = ma.fields.String(allow_none=True)
    ip_address = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"enum": list(ServerStatus)})
    tdp_watts = ma.fields.Integer(allow_none=True)
    ssh_port = ma.fields.Integer()
    ssh_user = ma.fields.String(allow_none=True)
    ssh_address = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "Where SSH goes when ip_address is unset (read-only): the hostname "
            "the operator gave, or the address the registering heartbeat came from. "
            "Heartbeats never change it."
        },
    )
    os_distribution = ma.fields.String(allow_none=True)
    os_version = ma.fields.String(allow_none=True)
    kernel_version = ma.fields.String(allow_none=True)
    architecture = ma.fields.String(allow_none=True)
    agent_version = ma.fields.String(allow_none=True)
    metrics_port = ma.fields.Integer(allow_none=True)
    tags = ma.fields.Function(
        targets.server_tags, metadata={"type": "array", "items": {"type": "string"}}
    )
    is_paused = ma.fields.Boolean()
    paused_at = UtcDateTime(allow_none=True)
    last_seen = UtcDateTime(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    latest_metrics = ma.fields.Method(
        "_latest_metrics", allow_none=True, metadata={"type": "object"}
    )

    def _latest_metrics(self, server):
        sample = getattr(server, "latest_sample", None)
        if sample is None or sample.id is None:
            return None
        return LatestMetricsSchema().dump(sample)


def _iso(value) -> str | None:
    """UtcDateTime's output for a naive-UTC time, from a datetime or SQLite's stored text.

    SQLite keeps `YYYY-MM-DD HH:MM:SS[.ffffff]`; slicing it is much cheaper than parsing.
    """
    if value is None:
        return None
    if isinstance(value, str):
        fraction = value[20:23].ljust(3, "0") if len(value) > 19 else "000"
        return f"{value[:10]}T{value[11:19]}.{fraction}Z"
    return value.isoformat(timespec="milliseconds") + "Z"


_SERVER_TIMES = {"paused_at", "last_seen", "created_at", "updated_at"}
_SAMPLE_TIMES = {"timestamp", "received_at"}


def server_rows_to_json(rows: list[tuple]) -> list[dict[str, Any]]:
    """Servers as GET /servers returns them, built straight from `list_server_rows` tuples.

    Dumping 10,000 servers through ServerSchema took ~1.6 s; this builds the same JSON (a test
    compares the two) in a fraction of that. ServerSchema stays the documented shape.
    """
    server_count = len(servers.SERVER_LIST_COLUMNS)
    items = []
    for row in rows:
        server = dict(zip(servers.SERVER_LIST_COLUMNS, row[:server_count], strict=True))
        for key in _SERVER_TIMES:
            server[key] = _iso(server[key])
        server["tags"] = json.loads(server["tags"]) if server["tags"] else []
        server["is_paused"] = bool(server["is_paused"])
        sample = dict(zip(servers.SAMPLE_LIST_COLUMNS, row[server_count:], strict=True))
        if sample.pop("id") is None:
            server["latest_metrics"] = None
        else:
            for key in _SAMPLE_TIMES:
                sample[key] = _iso(sample[key])
            server["latest_metrics"] = sample
        items.append(server)
    return items


ServerPageSchema = page_schema("servers", ServerSchema, "ServerPageSchema")


class ServerQuerySchema(WholeListQuerySchema):
    """Filters for GET /servers; without `limit` the whole fleet (seed 000 clients expect it)."""

    status = OneOf(ServerStatus)
    tag = Tag()


@blp.route("")
class Servers(MethodView):
    """The collection of servers."""

    @require("read")
    @blp.arguments(ServerQuerySchema, location="query")
    @blp.response(200, ServerPageSchema)
    def get(self, query):
        """List servers with their latest metrics; filter by status and tag; page if asked"""
        rows, total = servers.list_server_rows(**query)
        # Built by hand for speed (see server_rows_to_json), so returned as a ready response.
        body = page("servers", (server_rows_to_json(rows), total), query)
        return current_app.json.response(body)

    @require("write")
    @blp.arguments(ServerCreateSchema)
    @blp.response(201, ServerSchema)
    @blp.alt_response(409, response="CONFLICT", description="the id is taken")
    def post(self, body):
        """Register a server (status `unknown` until its first heartbeat)"""
        return servers.register_server(body)


@blp.route("/<string:server_id>")
class ServerById(MethodView):
    """One server."""

    @require("read")
    @blp.response(200, ServerSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, server_id):
        """Get a server with its latest metrics"""
        return servers.get_server(server_id)

    @require("write")
    @blp.arguments(ServerUpdateSchema)
    @blp.response(200, ServerSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def put(self, body, server_id):
        """Update a server's settings (only the fields given)"""
        return servers.update_server(server_id, body)

    @require("write")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, server_id):
        """Delete a server and its metrics history"""
        servers.delete_server(server_id)


@blp.route("/<string:server_id>/pause")
class PauseServer(MethodView):
    """Maintenance mode on."""

    @require("write")
    @blp.response(200, ServerSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def put(self, server_id):
        """Pause a server: its new actions wait for approval"""
        return maintenance.set_paused(server_id, True, authenticate().name)


@blp.route("/<string:server_id>/unpause")
class UnpauseServer(MethodView):
    """Maintenance mode off."""

    @require("write")
    @blp.response(200, ServerSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def put(self, server_id):
        """Unpause a server: new actions are auto-approved again"""
        return maintenance.set_paused(server_id, False, authenticate().name)


class EnrollmentResetSchema(ma.Schema):
    """What resetting a server's enrollment did."""

    server_id = ma.fields.String()
    revoked_keys = ma.fields.Integer(metadata={"description": "bound agent keys revoked"})


@blp.route("/<string:server_id>/enrollment/reset")
class ResetEnrollment(MethodView):
    """A server's agent identity."""

    @require("write")
    @blp.response(200, EnrollmentResetSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, server_id):
        """Revoke the server's bound agent keys so its agent can enroll again (audited)"""
        revoked = enrollment.reset_enrollment(server_id, authenticate().name)
        return {"server_id": server_id, "revoked_keys": revoked}
