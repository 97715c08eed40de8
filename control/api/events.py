"""`GET /api/v1/events`: the event log (registrations, status changes, actions)."""

from __future__ import annotations

import json

import marshmallow as ma
from flask.views import MethodView

from control.api.auth import require
from control.api.base import Blueprint
from control.api.fields import UtcDateTime
from control.api.paging import PageQuerySchema, page, page_schema
from control.fleet import events

blp = Blueprint(
    "events",
    __name__,
    url_prefix="/api/v1/events",
    description="What happened in the fleet, newest first.",
)


class EventQuerySchema(PageQuerySchema):
    """Filters for GET /events."""

    server_id = ma.fields.String(validate=ma.validate.Length(1, 100))
    type = ma.fields.String(validate=ma.validate.Length(1, 50))


class EventSchema(ma.Schema):
    """One event."""

    id = ma.fields.Integer()
    server_id = ma.fields.String(allow_none=True)
    type = ma.fields.String()
    message = ma.fields.String()
    details = ma.fields.Function(
        lambda event: json.loads(event.details) if event.details else None,
        allow_none=True,
        metadata={"type": "object", "nullable": True},
    )
    created_at = UtcDateTime()


EventPageSchema = page_schema("events", EventSchema, "EventPageSchema")


@blp.route("")
class Events(MethodView):
    """The event log."""

    @require("read")
    @blp.arguments(EventQuerySchema, location="query")
    @blp.response(200, EventPageSchema)
    def get(self, query):
        """List events, newest first; filter by server_id and type"""
        rows, total = events.list_events(
            query.get("server_id"), query.get("type"), query["limit"], query["offset"]
        )
        return page(rows, total, query, "events")
