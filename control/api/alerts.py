"""`/api/v1/alerts`: the Alertmanager webhook and the alerts it delivered."""

from __future__ import annotations

import json
import re

import marshmallow as ma
from flask.views import MethodView

from control import context
from control.api.auth import require
from control.api.base import Blueprint
from control.api.fields import ROW_ID, OneOf, ServerId, UtcDateTime, fullmatch
from control.api.paging import PageQuerySchema, page, page_schema
from control.models import AlertStatus
from control.remediation import alerts

blp = Blueprint(
    "alerts",
    __name__,
    url_prefix="/api/v1/alerts",
    description="Alerts from Alertmanager and the remediation actions they queued.",
)

ALERTNAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,255}$"
MAX_ALERTS_PER_DELIVERY = 1000


class AlertTime(UtcDateTime):
    """An Alertmanager timestamp; one that is no instant in UTC is a 422 (as every UtcDateTime)."""


class AlertmanagerAlertSchema(ma.Schema):
    """One alert of an Alertmanager webhook (v4) notification; unknown keys are ignored."""

    class Meta:
        unknown = ma.EXCLUDE

    status = ma.fields.String(required=True, validate=ma.validate.OneOf(list(AlertStatus)))
    # Label and annotation names are stored as given (Alertmanager only sends valid ones);
    # only `alertname` is required, and documented so in the OpenAPI schema.
    labels = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(validate=ma.validate.Length(max=4096)),
        required=True,
        metadata={
            "required": ["alertname"],
            "properties": {
                "alertname": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": ALERTNAME_PATTERN,
                }
            },
        },
    )
    annotations = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(validate=ma.validate.Length(max=16384)),
        load_default=dict,
    )
    starts_at = AlertTime(data_key="startsAt", required=True)
    ends_at = AlertTime(data_key="endsAt", allow_none=True, load_default=None)
    generator_url = ma.fields.String(
        data_key="generatorURL",
        allow_none=True,
        load_default=None,
        validate=fullmatch(r"^[\x20-\x7e]{0,4096}$", "Printable ASCII, up to 4096 characters."),
    )
    fingerprint = ma.fields.String(
        required=True, validate=fullmatch(r"^[0-9a-f]{1,64}$", "1-64 lowercase hex digits.")
    )

    @ma.validates_schema
    def has_alertname(self, data, **kwargs):
        """Alertmanager always sends `alertname`; without it the alert cannot be stored."""
        name = data.get("labels", {}).get("alertname")
        if not isinstance(name, str) or not re.fullmatch(ALERTNAME_PATTERN, name):
            raise ma.ValidationError(
                "an alertname label of 1-255 characters without control characters is required",
                "labels",
            )

    @ma.post_load
    def unset_zero_end(self, data, **kwargs):
        """Alertmanager writes "no end" as 0001-01-01T00:00:00Z."""
        if data["ends_at"] is not None and data["ends_at"].year <= 1:
            data["ends_at"] = None
        return data


class AlertmanagerWebhookSchema(ma.Schema):
    """Body of POST /alerts/alertmanager: Alertmanager's webhook payload, version 4."""

    class Meta:
        unknown = ma.EXCLUDE

    version = ma.fields.String(required=True, validate=ma.validate.Equal("4"))
    status = ma.fields.String(validate=ma.validate.OneOf(list(AlertStatus)))
    receiver = ma.fields.String()
    alerts = ma.fields.List(
        ma.fields.Nested(AlertmanagerAlertSchema),
        required=True,
        validate=ma.validate.Length(max=MAX_ALERTS_PER_DELIVERY),
    )


class AlertSchema(ma.Schema):
    """A stored alert occurrence and what remediation made of it."""

    id = ma.fields.Integer()
    fingerprint = ma.fields.String()
    alertname = ma.fields.String()
    status = ma.fields.String(metadata={"enum": list(AlertStatus)})
    server_id = ma.fields.String(allow_none=True)
    labels = ma.fields.Function(lambda a: json.loads(a.labels), metadata={"type": "object"})
    annotations = ma.fields.Function(
        lambda a: json.loads(a.annotations), metadata={"type": "object"}
    )
    starts_at = UtcDateTime()
    ends_at = UtcDateTime(allow_none=True)
    generator_url = ma.fields.String(allow_none=True)
    first_received_at = UtcDateTime()
    last_received_at = UtcDateTime()
    received_count = ma.fields.Integer()
    action_id = ma.fields.Integer(allow_none=True)
    remediation_rule = ma.fields.String(allow_none=True)
    remediation = ma.fields.String(
        allow_none=True, metadata={"enum": ["queued", "duplicate", "refused", None]}
    )
    remediation_detail = ma.fields.String(allow_none=True)


AlertPageSchema = page_schema("alerts", AlertSchema, "AlertPageSchema")


class ReceivedSchema(ma.Schema):
    """Response of the webhook: every alert of the delivery as stored."""

    received = ma.fields.Function(lambda r: len(r.alerts))
    alerts = ma.fields.List(ma.fields.Nested(AlertSchema))


class AlertQuerySchema(PageQuerySchema):
    """Filters for GET /alerts (`status` is the alert's own, firing or resolved)."""

    status = OneOf(AlertStatus)
    alertname = ma.fields.String(
        validate=fullmatch(ALERTNAME_PATTERN, "1-255 characters, no control characters.")
    )
    server_id = ServerId()


@blp.route("")
class Alerts(MethodView):
    """Alerts received."""

    @require("read")
    @blp.arguments(AlertQuerySchema, location="query")
    @blp.response(200, AlertPageSchema)
    def get(self, query):
        """List alerts, newest first; filter by status, alertname, server_id"""
        return page("alerts", alerts.list_alerts(**query), query)


@blp.route(f"/<{ROW_ID}:alert_id>")
class AlertById(MethodView):
    """One alert."""

    @require("read")
    @blp.response(200, AlertSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, alert_id):
        """Get an alert with its labels, annotations and remediation outcome"""
        return alerts.get_alert(alert_id)


@blp.route("/alertmanager")
class AlertmanagerWebhook(MethodView):
    """Alertmanager's webhook receiver (send an `alerts`-scope key as Bearer)."""

    @require("alerts")
    @blp.arguments(AlertmanagerWebhookSchema)
    @blp.response(200, ReceivedSchema)
    def post(self, body):
        """Store a webhook delivery and queue the actions its firing alerts' rules ask for

        Needs a key of scope `alerts` (what Alertmanager should hold: it may post here and
        nothing else) or `operator`.
        """
        ctx = context.current()
        ctx.metrics.count_alerts(body["alerts"])
        return alerts.receive(body["alerts"], ctx.remediation_rules, ctx.remediation.whitelist)
