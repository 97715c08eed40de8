"""The approval gate as an operator sees it: what waits for a decision, and what was decided.

Approving and rejecting themselves are `control.remediation.actions.approve_action` and
`reject_action`, the same calls the API makes; this module only reads the queue.
"""

from __future__ import annotations

from control.models import Action, ActionStatus
from control.queries import page


def pending_actions(limit: int = 100) -> tuple[list[Action], int]:
    """Actions waiting for approval, oldest first (the longest wait at the top), and how many."""
    query = Action.select().where(Action.status == ActionStatus.PENDING)
    return page(query, Action.id, limit)


def decided_actions(
    *, server_id: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Action], int]:
    """Actions past the gate (approved, running, done or rejected), newest first, and how many."""
    query = Action.select().where(Action.status != ActionStatus.PENDING)
    if server_id is not None:
        query = query.where(Action.server_id == server_id)
    return page(query, Action.id.desc(), limit, offset)


def count_pending() -> int:
    """How many actions wait for approval (the console shows it beside "Approvals")."""
    count: int = Action.select().where(Action.status == ActionStatus.PENDING).count()
    return count
