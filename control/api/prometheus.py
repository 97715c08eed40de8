"""`GET /api/v1/prometheus/targets`: Prometheus http_sd for every agent control knows."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from control.api.auth import require
from control.api.base import Blueprint
from control.fleet import targets

blp = Blueprint(
    "prometheus",
    __name__,
    url_prefix="/api/v1/prometheus",
    description="Service discovery for Prometheus (http_sd_configs, Bearer viewer key).",
)


class TargetGroupSchema(ma.Schema):
    """One http_sd target group: the agent's `host:port` and its labels."""

    targets = ma.fields.List(ma.fields.String())
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


@blp.route("/targets")
class Targets(MethodView):
    """The scrape targets."""

    @require("read")
    @blp.response(200, TargetGroupSchema(many=True))
    def get(self):
        """Agents to scrape (servers that reported a metrics_port), with their labels"""
        return targets.http_sd_groups()
