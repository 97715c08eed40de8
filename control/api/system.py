"""Public operational endpoints: `GET /health` and `GET /metrics`."""

from __future__ import annotations

from flask import Blueprint, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from control import context
from control.db import db, write_problem
from control.errors import Unavailable

blp = Blueprint("system", __name__)


@blp.get("/health")
def health():
    """Liveness and readiness: 200 when the database answers, 503 otherwise."""
    try:
        db.execute_sql("SELECT 1")
        problem = write_problem()
    except Exception as exc:  # any failure to reach the database means "not ready"
        db.close()
        raise Unavailable(f"Database unavailable: {type(exc).__name__}") from None
    if problem:  # reachable but cannot take heartbeats: not ready either
        raise Unavailable(f"Database unavailable: {problem}")
    return jsonify({"status": "ok", "database": "ok", "version": context.current().version})


@blp.get("/metrics")
def metrics():
    """Control's own metrics in the Prometheus text format."""
    registry = context.current().metrics.registry
    return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}
