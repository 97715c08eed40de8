"""`POST /api/v1/servers/{id}/commands/execute`: run a whitelisted command now (seed 004)."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from control import context
from control.api.auth import authenticate, require
from control.api.base import Blueprint
from control.api.fields import (
    ACTION_TYPE_PATTERN,
    NO_NUL_PATTERN,
    ActionType,
    Parameters,
    Text,
)
from control.remediation.execute import execute_command

blp = Blueprint(
    "commands",
    __name__,
    url_prefix="/api/v1/servers",
    description="Synchronous execution of whitelisted commands over SSH.",
)


class ExecuteSchema(ma.Schema):
    """Either `command` (a string equal to a whitelisted render) or `action_type` + params."""

    command = Text(4096, 1)
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
                            "command": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 4096,
                                "pattern": NO_NUL_PATTERN,
                            }
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
    @blp.alt_response(
        400,
        response="BAD_REQUEST",
        description="command not allowed (not whitelisted, or a software change on a server "
        "with update_enabled false)",
    )
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(408, response="REQUEST_TIMEOUT", description="command timed out")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS", description="rate limited")
    @blp.alt_response(500, response="INTERNAL_SERVER_ERROR", description="SSH error")
    def post(self, body, server_id):
        """Execute a whitelisted command on a server and return its exit code and output"""
        ctx = context.current()
        return execute_command(ctx.remediation, ctx.rate_limiter, authenticate(), server_id, **body)
