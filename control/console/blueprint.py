"""The console's Blueprint: every page under `/ui/`, its templates and static files beside it."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
)
