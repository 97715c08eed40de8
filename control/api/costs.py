"""`GET /api/v1/costs`: estimated power draw and electricity cost per server and in total."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from control import context
from control.api.auth import require
from control.api.base import Blueprint
from control.fleet import costs

blp = Blueprint(
    "costs",
    __name__,
    url_prefix="/api/v1/costs",
    description="Power and electricity cost estimates from tdp_watts and CPU use.",
)


class Rounded(ma.fields.Float):
    """A float rounded to `places` decimals on the way out (null stays null)."""

    def __init__(self, places: int, **kwargs):
        super().__init__(allow_none=True, **kwargs)
        self.places = places

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else round(value, self.places)


class ServerCostSchema(ma.Schema):
    """One server's estimate; the numbers are null when it has no tdp_watts."""

    server_id = ma.fields.String(attribute="server.id")
    hostname = ma.fields.String(attribute="server.hostname")
    display_name = ma.fields.String(attribute="server.display_name", allow_none=True)
    status = ma.fields.String(attribute="server.status")
    tdp_watts = ma.fields.Integer(attribute="server.tdp_watts", allow_none=True)
    cpu_percent = Rounded(2)
    estimated_watts = Rounded(2, attribute="watts")
    kwh_per_day = Rounded(4)
    cost_per_day = Rounded(4)
    cost_per_month = Rounded(2)


class TotalsSchema(ma.Schema):
    """The fleet totals over the servers that have a tdp_watts."""

    servers_counted = ma.fields.Integer()
    estimated_watts = Rounded(2)
    kwh_per_day = Rounded(4)
    cost_per_day = Rounded(4)
    cost_per_month = Rounded(2)


class ModelSchema(ma.Schema):
    """The constants of the estimate, so a reader can redo the arithmetic."""

    idle_share = ma.fields.Float()
    days_per_month = ma.fields.Integer()


class CostsSchema(ma.Schema):
    """GET /costs."""

    currency = ma.fields.String()
    electricity_price = ma.fields.Float(attribute="price", metadata={"description": "per kWh"})
    model = ma.fields.Nested(ModelSchema)
    servers = ma.fields.List(ma.fields.Nested(ServerCostSchema))
    totals = ma.fields.Nested(TotalsSchema)


@blp.route("")
class Costs(MethodView):
    """The fleet's power and cost."""

    @require("read")
    @blp.response(200, CostsSchema)
    def get(self):
        """Estimated watts, kWh/day and cost per server and for the fleet"""
        settings = context.current().settings
        return costs.fleet_costs(settings.electricity_price, settings.currency)
