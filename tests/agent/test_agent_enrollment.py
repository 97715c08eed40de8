"""The agent's enrolled key against a fake control: kept safely, for its server id, never lost.

A kept key is the only thing that may speak for an enrolled server, so the agent must never
drop it on one doubtful answer, never keep something that is not a key, keep it crash-safe and
only for the server id it was minted for, and never read or write it through a symlink.

Over 300 lines: one feature (the kept key) with its failure tables; the fake control is
shared with test_agent_heartbeat.py.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

import pytest

from exporter_agent.heartbeat import HttpSender, Outcome
from exporter_agent.identity import ENROLLMENT_FILE, Identity
from tests.agent.test_agent_heartbeat import (
    FORBIDDEN,
    INVALID,
    OK,
    UNAUTHORIZED,
    UNAVAILABLE,
    FakeControl,
    sample_payload,
)

SHARED = "shared-key"
SERVER_ID = "box-1"  # sample_payload()'s server id


def new_key() -> str:
    """A key as control mints them (control/keys.py generate_key)."""
    return "hlc_" + secrets.token_urlsafe(32)


def enrolled(key: object) -> tuple:
    """A heartbeat answer that enrolled the server and carries `key`."""
    return (200, {**OK[1], "agent_key": key})


def keep(state: Path, agent_key: str, server_id: str = SERVER_ID) -> Path:
    """Write an enrollment file as the agent does (mode 600)."""
    state.mkdir(mode=0o700, exist_ok=True)
    path = state / ENROLLMENT_FILE
    path.write_text(json.dumps({"server_id": server_id, "agent_key": agent_key}))
    path.chmod(0o600)
    return path


def kept(state: Path) -> dict:
    """The enrollment file's content."""
    return json.loads((state / ENROLLMENT_FILE).read_text())


def sent_keys(control: FakeControl) -> list[str]:
    return [r["headers"]["x-api-key"] for r in control.requests]


@pytest.fixture
def control():
    fake = FakeControl()
    yield fake
    fake.close()


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


def sender(control: FakeControl, state: Path, server_id: str = SERVER_ID) -> HttpSender:
    return HttpSender(control.url, Identity(SHARED, str(state), server_id), "ua")


# Enrolling, keeping, restarting.


def test_enrollment_key_is_kept_mode_600_with_its_server_id_and_sent_from_then_on(control, state):
    key = new_key()
    control.script = [enrolled(key), OK]
    agent = sender(control, state)
    first = agent(sample_payload())
    assert first.outcome is Outcome.OK and "agent_key" not in (first.body or {})
    assert agent(sample_payload()).outcome is Outcome.OK
    assert sent_keys(control) == [SHARED, key]
    assert kept(state) == {"server_id": SERVER_ID, "agent_key": key}
    assert (state / ENROLLMENT_FILE).stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in state.iterdir()] == [ENROLLMENT_FILE], "no temporary file left"
    # A restarted agent starts with the kept key.
    sender(control, state)(sample_payload())
    assert sent_keys(control)[-1] == key


def test_after_a_reset_the_configured_key_enrolls_again_and_replaces_the_kept_key(
    control, state, caplog
):
    old, new = new_key(), new_key()
    keep(state, old)
    control.script = [UNAUTHORIZED, enrolled(new), OK]
    agent = sender(control, state)
    with caplog.at_level(logging.INFO, logger="exporter_agent"):
        assert agent(sample_payload()).outcome is Outcome.OK
        agent(sample_payload())
    assert sent_keys(control) == [old, SHARED, new]
    assert kept(state) == {"server_id": SERVER_ID, "agent_key": new}
    assert "enrolled again" in caplog.text
    assert old not in caplog.text and new not in caplog.text


def test_a_wrong_configured_key_is_not_retried_in_a_loop(control, state):
    control.script = [UNAUTHORIZED, UNAUTHORIZED]
    assert sender(control, state)(sample_payload()).status == 401
    assert len(control.requests) == 1


# Item 1: one doubtful 401 never costs the kept key.


@pytest.mark.parametrize(
    "answer",
    [FORBIDDEN, UNAUTHORIZED, UNAVAILABLE, INVALID, OK, enrolled("hlc_x\r\nX: y")],
    ids=["403", "401", "503", "422", "200-without-key", "200-with-a-bad-key"],
)
def test_a_401_for_the_kept_key_never_drops_it_unless_a_new_key_works(control, state, answer):
    """A forged 401 (a proxy, a restored database, a MITM) must not make the box lose its key:
    with the key gone, the shared key gets 403 forever while control still holds the bound one.
    """
    old = new_key()
    keep(state, old)
    control.script = [UNAUTHORIZED, answer, OK]
    agent = sender(control, state)
    first = agent(sample_payload())
    assert first.status == answer[0]
    assert sent_keys(control) == [old, SHARED]
    assert kept(state) == {"server_id": SERVER_ID, "agent_key": old}
    # The next heartbeat tries the kept key again, and control accepting it settles it.
    assert agent(sample_payload()).outcome is Outcome.OK
    assert sent_keys(control) == [old, SHARED, old]
    assert kept(state)["agent_key"] == old
    # A restart too starts with the kept key.
    sender(control, state)(sample_payload())
    assert sent_keys(control)[-1] == old


def test_a_refused_kept_key_is_logged_once_per_change(control, state, caplog):
    old = new_key()
    keep(state, old)
    control.script = [UNAUTHORIZED, FORBIDDEN] * 3 + [OK, UNAUTHORIZED, FORBIDDEN]
    agent = sender(control, state)
    with caplog.at_level(logging.DEBUG, logger="exporter_agent"):
        for _ in range(5):
            agent(sample_payload())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    assert "kept key" in warnings[0].getMessage() and "HTTP 403" in warnings[0].getMessage()
    assert "keeping" in warnings[0].getMessage()
    assert caplog.text.count("accepts the kept key again") == 1
    assert old not in caplog.text and SHARED not in caplog.text


# Item 2: only a well-formed key is ever kept.

BAD_KEYS = [
    "hlc_x\r\nX: y",
    "hlc_" + "A" * 42,
    "hlc_" + "A" * 44,
    "HLC_" + "A" * 43,
    "hlc_" + "A" * 43 + "\n",
    "hlc_" + "A" * 42 + "=",
    "hlc_" + "٣" * 43,  # a digit, but not an ASCII one
    "",
    42,
    ["hlc_" + "A" * 43],
]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=repr)
def test_a_malformed_agent_key_from_control_is_ignored_and_logged(control, state, bad, caplog):
    control.script = [enrolled(bad), OK]
    agent = sender(control, state)
    with caplog.at_level(logging.INFO, logger="exporter_agent"):
        assert agent(sample_payload()).outcome is Outcome.OK
        # A header-splitting key once made every later request raise ValueError.
        assert agent(sample_payload()).outcome is Outcome.OK
    assert sent_keys(control) == [SHARED, SHARED]
    assert not (state / ENROLLMENT_FILE).exists()
    assert "ignored" in caplog.text and "agent_key" in caplog.text
    if isinstance(bad, str) and bad:
        assert bad not in caplog.text


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"server_id": SERVER_ID, "agent_key": "hlc_x\r\nX: y"}),
        json.dumps({"server_id": SERVER_ID, "agent_key": "hlc_" + "A" * 42}),
        json.dumps({"server_id": SERVER_ID, "agent_key": 7}),
        json.dumps({"server_id": SERVER_ID}),
        json.dumps({"agent_key": "hlc_" + "A" * 43}),
        json.dumps(["hlc_" + "A" * 43]),
        "hlc_" + "A" * 43,
        "",
        "\udcff",
    ],
    ids=["header-split", "short", "int", "no-key", "no-server-id", "list", "bare", "empty", "bin"],
)
def test_a_malformed_kept_file_is_ignored_and_logged(state, content, caplog):
    state.mkdir(mode=0o700)
    (state / ENROLLMENT_FILE).write_bytes(content.encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.INFO, logger="exporter_agent"):
        identity = Identity(SHARED, str(state), SERVER_ID)
    assert identity.key == SHARED and not identity.enrolled
    assert ENROLLMENT_FILE in caplog.text and "ignored" in caplog.text


# Item 3: crash-safe, and a state directory that cannot be written is said at start.


def test_the_key_file_is_fsynced_before_the_rename_and_its_directory_after(state, monkeypatch):
    """A crash right after the rename must find the whole key on disk, under its name: the
    data is flushed before the rename, and the rename itself (the directory) after it."""
    calls: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, **kwargs):
        calls.append(("replace", str(src), str(dst)))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", replace)
    Identity(SHARED, str(state), SERVER_ID).enroll(new_key())
    renames = [c for c in calls if c[0] == "replace"]
    assert len(renames) == 1
    _, temporary, final = renames[0]
    assert final == str(state / ENROLLMENT_FILE)
    at = calls.index(renames[0])
    assert ("fsync", temporary) in calls[:at], calls
    assert ("fsync", str(state)) in calls[at:], calls


def test_an_unwritable_state_dir_is_an_error_at_start_and_the_key_is_kept_in_memory(
    control, tmp_path, caplog
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state = blocker / "state"  # even root cannot make a directory under a file
    identity = Identity(SHARED, str(state), SERVER_ID)
    with caplog.at_level(logging.INFO, logger="exporter_agent"):
        identity.check_state_dir()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(state) in errors[0].getMessage()
    assert "memory" in errors[0].getMessage()
    key = new_key()
    control.script = [enrolled(key), OK]
    agent = HttpSender(control.url, identity, "ua")
    agent(sample_payload())
    agent(sample_payload())
    assert sent_keys(control) == [SHARED, key]


def test_a_writable_state_dir_gets_no_complaint_and_is_made_private(state, caplog):
    with caplog.at_level(logging.INFO, logger="exporter_agent"):
        Identity(SHARED, str(state), SERVER_ID).check_state_dir()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert state.stat().st_mode & 0o777 == 0o700
    assert list(state.iterdir()) == [], "the write probe leaves nothing behind"


# Item 4: a kept key is for one server id.


def test_a_key_kept_for_another_server_id_is_not_sent_and_the_new_id_enrolls(
    control, state, caplog
):
    """A hostname change (default --server-id) or a cloned VM with its state dir must not send
    the old id's bound key for the new id (403 forever): the new id enrolls with the shared key.
    """
    old, new = new_key(), new_key()
    keep(state, old, server_id="old-box")
    control.script = [enrolled(new), OK]
    with caplog.at_level(logging.INFO, logger="exporter_agent"):
        agent = sender(control, state, server_id=SERVER_ID)
        assert agent(sample_payload()).outcome is Outcome.OK
        agent(sample_payload())
    assert sent_keys(control) == [SHARED, new]
    assert kept(state) == {"server_id": SERVER_ID, "agent_key": new}
    assert caplog.text.count("old-box") == 1
    assert old not in caplog.text


# Item 5: no symlinks, and a state directory others could tamper with is said at start.


def test_a_symlinked_key_file_is_not_followed_when_read(state, tmp_path, caplog):
    elsewhere = tmp_path / "planted"
    elsewhere.write_text(json.dumps({"server_id": SERVER_ID, "agent_key": new_key()}))
    state.mkdir(mode=0o700)
    (state / ENROLLMENT_FILE).symlink_to(elsewhere)
    with caplog.at_level(logging.INFO, logger="exporter_agent"):
        identity = Identity(SHARED, str(state), SERVER_ID)
    assert identity.key == SHARED
    assert ENROLLMENT_FILE in caplog.text and "ignored" in caplog.text


def test_enrolling_never_writes_through_a_symlinked_key_file(state, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    state.mkdir(mode=0o700)
    (state / ENROLLMENT_FILE).symlink_to(victim)
    key = new_key()
    Identity(SHARED, str(state), SERVER_ID).enroll(key)
    assert victim.read_text() == "precious\n" and victim.stat().st_mode & 0o777 == 0o644
    assert not (state / ENROLLMENT_FILE).is_symlink()
    assert kept(state) == {"server_id": SERVER_ID, "agent_key": key}


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o1777])
def test_a_state_dir_others_may_write_is_warned_about_at_start(state, mode, caplog):
    state.mkdir()
    state.chmod(mode)
    with caplog.at_level(logging.INFO, logger="exporter_agent"):
        Identity(SHARED, str(state), SERVER_ID).check_state_dir()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "writable by group or others" in warnings[0], warnings
    assert oct(mode)[2:] in warnings[0]


def test_a_state_dir_owned_by_another_user_is_warned_about_at_start(state, caplog):
    state.mkdir(mode=0o700)
    owner = state.stat().st_uid
    with caplog.at_level(logging.INFO, logger="exporter_agent"):
        # The agent's user as another uid than the directory's owner.
        Identity(SHARED, str(state), SERVER_ID).check_state_dir(uid=owner + 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"owned by uid {owner}" in warnings[0], warnings
