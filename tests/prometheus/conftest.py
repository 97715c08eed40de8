"""Fixtures for the Prometheus / Alertmanager / Grafana / compose files at the repo root.

Every check runs the real tool (promtool, prometheus, amtool, alertmanager, docker-compose):
locally a missing one skips its tests, in CI (`CI=true`) it fails them.
"""

from __future__ import annotations

import pytest

from tests.helpers import require_binary
from tests.prometheus.files import REPO


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool (Debian package `prometheus`)."""
    return require_binary("promtool", "promtool (Debian package prometheus)")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of the prometheus server (Debian package `prometheus`)."""
    return require_binary("prometheus", "prometheus (Debian package prometheus)")


@pytest.fixture(scope="session")
def amtool() -> str:
    """Path of amtool (Debian package `prometheus-alertmanager`)."""
    return require_binary("amtool", "amtool (Debian package prometheus-alertmanager)")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    """Path of Alertmanager (Debian names it `prometheus-alertmanager`)."""
    return require_binary(
        "prometheus-alertmanager", "Alertmanager (Debian package prometheus-alertmanager)"
    )


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Path of docker-compose (Debian package `docker-compose`; no daemon needed)."""
    return require_binary("docker-compose", "docker-compose (Debian package docker-compose)")


@pytest.fixture(scope="session")
def repo():
    """The repository root."""
    return REPO
