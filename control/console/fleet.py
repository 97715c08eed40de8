"""`/ui/`: the fleet page, every server worst first, filtered by health, status, tag or role."""

from __future__ import annotations

from flask import request

from control.console import query
from control.console.blueprint import bp
from control.console.pages import render_page
from control.errors import NotFound
from control.fleet import overview
from control.models import ServerHealth, ServerStatus

# Rows per page: the whole of a homelab, and a bounded page for a fleet of thousands.
PAGE = 1000


@bp.get("/")
def fleet():
    """Counts by health and status, then one row per matching server (worst first)."""
    filters = {
        "health": query.choice(request.args, "health", ServerHealth),
        "status": query.choice(request.args, "status", ServerStatus),
        "tag": query.matching(request.args, "tag", query.TAG),
        "role": query.matching(request.args, "role", query.ROLE),
    }
    offset = query.offset(request.args)
    found = overview.fleet_overview(**filters, limit=PAGE, offset=offset)
    return render_page(
        "fleet.html",
        overview=found,
        filters=filters,
        roles=overview.roles(),
        healths=list(overview.HEALTH_ORDER),
        statuses=list(ServerStatus),
        offset=offset,
        page_size=PAGE,
        refresh=30,
    )


@bp.get("/<path:unknown>")
def unknown_page(unknown: str):
    """A console URL that names no page: a 404 page (not the API's JSON)."""
    raise NotFound("There is no such page in the console.")
