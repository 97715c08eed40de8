"""`keys.create_key` refuses names and server ids that would corrupt listings, logs and the audit
trail (issue 11, Low 13), and knows the `alerts` scope (Medium 5)."""

from __future__ import annotations

import pytest

from control.errors import ValidationFailed
from control.keys import PERMISSIONS, Principal, create_key
from control.models import ApiKey


@pytest.mark.parametrize("name", ["grafana", "a", "ci.bot@home-lab_2", "x" * 100, "~!#$%^&*()"])
def test_printable_names_are_accepted(app, name):
    _, row = create_key("viewer", name)
    assert ApiKey.get_by_id(row.id).name == name


@pytest.mark.parametrize(
    "name",
    ["", "two\nlines", "tab\there", "with space", "bell\x07", "del\x7f", "nul\x00", "caf\u00e9",
     "x" * 101, "bootstrap-operator", "bootstrap-anything"],
)  # fmt: skip
def test_bad_names_are_refused(app, name):
    with pytest.raises(ValidationFailed) as refused:
        create_key("viewer", name)
    assert list(refused.value.errors) == ["name"]
    assert "\n" not in refused.value.message
    assert ApiKey.select().count() == 0


@pytest.mark.parametrize("server_id", ["pi-1", "a", "0", "x" * 100])
def test_valid_server_ids_are_accepted(app, server_id):
    _, row = create_key("agent", server_id=server_id)
    assert row.server_id == server_id


@pytest.mark.parametrize(
    "server_id", ["", "Pi-1", "pi_1", "pi 1", "pi-1\n", "../etc", "x" * 101, "pi-\u0661"]
)
def test_bad_server_ids_are_refused(app, server_id):
    with pytest.raises(ValidationFailed) as refused:
        create_key("agent", server_id=server_id)
    assert list(refused.value.errors) == ["server_id"]
    assert ApiKey.select().count() == 0


def test_alerts_scope_may_only_post_alerts():
    assert PERMISSIONS["alerts"] == frozenset({"alerts"})
    assert Principal("am", "alerts").may("alerts")
    assert not any(Principal("am", "alerts").may(p) for p in ("read", "write", "heartbeat"))
    assert Principal("op", "operator").may("alerts")
    assert not Principal("v", "viewer").may("alerts")
    assert not Principal("a", "agent").may("alerts")
