"""`/ui/approvals`: the approval gate. Pending actions with Approve / Reject, then the history.

Approving and rejecting call `control.remediation.actions.approve_action` / `reject_action`,
the API's own calls, under the signed-in key's name.
"""

from __future__ import annotations

from flask import request, url_for

from control import context
from control.console import query
from control.console.blueprint import bp
from control.console.forms import REASON_MAX, RejectForm
from control.console.pages import act, back_to, flash_error, render_page
from control.console.session import current_user
from control.models import Action
from control.remediation import actions, approvals

HISTORY_PAGE = 50


@bp.get("/approvals", endpoint="approvals")
def approvals_page():
    """Every pending action (the longest wait first), then decided actions, newest first."""
    server_id = query.server_id(request.args)
    offset = query.offset(request.args)
    return render_page(
        "approvals.html",
        pending=approvals.pending_actions(),
        history=approvals.decided_actions(server_id=server_id, limit=HISTORY_PAGE, offset=offset),
        filters={"server": server_id},
        offset=offset,
        page_size=HISTORY_PAGE,
        active="approvals",
        refresh=15,
    )


def _signed_in_name() -> str:
    user = current_user()
    assert user is not None  # the gate let only a signed-in operator through
    return user.name


@bp.post("/actions/<int:action_id>/approve")
def approve(action_id: int):
    """Approve a pending action: the dispatcher runs it within a second or two."""
    by = _signed_in_name()
    return act(
        url_for("console.approvals"),
        lambda: actions.approve_action(action_id, by, context.current().remediation.whitelist),
        lambda action: _approved(action),
    )


def _approved(action: Action) -> str:
    return f"Action {action.id} ({action.action_type} on {action.server_id}) approved; it runs now."


@bp.post("/actions/<int:action_id>/reject")
def reject(action_id: int):
    """Reject a pending action with a reason; it never runs."""
    by = _signed_in_name()
    form = RejectForm()
    if not form.validate():
        flash_error(f"A rejection needs a reason (up to {REASON_MAX} characters).")
        return back_to(url_for("console.approvals"))
    reason = (form.reason.data or "").strip()
    return act(
        url_for("console.approvals"),
        lambda: actions.reject_action(action_id, by, reason),
        lambda action: f"Action {action.id} rejected.",
    )
