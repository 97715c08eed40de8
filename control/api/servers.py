"""`/api/v1/servers`: register, list, read, update and delete servers (seed 000), with seed
002's inventory, device-health facts, manual health state and update history. The schemas
are in control/api/server_schemas.py.
"""

from __future__ import annotations

import marshmallow as ma
from flask import current_app
from flask.views import MethodView

from control import context
from control.api.auth import authenticate, require
from control.api.base import Blueprint
from control.api.paging import PageQuerySchema, page
from control.api.server_list_cache import server_list_cache
from control.api.server_schemas import (
    ManualHealthSchema,
    ServerCreateSchema,
    ServerDetailSchema,
    ServerPageSchema,
    ServerQuerySchema,
    ServerUpdateSchema,
    UpdatePageSchema,
)
from control.fleet import enrollment, maintenance, servers, updates
from control.fleet.health import Thresholds

blp = Blueprint(
    "servers",
    __name__,
    url_prefix="/api/v1/servers",
    description="Servers in the fleet: registration, inventory, status.",
)


def _thresholds() -> Thresholds:
    """The health thresholds this app is configured with."""
    return Thresholds.from_settings(context.current().settings)


@blp.route("")
class Servers(MethodView):
    """The collection of servers."""

    @require("read")
    @blp.arguments(ServerQuerySchema, location="query")
    @blp.response(200, ServerPageSchema)
    def get(self, query):
        """List servers with their latest metrics; filter by status, health, tag, role, segment"""
        filters = {k: v for k, v in query.items() if k not in ("limit", "offset")}
        # Each server's JSON is built by hand for speed (server_rows_to_json) and reused while
        # its row is unchanged (server_list_cache), so this returns a ready response.
        found = server_list_cache(current_app).listing(filters, query["limit"], query["offset"])
        return current_app.json.response(page("servers", found, query))

    @require("write")
    @blp.arguments(ServerCreateSchema)
    @blp.response(201, ServerDetailSchema)
    @blp.alt_response(409, response="CONFLICT", description="the id is taken")
    def post(self, body):
        """Register a server (status `unknown` until its first heartbeat)"""
        return servers.register_server(body)


@blp.route("/<string:server_id>")
class ServerById(MethodView):
    """One server."""

    @require("read")
    @blp.response(200, ServerDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, server_id):
        """Get a server with its latest metrics, containers, services and packages"""
        return servers.get_server(server_id)

    @require("write")
    @blp.arguments(ServerUpdateSchema)
    @blp.response(200, ServerDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def put(self, body, server_id):
        """Update a server's settings (only the fields given)

        A new version_lock judges the server's health again at once.
        """
        return servers.update_server(server_id, body, limits=_thresholds())

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
    @blp.response(200, ServerDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def put(self, server_id):
        """Pause a server: its new actions wait for approval"""
        return maintenance.set_paused(server_id, True, authenticate().name)


@blp.route("/<string:server_id>/unpause")
class UnpauseServer(MethodView):
    """Maintenance mode off."""

    @require("write")
    @blp.response(200, ServerDetailSchema)
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


@blp.route("/<string:server_id>/health")
class ServerHealthState(MethodView):
    """The operator's manual health state."""

    @require("write")
    @blp.arguments(ManualHealthSchema)
    @blp.response(200, ServerDetailSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, body, server_id):
        """Set a manual health state (healthy, degraded, failed), or clear it with null

        It holds over every rule until cleared, except offline; the change is an event naming
        the key that made it.
        """
        return servers.set_manual_health(
            server_id, body["health"], body.get("reason"), authenticate().name, limits=_thresholds()
        )


@blp.route("/<string:server_id>/updates")
class ServerUpdates(MethodView):
    """A server's update history."""

    @require("read")
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, UpdatePageSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, server_id):
        """List a server's version changes (commit, agent, OS, kernel), newest first"""
        return page("updates", updates.list_updates(server_id, **query), query)
