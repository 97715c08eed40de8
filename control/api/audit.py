"""`GET /api/v1/audit`: every execution attempt, allowed or refused."""

from __future__ import annotations

import json

import marshmallow as ma
from flask.views import MethodView

from control.api.auth import require
from control.api.base import Blueprint
from control.api.fields import OneOf, ServerId, Text, UtcDateTime
from control.api.paging import PageQuerySchema, page, page_schema
from control.remediation import audit
from control.remediation.audit import AuditResult, AuditSource

blp = Blueprint(
    "audit",
    __name__,
    url_prefix="/api/v1/audit",
    description="Who ran what where, and what came of it.",
)


class AuditQuerySchema(PageQuerySchema):
    """Filters for the audit log."""

    server_id = ServerId()
    source = OneOf(AuditSource)
    result = OneOf(AuditResult)
    actor = Text(200, 1)


class AuditEntrySchema(ma.Schema):
    """One execution attempt."""

    id = ma.fields.Integer()
    created_at = UtcDateTime()
    actor = ma.fields.String()
    scope = ma.fields.String(allow_none=True)
    source = ma.fields.String(metadata={"enum": list(AuditSource)})
    server_id = ma.fields.String(allow_none=True)
    action_id = ma.fields.Integer(allow_none=True)
    action_type = ma.fields.String(allow_none=True)
    argv = ma.fields.Function(
        lambda e: json.loads(e.argv) if e.argv else None,
        allow_none=True,
        metadata={"type": "array", "items": {"type": "string"}, "nullable": True},
    )
    allowed = ma.fields.Boolean()
    result = ma.fields.String(metadata={"enum": list(AuditResult)})
    exit_code = ma.fields.Integer(allow_none=True)
    duration_ms = ma.fields.Integer(allow_none=True)
    detail = ma.fields.String(allow_none=True)


AuditPageSchema = page_schema("audit", AuditEntrySchema, "AuditPageSchema")


@blp.route("")
class Audit(MethodView):
    """The audit log."""

    @require("read")
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditPageSchema)
    def get(self, query):
        """List execution attempts, newest first"""
        return page("audit", audit.list_entries(**query), query)
