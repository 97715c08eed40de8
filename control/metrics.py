"""Control's own Prometheus metrics, served at `GET /metrics`.

Fleet-wide facts (servers by status, last heartbeat per server, scheduler runs) are read from
the database at scrape time, so every API process reports the same numbers and the scheduler
may run in a process of its own.

The counters and histograms this process counts itself (heartbeats, request latency, auth
failures, alerts, command durations) live in memory, one registry per app, except under
`serve --workers`: there the main process points `PROMETHEUS_MULTIPROC_DIR` at a fresh private
directory before the workers start (control/workers.py), prometheus_client keeps every
worker's values in files there (its multiprocess mode), and each scrape sums them, whichever
worker answers.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import os
from collections.abc import Iterable
from typing import cast

import peewee
import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from control.fleet import costs, servers
from control.fleet.health import same_commit
from control.models import AlertStatus, JobRun, Server, ServerHealth, ServerStatus
from control.notify import outbox
from control.remediation import actions

log = logging.getLogger(__name__)

# missing/invalid/forbidden: authentication; not_bound: an agent key refused for a server it
# may not speak for (enrollment); enroll_rate: an unbound key past its hourly enrollments.
AUTH_FAILURE_REASONS = ("missing", "invalid", "forbidden", "not_bound", "enroll_rate")

prometheus_client.disable_created_metrics()  # no `_created` series: they only add noise

# prometheus_client's switch to multiprocess mode: read once, when it is first imported.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory this process shares its metric values through, or None when it keeps
    them in memory (single-process `serve`, the scheduler, tests).

    prometheus_client chose between the two when it was imported, from `MULTIPROC_ENV`, so
    that choice is what counts here, not the variable now: a variable set after the import
    changed nothing.
    """
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get(MULTIPROC_ENV) or None


def _epoch(value) -> float:
    """Naive-UTC datetime → Unix seconds."""
    return calendar.timegm(value.utctimetuple()) + value.microsecond / 1e6


class FleetCollector:
    """Reads fleet state from the database at each scrape."""

    def __init__(self, electricity_price: float = 0.30, currency: str = "EUR") -> None:
        self.electricity_price = electricity_price
        self.currency = currency

    def collect(self):
        """Yield the fleet's metric families; only `homelab_database_up 0` if the DB is down."""
        up = GaugeMetricFamily("homelab_database_up", "Whether control could read its database.")
        try:
            families = list(self._fleet_families())
        except peewee.DatabaseError as exc:
            log.warning("metrics: database unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _fleet_families(self):
        by_status = GaugeMetricFamily("homelab_servers", "Servers by status.", labels=["status"])
        for status, count in servers.count_by_status().items():
            by_status.add_metric([status], count)
        yield by_status
        yield from self._server_families()
        runs = CounterMetricFamily(
            "homelab_scheduler_job_runs", "Scheduler job runs.", labels=["job", "result"]
        )
        last_run = GaugeMetricFamily(
            "homelab_scheduler_last_run_timestamp_seconds",
            "When each scheduler job last ran.",
            labels=["job"],
        )
        for job in JobRun.select():
            runs.add_metric([job.job, "ok"], job.successes)
            runs.add_metric([job.job, "error"], job.failures)
            last_run.add_metric([job.job], _epoch(job.last_run_at))
        yield runs
        yield last_run
        by_status = GaugeMetricFamily(
            "homelab_actions", "Remediation actions by status.", labels=["status"]
        )
        for status, count in actions.count_by_status().items():
            by_status.add_metric([status], count)
        yield by_status
        yield from self._notification_families()
        yield from self._cost_families()

    def _notification_families(self):
        """Notifications sent, failed and queued per channel scheme (`ntfy`, `json`, …).

        The scheme is all a label shows of a channel: its URL holds secrets.
        """
        sent = CounterMetricFamily(
            "homelab_notifications_sent",
            "Notification messages delivered, by channel scheme.",
            labels=["scheme"],
        )
        failed = CounterMetricFamily(
            "homelab_notifications_failed",
            "Notification send attempts that failed (each is retried with backoff), by "
            "channel scheme.",
            labels=["scheme"],
        )
        for tally in outbox.tallies():
            sent.add_metric([tally.scheme], tally.sent)
            failed.add_metric([tally.scheme], tally.failed)
        yield sent
        yield failed
        queued = GaugeMetricFamily(
            "homelab_notifications_queued",
            "Notifications waiting in the outbox (first send, retry or cooldown), by channel "
            "scheme.",
            labels=["scheme"],
        )
        for scheme, count in sorted(outbox.queued_by_scheme().items()):
            queued.add_metric([scheme], count)
        yield queued

    def _server_families(self):
        """Per-server facts in one query: last heartbeat, health, and the state rules join on.

        Status, pause, display name and health change at run time, so they are not Prometheus
        target labels (see fleet/targets.py): they are these series of control's, one set per
        server, which alert rules and dashboards join `on (server_id)`. The fleet's counts by
        health come from the same rows.
        """
        last_seen = GaugeMetricFamily(
            "homelab_server_last_seen_timestamp_seconds",
            "When control last received a heartbeat from the server.",
            labels=["server_id"],
        )
        status = GaugeMetricFamily(
            "homelab_server_status",
            "1 for the server's current status, 0 for the others (one series per status).",
            labels=["server_id", "status"],
        )
        paused = GaugeMetricFamily(
            "homelab_server_paused",
            "1 while the server is paused for maintenance, else 0.",
            labels=["server_id"],
        )
        info = GaugeMetricFamily(
            "homelab_server_info",
            "Always 1; carries the server's display name (empty when none is set).",
            labels=["server_id", "display_name"],
        )
        health = GaugeMetricFamily(
            "homelab_server_health",
            "1 for the server's current health, 0 for the others (one series per health).",
            labels=["server_id", "health"],
        )
        drift = GaugeMetricFamily(
            "homelab_server_version_drift",
            "1 when the server does not run the commit of its version lock, else 0; only "
            "servers with a version lock.",
            labels=["server_id"],
        )
        by_health: dict[str, int] = dict.fromkeys(ServerHealth, 0)
        # .tuples() yields plain rows; peewee's stubs keep the row type as Server.
        rows = cast(
            Iterable[
                tuple[str, dt.datetime | None, str, bool, str | None, str, str | None, str | None]
            ],
            Server.select(
                Server.id,
                Server.last_seen,
                Server.status,
                Server.is_paused,
                Server.display_name,
                Server.health,
                Server.version_lock,
                Server.current_commit_hash,
            )
            .order_by(Server.id)
            .tuples(),
        )
        for server_id, seen, current, is_paused, display_name, judged, lock, commit in rows:
            if seen is not None:
                last_seen.add_metric([server_id], _epoch(seen))
            # Every status always has its series (state-set style): a change flips values
            # instead of creating and ending series.
            for value in ServerStatus:
                status.add_metric([server_id, value], float(current == value))
            paused.add_metric([server_id], float(bool(is_paused)))
            info.add_metric([server_id, display_name or ""], 1)
            for state in ServerHealth:
                health.add_metric([server_id, state], float(judged == state))
            by_health[judged] = by_health.get(judged, 0) + 1
            if lock:
                # As control.fleet.health judges it: no reported commit is drift too.
                drifted = not (commit and same_commit(commit, lock))
                drift.add_metric([server_id], float(drifted))
        yield last_seen
        yield status
        yield paused
        yield info
        yield health
        yield drift
        counts = GaugeMetricFamily(
            "homelab_servers_by_health", "Servers by health.", labels=["health"]
        )
        for judged, count in by_health.items():
            counts.add_metric([judged], count)
        yield counts

    def _cost_families(self):
        """Estimated power and cost per server with a TDP (see fleet/costs.py), and the price."""
        price = GaugeMetricFamily(
            "homelab_electricity_price",
            "Electricity price per kWh used for cost estimates.",
            labels=["currency"],
        )
        price.add_metric([self.currency], self.electricity_price)
        yield price
        watts = GaugeMetricFamily(
            "homelab_server_power_watts",
            "Estimated power draw of the server from its TDP and CPU use.",
            labels=["server_id"],
        )
        monthly = GaugeMetricFamily(
            "homelab_server_cost_per_month",
            "Estimated electricity cost of the server per 30 days, in the price's currency.",
            labels=["server_id"],
        )
        for cost in costs.fleet_costs(self.electricity_price, self.currency).counted:
            # Never None: `counted` keeps only the servers with an estimate.
            watts.add_metric([cost.server.id], cast(float, cost.watts))
            monthly.add_metric([cost.server.id], cast(float, cost.cost_per_month))
        yield watts
        yield monthly


class ControlMetrics:
    """The metrics an app counts, and `registry`, the one `GET /metrics` renders.

    In memory (no multiprocess directory): one registry per app, holding the metrics, so
    several apps in one process (tests) never collide on metric names.

    Multiprocess (`serve --workers`, one app per worker process): the metrics are registered
    nowhere, since their values are in the shared directory, and `registry` reads that
    directory, summed over every worker that ever ran, plus the database once. There are no
    gauges here, so no `multiprocess_mode` to choose: the fleet's gauges are read from the
    database at each scrape.
    """

    def __init__(self, electricity_price: float = 0.30, currency: str = "EUR") -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir()
        # Where the metric objects register: with a multiprocess collector on `registry`
        # they would come twice, this process's values beside the sum.
        own: CollectorRegistry | None = self.registry
        if self.multiprocess_dir:
            MultiProcessCollector(self.registry, path=self.multiprocess_dir)
            own = None
        self.heartbeats = Counter(
            "homelab_heartbeats_received",
            "Heartbeats accepted (by all API processes together under serve --workers).",
            registry=own,
        )
        self.request_duration = Histogram(
            "homelab_http_request_duration_seconds",
            "API request latency.",
            ["method", "endpoint", "status"],
            registry=own,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.command_duration = Histogram(
            "homelab_command_duration_seconds",
            "Remote command duration, by action type.",
            ["action_type", "source"],
            registry=own,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.alerts_received = Counter(
            "homelab_alerts_received",
            "Alerts received on the Alertmanager webhook, by alert status.",
            ["status"],
            registry=own,
        )
        for status in AlertStatus:
            self.alerts_received.labels(status)  # both series exist from the start
        # Requests refused by authentication: counted, not audited (they carry no key to name,
        # and a flood of them must not fill the database).
        self.auth_failures = Counter(
            "homelab_auth_failures",
            "Requests refused for their API key: missing, invalid (unknown or revoked), "
            "forbidden (a valid key outside its scope), not_bound (an agent key for a server "
            "it may not speak for) or enroll_rate (past the hourly enrollments).",
            ["reason"],
            registry=own,
        )
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason)
        self.registry.register(FleetCollector(electricity_price, currency))

    def count_alerts(self, delivered: list[dict]) -> None:
        """Count each alert of one Alertmanager delivery by its status."""
        for alert in delivered:
            self.alerts_received.labels(alert["status"]).inc()

    def observe_command(self, action_type: str, source: str, seconds: float) -> None:
        """Record one remote command's duration (called by Remediation)."""
        self.command_duration.labels(action_type, source).observe(seconds)
