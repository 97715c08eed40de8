"""Public operational endpoints: `GET /health` and `GET /metrics`."""

from __future__ import annotations

from flask import Blueprint, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from control import context
from control.db import db, drop_broken_connection, write_problem
from control.errors import Unavailable

blp = Blueprint("system", __name__)


@blp.get("/health")
def health():
    """Liveness and readiness: 200 when the database answers and takes writes, else 503.

    The 503's message says why: unreachable, file missing, read-only, disk full, or the write
    probe's error (see `control.db.write_problem`).
    """
    try:
        db.execute_sql("SELECT 1")
        problem = write_problem()
    except Exception as exc:  # any failure to reach the database means "not ready"
        drop_broken_connection(exc)
        raise Unavailable(f"Database unavailable: {type(exc).__name__}") from None
    if problem:  # reachable but cannot take heartbeats: not ready either
        raise Unavailable(f"Database unavailable: {problem}")
    return jsonify({"status": "ok", "database": "ok", "version": context.current().version})


@blp.get("/metrics")
def metrics():
    """Control's own metrics in the Prometheus text format.

    Under `serve --workers` the registry sums every worker's counters from their shared
    directory, so any worker's answer is the whole (control.metrics.ControlMetrics).
    """
    registry = context.current().metrics.registry
    return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}
