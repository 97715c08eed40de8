"""`/ui/servers/<id>`: one server, and what an operator may do to it.

The page reads facts, the newest metrics, 24 h of history, containers, services, packages,
events, actions, updates and cost; its forms pause and resume the server, queue a whitelisted
action (through the approval gate, exactly as POST /api/v1/actions) and reset enrollment.
"""

from __future__ import annotations

from flask import url_for

from control import context
from control.console import charts
from control.console.blueprint import bp
from control.console.forms import EnrollmentResetForm, run_form, run_parameters
from control.console.pages import act, render_page
from control.console.session import current_user
from control.errors import ValidationFailed
from control.fleet import costs, enrollment, events, history, maintenance, overview, servers
from control.fleet.updates import list_updates
from control.models import Action, ActionStatus
from control.remediation import actions

RECENT = 20  # events, actions and updates shown on the page; the rest are a link away


@bp.get("/servers/<server_id>")
def server(server_id: str):
    """Everything known about one server."""
    found = servers.get_server(server_id)
    ctx = context.current()
    user = current_user()
    whitelist = ctx.remediation.whitelist
    sample = getattr(found, "latest_sample", None)
    return render_page(
        "server.html",
        server=found,
        sample=sample if sample is not None and sample.id is not None else None,
        facts=overview.server_facts(found),
        charts=charts.charts(history.history(server_id)),
        chart_size=(charts.WIDTH, charts.HEIGHT),
        events=events.list_events(server_id=server_id, limit=RECENT),
        actions=actions.list_actions(server_id=server_id, limit=RECENT),
        updates=list_updates(server_id, limit=RECENT),
        cost=costs.server_cost(found, ctx.settings.electricity_price),
        currency=ctx.settings.currency,
        run_forms=[
            (whitelist.types[name], run_form(whitelist.types[name])) for name in whitelist.names()
        ]
        if user and user.may("write")
        else [],
        reset_form=EnrollmentResetForm(),
        active="fleet",
        refresh=60,
    )


def _page(server_id: str) -> str:
    return url_for("console.server", server_id=server_id)


@bp.post("/servers/<server_id>/pause")
def pause(server_id: str):
    """Maintenance mode on: the server's new actions wait for approval."""
    by = _operator()
    return act(
        _page(server_id),
        lambda: maintenance.set_paused(server_id, True, by),
        lambda _: f"{server_id} paused: its new actions wait for approval.",
    )


@bp.post("/servers/<server_id>/resume")
def resume(server_id: str):
    """Maintenance mode off: new actions are approved automatically again."""
    by = _operator()
    return act(
        _page(server_id),
        lambda: maintenance.set_paused(server_id, False, by),
        lambda _: f"{server_id} resumed: new actions run without waiting.",
    )


@bp.post("/servers/<server_id>/run/<action_type>")
def run(server_id: str, action_type: str):
    """Queue one whitelisted action with the form's parameters (audited, rate-limited)."""
    ctx = context.current()
    caller = current_user()
    assert caller is not None  # the gate let only a signed-in operator through
    command_type = ctx.remediation.whitelist.types.get(action_type)

    def queue() -> Action:
        if command_type is None:
            # The same call as an unknown type through the API: refused, and audited.
            parameters: dict[str, str] = {}
        else:
            parameters = run_parameters(run_form(command_type))
        return actions.create_action(
            ctx.remediation.whitelist,
            server_id=server_id,
            action_type=action_type,
            parameters=parameters,
            created_by=caller.name,
            caller=caller,
            limiter=ctx.rate_limiter,
        )

    return act(_page(server_id), queue, _queued)


def _queued(action: Action) -> str:
    if action.status == ActionStatus.PENDING:
        return f"Action {action.id} ({action.action_type}) waits for approval: see Approvals."
    return f"Action {action.id} ({action.action_type}) queued; it runs within seconds."


@bp.post("/servers/<server_id>/enrollment/reset")
def reset_enrollment(server_id: str):
    """Revoke the server's bound agent keys so its agent enrolls again (audited)."""
    by = _operator()
    form = EnrollmentResetForm()

    def reset() -> int:
        if not form.confirm.data:
            raise ValidationFailed("Tick the box to confirm: the agent must enroll again.")
        return enrollment.reset_enrollment(server_id, by)

    return act(
        _page(server_id),
        reset,
        lambda revoked: f"Enrollment of {server_id} reset: {revoked} key(s) revoked.",
    )


def _operator() -> str:
    """The name changes are recorded under: the signed-in key's."""
    user = current_user()
    assert user is not None  # the gate let only a signed-in operator through
    return user.name
