"""`GET /api/v1/events`: the event log (registrations, status changes, actions)."""

from __future__ import annotations

import json

import marshmallow as ma
from flask.views import MethodView

from control.api.auth import require
from control.api.base import Blueprint
from control.api.fields import OneOf, ServerId, UtcDateTime
from control.api.paging import PageQuerySchema, page, page_schema
from control.fleet import events
from control.fleet.events import EventType

blp = Blueprint(
    "events",
    __name__,
    url_prefix="/api/v1/events",
    description="What happened in the fleet, newest first.",
)


class EventQuerySchema(PageQuerySchema):
    """Filters for GET /events."""

    server_id = ServerId()
    event_type = OneOf(EventType, data_key="type")


class EventSchema(ma.Schema):
    """One event."""

    id = ma.fields.Integer()
    server_id = ma.fields.String(allow_none=True)
    type = ma.fields.String(metadata={"enum": list(EventType)})
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
        return page("events", events.list_events(**query), query)
