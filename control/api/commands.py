"""`POST /api/v1/servers/{id}/commands/execute`: run a whitelisted command now (seed 004)."""

from __future__ import annotations

import marshmallow as ma
from flask import current_app
from flask.views import MethodView

from control.api.actions import ACTION_TYPE_PATTERN, ActionType, Parameters
from control.api.auth import authenticate, require
from control.api.base import Blueprint
from control.errors import CommandNotAllowed, ExecuteNotAllowed
from control.fleet import servers

blp = Blueprint(
    "commands",
    __name__,
    url_prefix="/api/v1/servers",
    description="Synchronous execution of whitelisted commands over SSH.",
)


class ExecuteSchema(ma.Schema):
    """Either `command` (a string equal to a whitelisted render) or `action_type` + params."""

    command = ma.fields.String(validate=ma.validate.Length(1, 4096))
    action_type = ActionType()
    parameters = Parameters()

    @ma.validates_schema
    def one_form(self, data, **kwargs):
        """Exactly one of `command` and `action_type`."""
        if ("command" in data) == ("action_type" in data):
            raise ma.ValidationError(
                "Give either command or action_type (with parameters).", "command"
            )


class ExecuteResultSchema(ma.Schema):
    """What the command did."""

    exit_code = ma.fields.Integer()
    stdout = ma.fields.String()
    stderr = ma.fields.String()
    duration_ms = ma.fields.Integer()


# marshmallow cannot say "exactly one of two shapes", so the request body is documented by hand.
EXECUTE_BODY_DOC = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "command": {"type": "string", "minLength": 1, "maxLength": 4096}
                        },
                        "required": ["command"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {
                            "action_type": {"type": "string", "pattern": ACTION_TYPE_PATTERN},
                            "parameters": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                        "required": ["action_type"],
                        "additionalProperties": False,
                    },
                ]
            }
        }
    },
}


@blp.route("/<string:server_id>/commands/execute")
class ExecuteCommand(MethodView):
    """Run one command and wait for it."""

    @require("write")
    @blp.arguments(ExecuteSchema)
    @blp.doc(requestBody=EXECUTE_BODY_DOC)
    @blp.response(200, ExecuteResultSchema)
    @blp.alt_response(400, response="BAD_REQUEST", description="command not allowed")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(408, response="REQUEST_TIMEOUT", description="command timed out")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS", description="rate limited")
    @blp.alt_response(500, response="INTERNAL_SERVER_ERROR", description="SSH error")
    def post(self, body, server_id):
        """Execute a whitelisted command on a server and return its exit code and output"""
        context = current_app.extensions["homelab"]
        principal = authenticate()
        context.rate_limiter.hit(principal.name)
        server = servers.get_server(server_id)
        remediation = context.remediation
        audit = {"actor": principal.name, "scope": principal.scope, "source": "execute"}
        try:
            if "command" in body:
                match = remediation.whitelist.match_command(body["command"])
                action_type, argv = match.action_type, match.argv
            else:
                action_type = body["action_type"]
                argv = remediation.whitelist.render(action_type, body["parameters"])
        except CommandNotAllowed as exc:
            remediation.refuse(
                **audit,
                server_id=server_id,
                action_type=body.get("action_type"),
                detail=exc.message,
            )
            raise ExecuteNotAllowed(exc.message) from None
        result = remediation.run(server, argv, **audit, action_type=action_type)
        return result
