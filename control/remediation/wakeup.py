"""The in-process notice that an action was approved, so the dispatcher runs it at once.

Domain functions announce; only the scheduler's dispatcher listens (it connects on start and
disconnects on stop). Without a listener in this process the notice is a no-op and the action
runs at the dispatcher's next poll, wherever the dispatcher runs.
"""

from __future__ import annotations

from blinker import Signal

from control.db import db

action_approved = Signal("an action became approved")


def announce_approved() -> None:
    """Tell this process's dispatcher (if any) that an approved action is waiting.

    Inside a transaction the row is not visible to the dispatcher yet, so the caller that
    commits announces instead.
    """
    if not db.in_transaction():
        action_approved.send()
