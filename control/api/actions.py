"""`/api/v1/actions`: the remediation queue with its approval gate (seed 003)."""

from __future__ import annotations

import json

import marshmallow as ma
from flask import current_app
from flask.views import MethodView

from control.api.auth import authenticate, require
from control.api.base import Blueprint
from control.api.fields import ServerId, UtcDateTime, fullmatch
from control.api.paging import PageQuerySchema, page, page_schema
from control.models import ActionStatus
from control.remediation import actions

blp = Blueprint(
    "actions",
    __name__,
    url_prefix="/api/v1/actions",
    description="Queued remediation actions: create, approve, reject, follow.",
)

ACTION_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


def ActionType(**kwargs) -> ma.fields.String:
    """An action type name (whether it is whitelisted is checked separately: 403)."""
    return ma.fields.String(
        validate=fullmatch(ACTION_TYPE_PATTERN, "Lowercase letters, digits and '_'."), **kwargs
    )


def Parameters() -> ma.fields.Dict:
    """Action parameters: name → string value; which names a type takes is the whitelist's call."""
    return ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), load_default=dict)


class ActionCreateSchema(ma.Schema):
    """Body of POST /actions. `service_name` is short for `parameters.service_name`."""

    server_id = ServerId(required=True)
    action_type = ActionType(required=True)
    service_name = ma.fields.String(validate=ma.validate.Length(max=255))
    parameters = Parameters()
    alert_id = ma.fields.Integer(
        strict=True, allow_none=True, validate=ma.validate.Range(1, 2**63 - 1)
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


class ActionQuerySchema(PageQuerySchema):
    """Filters for listing actions."""

    status = ma.fields.String(validate=ma.validate.OneOf(ActionStatus.ALL))
    server_id = ma.fields.String(validate=ma.validate.Length(1, 100))
    action_type = ma.fields.String(validate=ma.validate.Length(1, 64))


class RejectSchema(ma.Schema):
    """Body of POST /actions/{id}/reject."""

    reason = ma.fields.String(required=True, validate=ma.validate.Length(1, 1000))


class ActionSchema(ma.Schema):
    """An action with who did what and when, and the command's result once it ran."""

    id = ma.fields.Integer()
    server_id = ma.fields.String()
    action_type = ma.fields.String()
    parameters = ma.fields.Function(lambda a: json.loads(a.parameters), metadata={"type": "object"})
    command = ma.fields.String()
    status = ma.fields.String(metadata={"enum": list(ActionStatus.ALL)})
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


def list_page(query: dict, server_id: str | None = None) -> dict:
    """Shared by GET /actions and GET /servers/{id}/actions."""
    rows, total = actions.list_actions(
        query.get("status"),
        server_id or query.get("server_id"),
        query.get("action_type"),
        query["limit"],
        query["offset"],
    )
    return page(rows, total, query, "actions")


def _context():
    return current_app.extensions["homelab"]


@blp.route("")
class Actions(MethodView):
    """The action queue."""

    @require("read")
    @blp.arguments(ActionQuerySchema, location="query")
    @blp.response(200, ActionPageSchema)
    def get(self, query):
        """List actions, newest first; filter by status, server_id, action_type"""
        return list_page(query)

    @require("write")
    @blp.arguments(ActionCreateSchema)
    @blp.response(201, ActionSchema)
    @blp.alt_response(403, response="FORBIDDEN", description="not whitelisted")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="the same action is already open")
    def post(self, body):
        """Queue an action: auto-approved, or pending when the server is paused"""
        action = actions.create_action(
            _context().remediation.whitelist,
            body["server_id"],
            body["action_type"],
            body["parameters"],
            created_by=authenticate().name,
            alert_id=body.get("alert_id"),
        )
        if action.status == ActionStatus.APPROVED:
            _context().wake()
        return action


@blp.route("/<int(max=9223372036854775807):action_id>")
class ActionById(MethodView):
    """One action."""

    @require("read")
    @blp.response(200, ActionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, action_id):
        """Get an action with its result"""
        return actions.get_action(action_id)


@blp.route("/<int(max=9223372036854775807):action_id>/approve")
class ApproveAction(MethodView):
    """Approval of a pending action."""

    @require("write")
    @blp.response(200, ActionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="the action is not pending")
    def post(self, action_id):
        """Approve a pending action; it runs within a second or two"""
        action = actions.approve_action(action_id, authenticate().name)
        _context().wake()
        return action


@blp.route("/<int(max=9223372036854775807):action_id>/reject")
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
