"""Swagger UI assets served from the installed `swagger-ui-bundle` package, never a CDN."""

from __future__ import annotations

import swagger_ui_bundle
from flask import Blueprint, send_from_directory

ASSETS_URL = "/api/docs/assets/"

blp = Blueprint("docs_assets", __name__)


@blp.get(ASSETS_URL + "<path:filename>")
def swagger_asset(filename: str):
    """One Swagger UI file (JS, CSS, icons) from the local package."""
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
