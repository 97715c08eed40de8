"""The dispatcher: runs approved actions promptly, each at most once, on a bounded worker pool.

It polls every second (and wakes at once when this process approves something), claims each
approved action with a conditional UPDATE and runs it on a worker thread. Only the scheduler
that holds the lease dispatches, so a standby never competes; the claim alone already makes a
double run impossible.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import peewee

from control.db import db
from control.errors import CommandTimeout, ControlError, SshError
from control.models import Server
from control.remediation import actions, wakeup
from control.remediation.audit import AuditSource
from control.remediation.runner import Remediation

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


class Dispatcher:
    """Claims approved actions and executes them through `Remediation`."""

    def __init__(
        self, remediation: Remediation, holder: str, workers: int, is_leader: Callable[[], bool]
    ):
        self.remediation = remediation
        self.holder = holder
        self.workers = workers
        self.is_leader = is_leader
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dispatch")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._in_flight = threading.BoundedSemaphore(workers)
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)

    def start(self) -> None:
        """Start polling, and listen for actions this process approves."""
        wakeup.action_approved.connect(self._on_approved)
        self._thread.start()

    def _on_approved(self, _sender: object) -> None:
        self.wake()

    def wake(self) -> None:
        """Look for approved actions now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming and wait for running commands to finish."""
        wakeup.action_approved.disconnect(self._on_approved)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                db.connect(reuse_if_open=True)
                if self.is_leader():
                    self.dispatch_once()
            except peewee.DatabaseError as exc:
                log.warning("dispatcher: database unavailable: %s", exc)
                db.close()

    def dispatch_once(self) -> list[int]:
        """Claim as many approved actions as there are free workers; return the claimed ids."""
        claimed = []
        for action_id in actions.approved_action_ids(limit=self.workers * 2):
            if not self._in_flight.acquire(blocking=False):
                break
            if actions.claim_action(action_id, self.holder):
                claimed.append(action_id)
                self._pool.submit(self._execute_and_release, action_id)
            else:
                self._in_flight.release()
        return claimed

    def _execute_and_release(self, action_id: int) -> None:
        try:
            db.connect(reuse_if_open=True)
            self.execute(action_id)
        except Exception:  # a worker must survive anything one action does
            log.exception("action %d: unexpected failure", action_id)
            try:
                actions.finish_action(action_id, None, failure_reason="internal error")
            except peewee.DatabaseError:
                db.close()
        finally:
            self._in_flight.release()

    def execute(self, action_id: int) -> None:
        """Run one claimed action and record its outcome."""
        action = actions.get_action(action_id)
        server = Server.get_or_none(Server.id == action.server_id)
        if server is None:
            actions.finish_action(action_id, None, failure_reason="server no longer exists")
            return
        try:
            whitelist = self.remediation.whitelist
            # Checked again when it runs: the server's updates may have been turned off since
            # the action was approved, whoever approved it.
            actions.software_gate(server, whitelist.command_type(action.action_type))
            # Rendered again from the current whitelist: a type removed since is not run.
            argv = whitelist.render(action.action_type, json.loads(action.parameters))
            result = self.remediation.run(
                server,
                argv,
                actor=f"dispatcher (action by {action.created_by})",
                scope=None,
                source=AuditSource.ACTION,
                action_type=action.action_type,
                action_id=action_id,
            )
        except CommandTimeout as exc:
            actions.finish_action(action_id, None, failure_reason=f"timeout: {exc.message}")
        except SshError as exc:
            actions.finish_action(action_id, None, failure_reason=f"ssh error: {exc.message}")
        except ControlError as exc:
            actions.finish_action(action_id, None, failure_reason=exc.message)
        else:
            actions.finish_action(action_id, result.exit_code, result.stdout, result.stderr)
