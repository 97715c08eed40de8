"""The HTTP API: flask-smorest `Api`, one Blueprint per resource, OpenAPI at /api/openapi.json."""

from __future__ import annotations

import flask_smorest
from flask import Flask

from control.api import (
    actions,
    agents,
    alerts,
    audit,
    commands,
    costs,
    docs,
    errors,
    events,
    prometheus,
    servers,
    system,
)
from control.api.auth import SECURITY_SCHEMES

RESOURCE_BLUEPRINTS = [
    servers.blp,
    commands.blp,
    agents.blp,
    actions.blp,
    events.blp,
    audit.blp,
    prometheus.blp,
    alerts.blp,
    costs.blp,
]

OPENAPI_CONFIG = {
    "API_TITLE": "homelabcmd control",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": docs.ASSETS_URL,
}


class ControlApi(flask_smorest.Api):
    """flask-smorest's Api with our error body documented (ERROR_SCHEMA is its public hook)."""

    ERROR_SCHEMA = errors.ErrorSchema


def init_app(app: Flask) -> ControlApi:
    """Attach the API, the docs and the public endpoints to `app`.

    Each app gets its own `ControlApi`: the OpenAPI spec is per app, so test apps never share one.
    """
    for key, value in OPENAPI_CONFIG.items():
        app.config.setdefault(key, value)
    api = ControlApi()
    api.init_app(
        app,
        spec_kwargs={
            "info": {
                "description": "Monitoring and remediation for a "
                "homelab or small fleet. Authenticate with "
                "`X-API-Key` or `Authorization: Bearer`."
            }
        },
    )
    for name, scheme in SECURITY_SCHEMES.items():
        if name not in api.spec.components.security_schemes:
            api.spec.components.security_scheme(name, scheme)
    # After Api.init_app: ours replace the handlers flask-smorest registered for the same
    # exception classes, through Flask's public API rather than a private flask-smorest hook.
    errors.init_app(app)
    for blueprint in RESOURCE_BLUEPRINTS:
        api.register_blueprint(blueprint)
    app.register_blueprint(system.blp)
    app.register_blueprint(docs.blp)
    return api
