"""The words of a notification: one incident's message, or one summary of many incidents.

Plain text, short title first; the body ends with the console link. Whatever a box reported
(a container name in a health reason) stays text: channels get it as TEXT (see channels).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from control.config import SEVERITIES
from control.models import Notification, NotificationKind

TITLE = "homelabcmd"
SUMMARY_LINES = 20  # a summary lists this many incidents, then counts the rest
# Chat services refuse long messages (Discord at 2,000 characters, Telegram 4,096), and a
# refused message would be retried for hours: a body stays under the smallest limit.
MAX_BODY = 1800
MAX_LINE = 400
FOLDED_STATES = 10  # "N earlier changes": the first of them by name, then a count


def _body(lines: Sequence[str], link: str | None) -> str:
    """`lines` (each cut to MAX_LINE), then `link`, in at most MAX_BODY characters."""
    cut = [line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…" for line in lines]
    text = "\n".join(cut)
    room = MAX_BODY - (len(link) + 1 if link else 0)
    if len(text) > room:
        text = text[: room - 1] + "…"
    return f"{text}\n{link}" if link else text


@dataclass(frozen=True)
class Message:
    """A title, a body, and what it reports (error, warning, info or recovery)."""

    title: str
    body: str
    kind: str
    severity: str


def _worst(severities: Sequence[str]) -> str:
    return max(severities, key=SEVERITIES.index)


def incident(rows: Sequence[Notification]) -> Message:
    """The message of one incident: its newest row, and the changes folded into it."""
    newest = rows[-1]
    subject = newest.server_id or newest.event_type
    lines = [newest.message]
    if len(rows) > 1:
        earlier = [row.state or row.event_type for row in rows[:-1]]
        plural = "s" if len(earlier) > 1 else ""
        named = ", ".join(earlier[:FOLDED_STATES])
        if len(earlier) > FOLDED_STATES:
            named += f", … ({len(earlier) - FOLDED_STATES} more)"
        lines.append(f"{len(earlier)} earlier change{plural} since the last message: {named}")
    body = _body(lines, newest.link)
    if newest.kind == NotificationKind.APPROVAL:
        return Message(f"{TITLE}: approval needed on {subject}", body, "warning", "warning")
    if newest.kind == NotificationKind.RECOVERY:
        return Message(f"{TITLE}: {subject} recovered", body, "recovery", "info")
    return Message(f"{TITLE} {newest.severity}: {subject}", body, newest.severity, newest.severity)


def summary(incidents: Sequence[Sequence[Notification]], link: str) -> Message:
    """One message for many incidents at once (a fleet-wide outage): counts, then a line each.

    The worst first; past `SUMMARY_LINES` the rest are counted, and the link leads to the
    fleet page, which lists every server worst first.
    """
    newest = sorted(
        (rows[-1] for rows in incidents),
        key=lambda row: (-SEVERITIES.index(row.severity), row.server_id or "", row.id),
    )
    counts = Counter(row.state or row.event_type for row in newest)
    what = "servers" if all(row.server_id for row in newest) else "notifications"
    tally = ", ".join(f"{number} {state}" for state, number in counts.most_common())
    lines = [row.message for row in newest[:SUMMARY_LINES]]
    if len(newest) > SUMMARY_LINES:
        lines.append(f"… and {len(newest) - SUMMARY_LINES} more")
    severity = _worst([row.severity for row in newest])
    body = _body(lines, link)
    return Message(f"{TITLE}: {len(newest)} {what} ({tally})", body, severity, severity)
