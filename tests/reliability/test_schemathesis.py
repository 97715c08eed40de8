"""Schemathesis over every operation of /api/openapi.json, in-process through WSGI.

Every check schemathesis has (server errors, status codes, content types, response schemas,
headers, negative-data rejection, positive-data acceptance, ignored auth, ...) on every
documented operation, with data that fits the schema and data that does not, sent with an
operator key. The seed and the example count are fixed so a CI failure reproduces locally.
Runs on SQLite and on PostgreSQL (the `database_url` fixture): generated data hits each
database's own limits (integer ranges, string lengths, NUL bytes) differently.

Driven through Hypothesis directly rather than schemathesis' pytest plugin, whose fixture
loader reads a pytest-internal attribute that pytest 9 removed.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from control.config import load_settings

OPERATOR_KEY = "schemathesis-operator-key"
MAX_EXAMPLES = 20
SEED = 20260106

load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())
# A schema-valid execute may still be refused with 400 COMMAND_NOT_ALLOWED (seed 004): which
# action types exist is the commands file's to say, not the schema's. 408: a command timed out.
# A schema-violating body may also be too large for MAX_CONTENT_LENGTH: 413 PAYLOAD_TOO_LARGE
# is as right a refusal as 400 or 422.
CONFIG = schemathesis.config.SchemathesisConfig.from_str(
    """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
    "429", "5xx"]

[[operations]]
include-path = "/api/v1/servers/{server_id}/commands/execute"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "400", "401", "403", "404", "408", "409", "429", "5xx",
]
"""
)


@pytest.fixture
def api_schema(tmp_path, database_url):
    """The app's own OpenAPI document, bound to that app (requests go through WSGI)."""
    from control.app import create_app
    from control.db import db

    settings = load_settings(
        environ={},
        data_dir=str(tmp_path),
        database_url=database_url,
        operator_key=OPERATOR_KEY,
        agent_key="schemathesis-agent-key",
        viewer_key="schemathesis-viewer-key",
    )
    app = create_app(settings)
    yield schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=CONFIG)
    db.close()


def fuzz(operation, mode: GenerationMode) -> None:
    """Run MAX_EXAMPLES generated requests against one operation; raise on the first failure."""

    @hypothesis.seed(SEED)
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        case.call_and_validate(headers={"X-API-Key": OPERATOR_KEY}, checks=ALL_CHECKS)

    run()


def test_every_operation_passes_every_check(api_schema):
    labels, failures = [], []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode)
            # schemathesis reports an ExceptionGroup; collect every operation's, report all.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert len(labels) >= 5, labels  # the document really was read
    assert not failures, "\n\n".join(failures)
