"""What the request handlers need from the app, and the one accessor they reach it through."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app

from control.config import Settings
from control.keys import KeyRing
from control.metrics import ControlMetrics
from control.remediation.ratelimit import KeyRateLimiter
from control.remediation.rules import RemediationRules
from control.remediation.runner import Remediation

EXTENSION = "homelab"


@dataclass
class ControlContext:
    """Per-app objects built once by `create_app`: settings, keys, metrics, remediation."""

    settings: Settings
    keyring: KeyRing
    metrics: ControlMetrics
    version: str
    remediation: Remediation
    rate_limiter: KeyRateLimiter
    remediation_rules: RemediationRules = field(default_factory=RemediationRules)

    def install(self, app: Flask) -> None:
        """Attach this context to `app`, where `current()` finds it."""
        app.extensions[EXTENSION] = self


def current() -> ControlContext:
    """The context of the app handling the current request."""
    context: ControlContext = current_app.extensions[EXTENSION]
    return context


def of(app: Flask) -> ControlContext:
    """The context of `app`, outside a request (the CLI, tests)."""
    context: ControlContext = app.extensions[EXTENSION]
    return context
