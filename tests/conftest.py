"""Shared fixtures: an app on SQLite *and* on a real PostgreSQL, clients and keys per scope.

Every test that uses `app` (or `client`) runs twice: once against a fresh SQLite file, once
against a throwaway PostgreSQL cluster this module starts in a temp directory.
"""

from __future__ import annotations

import os

# Before anything imports prometheus_client: a developer's shell must not put the suite's
# in-process apps into multiprocess mode (shared metric files; control/metrics.py).
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import pytest

from control.config import load_settings
from tests.helpers import AuthHeaders
from tests.postgres import PostgresCluster, require_binary

pytest_plugins = ["tests.sshd", "tests.lanes"]

OPERATOR_KEY = "test-operator-key"
AGENT_KEY = "test-agent-key"
VIEWER_KEY = "test-viewer-key"


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory):
    """A real PostgreSQL server on 127.0.0.1, started once per test session."""
    require_binary(PostgresCluster.find_bin("initdb"), "PostgreSQL (initdb)")
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A database URL: a fresh SQLite file, or the shared PostgreSQL database, emptied after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'homelab.db'}"
        return
    cluster = request.getfixturevalue("postgres_cluster")
    yield cluster.url
    cluster.truncate_all()


@pytest.fixture
def settings_overrides():
    """Override in a test module to tune settings (e.g. short offline intervals)."""
    return {}


@pytest.fixture
def settings(database_url, tmp_path, settings_overrides):
    """Settings isolated from the environment of whoever runs the tests."""
    return load_settings(
        environ={},
        data_dir=str(tmp_path),
        database_url=database_url,
        operator_key=OPERATOR_KEY,
        agent_key=AGENT_KEY,
        viewer_key=VIEWER_KEY,
        **settings_overrides,
    )


@pytest.fixture
def app(settings):
    """The control app on the parametrized database."""
    from control.app import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    from control.db import db

    db.close()


@pytest.fixture
def client(app):
    """A Flask test client for `app`."""
    return app.test_client()


@pytest.fixture
def auth():
    """Headers for each scope: `auth.operator`, `auth.agent`, `auth.viewer`, `auth.bearer(k)`."""
    return AuthHeaders(OPERATOR_KEY, AGENT_KEY, VIEWER_KEY)
