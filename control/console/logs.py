"""`/ui/events`, `/ui/audit` and `/ui/costs`: the fleet's logs and its power bill, read-only."""

from __future__ import annotations

from flask import request

from control import context
from control.console import query
from control.console.blueprint import bp
from control.console.pages import render_page
from control.fleet import costs
from control.fleet import events as event_log
from control.fleet.events import EventType
from control.models import EventSeverity
from control.notify.overview import overview as notification_overview
from control.remediation import audit as audit_log
from control.remediation.audit import AuditResult, AuditSource

PAGE = 50


@bp.get("/events")
def events():
    """Events newest first, filtered by severity (this bad or worse), type and server; below
    them, the notification channels (redacted) and their last failures."""
    filters = {
        "severity": query.choice(request.args, "severity", EventSeverity),
        "type": query.choice(request.args, "type", EventType),
        "server": query.server_id(request.args),
    }
    offset = query.offset(request.args)
    found = event_log.list_events(
        min_severity=filters["severity"],
        event_type=filters["type"],
        server_id=filters["server"],
        limit=PAGE,
        offset=offset,
    )
    return render_page(
        "events.html",
        events=found,
        filters=filters,
        severities=list(EventSeverity),
        types=sorted(EventType),
        offset=offset,
        page_size=PAGE,
        notifications=notification_overview(context.current().settings),
        active="events",
        refresh=30,
    )


@bp.get("/audit")
def audit():
    """Every execution attempt, allowed or refused, newest first."""
    filters = {
        "server": query.server_id(request.args),
        "source": query.choice(request.args, "source", AuditSource),
        "result": query.choice(request.args, "result", AuditResult),
        "actor": query.matching(request.args, "actor", query.ACTOR),
    }
    offset = query.offset(request.args)
    found = audit_log.list_entries(
        server_id=filters["server"],
        source=filters["source"],
        result=filters["result"],
        actor=filters["actor"],
        limit=PAGE,
        offset=offset,
    )
    return render_page(
        "audit.html",
        entries=found,
        filters=filters,
        sources=list(AuditSource),
        results=list(AuditResult),
        offset=offset,
        page_size=PAGE,
        active="audit",
    )


@bp.get("/costs", endpoint="costs")
def costs_page():
    """Estimated power draw and electricity cost per server and in total."""
    settings = context.current().settings
    return render_page(
        "costs.html",
        costs=costs.fleet_costs(settings.electricity_price, settings.currency),
        active="costs",
    )
