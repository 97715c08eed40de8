"""The application factory: settings → database → API and console, ready for any WSGI server."""

from __future__ import annotations

import time
from importlib import metadata
from typing import Any

from flask import Flask, g, request

from control import api, console, context, db, migrations
from control.api import heartbeat_wsgi
from control.config import Settings, console_secret_key, load_settings
from control.context import ControlContext
from control.errors import NotFound
from control.jsonprovider import OrjsonProvider
from control.keys import KeyRing
from control.metrics import ControlMetrics
from control.notify import routing
from control.remediation.ratelimit import KeyRateLimiter
from control.remediation.rules import load_rules
from control.remediation.runner import Remediation


def package_version() -> str:
    """The installed homelabcmd version (or 0.0.0 when running from a bare checkout)."""
    try:
        return metadata.version("homelabcmd")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class ControlFlask(Flask):
    """Flask with the orjson-backed JSON provider."""

    json_provider_class = OrjsonProvider
    json: OrjsonProvider


def create_app(config: Settings | dict[str, Any] | None = None) -> Flask:
    """Build the control app from Settings, a dict of setting overrides, or the environment.

    Binds and migrates the database as a side effect; the scheduler is started separately
    (`homelab-control serve` does both).
    """
    settings = config if isinstance(config, Settings) else load_settings(**(config or {}))
    # This process's events queue notifications by these routes (checked: bad ones refuse).
    routing.configure(settings)
    db.bind(db.open_database(settings.resolved_database_url))
    migrations.migrate()

    app = ControlFlask("control")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    # Signs the console's session cookies and CSRF tokens (HOMELAB_SECRET_KEY, or generated
    # once into the data dir); the API never uses it.
    app.secret_key = console_secret_key(settings)
    app.json.sort_keys = False
    metrics = ControlMetrics(settings.electricity_price, settings.currency)
    remediation = Remediation(settings, observe=metrics.observe_command)
    ControlContext(
        settings=settings,
        keyring=KeyRing(
            settings.operator_key, settings.agent_key, settings.viewer_key, settings.alerts_key
        ),
        metrics=metrics,
        version=package_version(),
        remediation=remediation,
        rate_limiter=KeyRateLimiter(settings.rate_limit),
        remediation_rules=load_rules(remediation.whitelist, settings.commands_file or None),
    ).install(app)
    api.init_app(app)
    console.init_app(app)  # /ui/, and / redirecting there
    _install_request_hooks(app)
    heartbeat_wsgi.install(app)  # in front of all of it, for plain heartbeats
    return app


def _install_request_hooks(app: Flask) -> None:
    """Per request: make sure this thread has a database connection; time the request.

    The request histogram's labels come from fixed sets only (a standard method or `other`, a
    route template or `unmatched`), so no client can add series by inventing methods or paths.
    """
    request_duration = context.of(app).metrics.request_duration
    known_methods = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

    @app.before_request
    def _start():
        g.started = time.perf_counter()
        if "\x00" in request.path:
            # No id holds a NUL, and PostgreSQL would refuse to even compare one.
            raise NotFound("Not found")
        db.db.connect(reuse_if_open=True)

    @app.after_request
    def _observe(response):
        # The route template, not the raw path, so ids do not explode the label set; a method
        # any client may make up (405 on a real route) is `other`, never its own series.
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        method = request.method if request.method in known_methods else "other"
        request_duration.labels(method, endpoint, str(response.status_code)).observe(
            time.perf_counter() - g.get("started", time.perf_counter())
        )
        return response
