"""`GET /api/v1/events` and `GET /api/v1/servers/{id}/events`: the event log (registrations,
status and health changes, updates, actions and commands), each event with its severity."""

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
from control.models import EventSeverity

blp = Blueprint(
    "events",
    __name__,
    url_prefix="/api/v1",
    description="What happened in the fleet, newest first.",
)


class ServerEventQuerySchema(PageQuerySchema):
    """Filters for one server's events."""

    event_type = OneOf(EventType, data_key="type")
    severity = OneOf(EventSeverity, metadata={"description": "Exactly this severity."})
    min_severity = OneOf(EventSeverity, metadata={"description": "This severity or worse."})
    since = UtcDateTime(metadata={"description": "Events created at or after this time."})


class EventQuerySchema(ServerEventQuerySchema):
    """Filters for GET /events."""

    server_id = ServerId()


class EventSchema(ma.Schema):
    """One event."""

    id = ma.fields.Integer()
    server_id = ma.fields.String(allow_none=True)
    type = ma.fields.String(metadata={"enum": list(EventType)})
    severity = ma.fields.String(metadata={"enum": list(EventSeverity)})
    message = ma.fields.String()
    details = ma.fields.Function(
        lambda event: json.loads(event.details) if event.details else None,
        allow_none=True,
        metadata={"type": "object", "nullable": True},
    )
    created_at = UtcDateTime()


EventPageSchema = page_schema("events", EventSchema, "EventPageSchema")


@blp.route("/events")
class Events(MethodView):
    """The event log."""

    @require("read")
    @blp.arguments(EventQuerySchema, location="query")
    @blp.response(200, EventPageSchema)
    def get(self, query):
        """List events, newest first; filter by server_id, type, severity and since"""
        return page("events", events.list_events(**query), query)


@blp.route("/servers/<string:server_id>/events")
class ServerEvents(MethodView):
    """One server's events, kept after the server is deleted."""

    @require("read")
    @blp.arguments(ServerEventQuerySchema, location="query")
    @blp.response(200, EventPageSchema)
    @blp.alt_response(404, response="NOT_FOUND", description="no such server, now or before")
    def get(self, query, server_id):
        """List one server's events, newest first; a deleted server's history stays readable"""
        return page("events", events.list_server_events(server_id, **query), query)
