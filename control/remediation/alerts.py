"""Alerts from Alertmanager: stored once per occurrence, and turned into actions by the rules.

An occurrence is (fingerprint, starts_at): a redelivery of it updates the row, a resolved
delivery marks it resolved for good, and an alert that fires again after resolving (a new
starts_at) is a new row. A firing alert matching a remediation rule queues an action through
`actions.create_action`, so the whitelist and the approval gate apply exactly as for an
operator's request. What happened is kept on the alert (`remediation`, `remediation_detail`):

- `queued`: this alert's action is `action_id`;
- `duplicate`: the same action was already open (409), `action_id` is that one;
- `refused`: no action, and why (no server_id label, unknown server, a label value the
  whitelist rejects, a label the rule needs is missing).

A still-firing alert is remediated again only once its own action has finished and was created
more than `RETRY_AFTER` ago (Alertmanager repeats every 4 h; regrouping resends every few
minutes and must not restart a service each time). A rejected action is never retried for the
same occurrence.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from control.bounds import PAGE_LIMIT_DEFAULT, SERVER_ID
from control.db import db, is_sqlite, write_transaction
from control.errors import CommandNotAllowed, Conflict, NotFound, ValidationFailed
from control.fleet import events
from control.fleet.events import EventType
from control.models import OPEN_ACTION_STATUSES, Action, ActionStatus, Alert, AlertStatus, utcnow
from control.queries import filtered, get_or_404, page
from control.remediation import actions
from control.remediation.rules import RemediationRule, RemediationRules, RuleNotApplicable
from control.remediation.wakeup import announce_approved
from control.remediation.whitelist import Whitelist

RETRY_AFTER = dt.timedelta(hours=1)


class RemediationOutcome(enum.StrEnum):
    """The values of `Alert.remediation`."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


@dataclass
class Received:
    """What one webhook call did: the alert rows, and whether an approved action was queued."""

    alerts: list[Alert] = field(default_factory=list)
    queued_approved: bool = False


def get_alert(alert_id: int) -> Alert:
    """One alert, or NotFound."""
    return get_or_404(Alert, alert_id, f"Alert {alert_id}")


def list_alerts(
    *,
    status: str | None = None,
    alertname: str | None = None,
    server_id: str | None = None,
    limit: int | None = PAGE_LIMIT_DEFAULT,
    offset: int = 0,
) -> tuple[list[Alert], int]:
    """A page of alerts, newest first, and how many match the filters."""
    query = filtered(
        Alert.select(),
        [(Alert.status, status), (Alert.alertname, alertname), (Alert.server_id, server_id)],
    )
    return page(query, Alert.id.desc(), limit, offset)


def receive(
    incoming: list[dict[str, Any]],
    rules: RemediationRules,
    whitelist: Whitelist,
    now: dt.datetime | None = None,
) -> Received:
    """Store each alert of one webhook delivery and apply the remediation rules to it.

    Each item has `status`, `labels`, `annotations`, `starts_at`, `ends_at` (naive UTC or
    None), `generator_url` and `fingerprint`, already validated.
    """
    now = now or utcnow()
    received = Received()
    for item in incoming:
        alert = _store(item, now)
        if alert.status == AlertStatus.FIRING and _remediate(alert.id, rules, whitelist, now):
            received.queued_approved = True
        received.alerts.append(get_alert(alert.id))
    if received.queued_approved:
        announce_approved()
    return received


def _occurrence(item: dict[str, Any]) -> pw.Expression:
    occurrence: pw.Expression = (Alert.fingerprint == item["fingerprint"]) & (
        Alert.starts_at == item["starts_at"]
    )
    return occurrence


def _store(item: dict[str, Any], now: dt.datetime) -> Alert:
    """Insert or update the occurrence; a resolved occurrence never goes back to firing."""
    labels = item["labels"]
    server_id = labels.get("server_id")
    if server_id is not None and not SERVER_ID.fullmatch(server_id):
        server_id = None  # not one of ours; the label itself is kept in `labels`
    content = {
        "status": item["status"],
        "labels": json.dumps(labels, sort_keys=True),
        "annotations": json.dumps(item["annotations"], sort_keys=True),
        "ends_at": item["ends_at"],
        "generator_url": item.get("generator_url"),
    }
    with write_transaction():
        alert = Alert.get_or_none(_occurrence(item))
        if alert is None:
            try:
                with db.atomic():  # savepoint: a concurrent delivery may insert it first
                    alert = Alert.create(
                        fingerprint=item["fingerprint"],
                        alertname=labels["alertname"],
                        starts_at=item["starts_at"],
                        server_id=server_id,
                        first_received_at=now,
                        last_received_at=now,
                        **content,
                    )
                _record_event(alert, item["status"])
                return alert
            except pw.IntegrityError:
                alert = Alert.get(_occurrence(item))
        changes: dict[Any, Any] = {
            Alert.last_received_at: now,
            Alert.received_count: Alert.received_count + 1,
        }
        if alert.status != AlertStatus.RESOLVED:
            changes.update({getattr(Alert, key): value for key, value in content.items()})
        Alert.update(changes).where(Alert.id == alert.id).execute()
        if alert.status != AlertStatus.RESOLVED and item["status"] == AlertStatus.RESOLVED:
            _record_event(alert, AlertStatus.RESOLVED)
    return get_alert(alert.id)


def _record_event(alert: Alert, status: str) -> None:
    where = f" on {alert.server_id}" if alert.server_id else ""
    events.record(
        EventType.ALERT_FIRING if status == AlertStatus.FIRING else EventType.ALERT_RESOLVED,
        f"alert {alert.alertname} {status}{where}",
        server_id=alert.server_id,
        details={"alert_id": alert.id, "fingerprint": alert.fingerprint},
    )


def _remediate(
    alert_id: int, rules: RemediationRules, whitelist: Whitelist, now: dt.datetime
) -> bool:
    """Apply the first matching rule; True when it queued an approved action."""
    with write_transaction():
        query = Alert.select().where(Alert.id == alert_id)
        # Serialise deliveries of the same alert (SQLite's write lock already does).
        alert = (query if is_sqlite() else query.for_update()).get()
        labels = json.loads(alert.labels)
        rule = rules.find(alert.alertname, labels)
        if rule is None or not _due(alert, now):
            return False
        action_id, outcome, detail = _queue(alert, labels, rule, whitelist)
        Alert.update(
            action_id=action_id,
            remediation_rule=rule.name,
            remediation=outcome,
            remediation_detail=detail,
        ).where(Alert.id == alert_id).execute()
        if outcome != RemediationOutcome.QUEUED or action_id is None:
            return False
        return Action.get_by_id(action_id).status == ActionStatus.APPROVED


def _due(alert: Alert, now: dt.datetime) -> bool:
    """Whether to try the rule now: no own action yet, or it finished long enough ago."""
    if alert.action_id is None:
        return True
    own = Action.get_or_none((Action.id == alert.action_id) & (Action.alert_id == alert.id))
    if own is None:  # no action, or another alert's (a duplicate): try again
        return True
    if own.status in OPEN_ACTION_STATUSES or own.status == ActionStatus.REJECTED:
        return False
    return now - own.created_at >= RETRY_AFTER


def _queue(
    alert: Alert, labels: dict[str, str], rule: RemediationRule, whitelist: Whitelist
) -> tuple[int | None, str, str]:
    """Create the rule's action; return (action_id, remediation outcome, detail)."""
    server_id = labels.get("server_id")
    if not server_id:
        return None, RemediationOutcome.REFUSED, "the alert has no server_id label"
    if not SERVER_ID.fullmatch(server_id):
        return None, RemediationOutcome.REFUSED, "the alert's server_id label is not a server id"
    try:
        parameters = rule.render(labels)
        action = actions.create_action(
            whitelist,
            server_id=server_id,
            action_type=rule.action_type,
            parameters=parameters,
            created_by="alertmanager",
            alert_id=alert.id,
        )
    except Conflict as exc:
        existing = actions.find_open_action(
            server_id, rule.action_type, actions.canonical_parameters(parameters)
        )
        if existing is not None and existing.alert_id == alert.id:
            return existing.id, RemediationOutcome.QUEUED, f"action {existing.id} {existing.status}"
        return (existing.id if existing else None), RemediationOutcome.DUPLICATE, exc.message
    except ValidationFailed as exc:
        problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in sorted((exc.errors or {}).items()))
        return (
            None,
            RemediationOutcome.REFUSED,
            f"{exc.message}: {problems}" if problems else exc.message,
        )
    except (NotFound, CommandNotAllowed) as exc:
        return None, RemediationOutcome.REFUSED, exc.message
    except RuleNotApplicable as exc:
        return None, RemediationOutcome.REFUSED, str(exc)
    gate = "auto-approved" if action.status == ActionStatus.APPROVED else "waiting for approval"
    return action.id, RemediationOutcome.QUEUED, f"action {action.id} {action.status} ({gate})"
