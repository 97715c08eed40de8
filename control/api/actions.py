"""`/api/v1/actions` and `/api/v1/servers/{id}/actions`: the remediation queue (seed 003)."""

from __future__ import annotations

import json

import marshmallow as ma
from flask.views import MethodView

from control import context
from control.api.auth import authenticate, require
from control.api.base import Blueprint
from control.api.fields import (
    ROW_ID,
    ActionType,
    OneOf,
    Parameters,
    ServerId,
    Text,
    UtcDateTime,
)
from control.api.paging import PageQuerySchema, page, page_schema
from control.bounds import BIGINT_MAX
from control.models import ActionStatus
from control.remediation import actions

blp = Blueprint(
    "actions",
    __name__,
    url_prefix="/api/v1",
    description="Queued remediation actions: create, approve, reject, follow.",
)


class ActionCreateSchema(ma.Schema):
    """Body of POST /actions. `service_name` is short for `parameters.service_name`."""

    server_id = ServerId(required=True)
    action_type = ActionType(required=True)
    service_name = Text(255)
    parameters = Parameters()
    alert_id = ma.fields.Integer(
        strict=True, allow_none=True, validate=ma.validate.Range(1, BIGINT_MAX)
    )

    @ma.post_load
    def merge_service_name(self, data, **kwargs):
        """Fold the `service_name` shorthand into parameters (and refuse a contradiction)."""
        name = data.pop("service_name", None)
        if name is not None:
            if data["parameters"].get("service_name", name) != name:
                raise ma.ValidationError("differs from parameters.service_name", "service_name")
            data["parameters"]["service_name"] = name
        return data


class ServerActionQuerySchema(PageQuerySchema):
    """Filters for one server's actions."""

    status = OneOf(ActionStatus)
    action_type = ActionType()


class ActionQuerySchema(ServerActionQuerySchema):
    """Filters for listing actions."""

    server_id = ServerId()


class RejectSchema(ma.Schema):
    """Body of POST /actions/{id}/reject."""

    reason = Text(1000, 1, required=True)


class ActionSchema(ma.Schema):
    """An action with who did what and when, and the command's result once it ran."""

    id = ma.fields.Integer()
    server_id = ma.fields.String()
    action_type = ma.fields.String()
    parameters = ma.fields.Function(lambda a: json.loads(a.parameters), metadata={"type": "object"})
    command = ma.fields.String()
    status = ma.fields.String(metadata={"enum": list(ActionStatus)})
    alert_id = ma.fields.Integer(allow_none=True)
    created_by = ma.fields.String()
    created_at = UtcDateTime()
    approved_by = ma.fields.String(allow_none=True)
    approved_at = UtcDateTime(allow_none=True)
    rejected_by = ma.fields.String(allow_none=True)
    rejected_at = UtcDateTime(allow_none=True)
    rejection_reason = ma.fields.String(allow_none=True)
    executed_at = UtcDateTime(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)
    exit_code = ma.fields.Integer(allow_none=True)
    stdout = ma.fields.String(allow_none=True)
    stderr = ma.fields.String(allow_none=True)
    failure_reason = ma.fields.String(allow_none=True)


ActionPageSchema = page_schema("actions", ActionSchema, "ActionPageSchema")


@blp.route("/actions")
class Actions(MethodView):
    """The action queue."""

    @require("read")
    @blp.arguments(ActionQuerySchema, location="query")
    @blp.response(200, ActionPageSchema)
    def get(self, query):
        """List actions, newest first; filter by status, server_id, action_type"""
        return page("actions", actions.list_actions(**query), query)

    @require("write")
    @blp.arguments(ActionCreateSchema)
    @blp.response(201, ActionSchema)
    @blp.alt_response(
        403,
        response="FORBIDDEN",
        description="not whitelisted, or a software change on a server with update_enabled false",
    )
    @blp.alt_response(404, response="NOT_FOUND", description="unknown server or alert_id")
    @blp.alt_response(409, response="CONFLICT", description="the same action is already open")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS", description="rate limited")
    def post(self, body):
        """Queue an action: auto-approved, or pending (server paused, or a type that always asks)

        Types with `approval = "always"` (reboot and upgrade_packages by default) wait for an
        operator on any server; software changes are refused while update_enabled is false.

        Counts against the key's rate limit (HOMELAB_RATE_LIMIT per minute) once the server
        and alert exist; every refusal is written to the audit log.
        """
        ctx = context.current()
        caller = authenticate()
        return actions.create_action(
            ctx.remediation.whitelist,
            **body,
            created_by=caller.name,
            caller=caller,
            limiter=ctx.rate_limiter,
        )


@blp.route(f"/actions/<{ROW_ID}:action_id>")
class ActionById(MethodView):
    """One action."""

    @require("read")
    @blp.response(200, ActionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, action_id):
        """Get an action with its result"""
        return actions.get_action(action_id)


@blp.route(f"/actions/<{ROW_ID}:action_id>/approve")
class ApproveAction(MethodView):
    """Approval of a pending action."""

    @require("write")
    @blp.response(200, ActionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(
        409,
        response="CONFLICT",
        description="the action is not pending, or changes software on a server with "
        "update_enabled false",
    )
    def post(self, action_id):
        """Approve a pending action; it runs within a second or two"""
        whitelist = context.current().remediation.whitelist
        return actions.approve_action(action_id, authenticate().name, whitelist)


@blp.route(f"/actions/<{ROW_ID}:action_id>/reject")
class RejectAction(MethodView):
    """Rejection of a pending action."""

    @require("write")
    @blp.arguments(RejectSchema)
    @blp.response(200, ActionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="the action is not pending")
    def post(self, body, action_id):
        """Reject a pending action, with a reason"""
        return actions.reject_action(action_id, authenticate().name, body["reason"])


@blp.route("/servers/<string:server_id>/actions")
class ServerActions(MethodView):
    """The actions of one server."""

    @require("read")
    @blp.arguments(ServerActionQuerySchema, location="query")
    @blp.response(200, ActionPageSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, server_id):
        """List one server's actions, newest first"""
        return page("actions", actions.list_server_actions(server_id, **query), query)
