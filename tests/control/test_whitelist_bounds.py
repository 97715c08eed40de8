"""Whitelist matching is bounded for any commands file: the attacks that once hung a request.

Several placeholders in one argv element, ambiguous splits across elements and catastrophic
backtracking patterns (`^(a+)+$`) each cost a request seconds of CPU or hung it for good. Each
attack runs here under a generous wall-clock guard (a thread joined with a timeout), so a
regression fails instead of hanging CI: a hang guard, not a performance assertion.
"""

from __future__ import annotations

import os
import re
import string
import subprocess
import sys
import threading

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from control.db import _sqlite_writer
from control.errors import CommandNotAllowed, ValidationFailed
from control.remediation.patterns import ParamPattern, compile_pattern
from control.remediation.whitelist import (
    MAX_ARGV_ELEMENTS,
    MAX_PARAM_LENGTH,
    CommandType,
    Whitelist,
    load_whitelist,
)

HANG_GUARD = 60  # seconds; each attack below is refused in a small fraction of that

OVERLAPPING = r"^[a-z-]{1,255}$"  # every value may contain the separator "-"


def bounded(function, *args):
    """Run `function(*args)` in a thread; fail the test if it is still running after the guard."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_GUARD)
    if thread.is_alive():
        pytest.fail(f"still running after {HANG_GUARD} s: matching is not bounded")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def whitelist_of(argv, params) -> Whitelist:
    return Whitelist({"attack": CommandType.build("attack", argv, params)})


# --- several placeholders in one element -------------------------------------------------------


def test_four_overlapping_placeholders_in_one_element_are_refused_in_bounded_time():
    whitelist = whitelist_of(["echo", "{a}-{b}-{c}-{d}"], dict.fromkeys("abcd", OVERLAPPING))
    # Every "-" could end any of a, b or c; the "!" at the end makes every split fail.
    command = "echo " + "a-" * 1000 + "!"

    with pytest.raises(CommandNotAllowed):
        bounded(whitelist.match_command, command)


def test_overlapping_placeholders_still_match_a_command_they_render():
    whitelist = whitelist_of(["echo", "{a}-{b}-{c}-{d}"], dict.fromkeys("abcd", OVERLAPPING))
    token = "-".join(["a" * 200, "b-b" * 60, "c" * 255, "d-" * 100 + "d"])

    found = bounded(whitelist.match_command, f"echo {token}")

    assert found.argv == ["echo", token]
    assert whitelist.render("attack", found.params) == found.argv
    assert all(len(value) <= MAX_PARAM_LENGTH for value in found.params.values())


def test_ambiguous_elements_one_after_another_are_refused_in_bounded_time():
    names = "abcdefgh"
    argv = ["echo", "{a}-{b}", "{c}-{d}", "{e}-{f}", "{g}-{h}", "end"]
    whitelist = whitelist_of(argv, dict.fromkeys(names, OVERLAPPING))
    token = "-".join(["a"] * 100)
    # Each element splits a hundred ways; the last literal never matches.
    command = f"echo {token} {token} {token} {token} nope"

    with pytest.raises(CommandNotAllowed):
        bounded(whitelist.match_command, command)
    assert bounded(whitelist.match_command, f"echo {token} {token} {token} {token} end")


def test_a_value_bound_in_another_element_fixes_a_split(write_commands):
    path = write_commands(
        """
        [commands.copy_log]
        argv = ["cp", "--", "/var/log/{a}-{b}-{c}.log", "/backup/{a}.log", "{c}"]
        [commands.copy_log.params]
        a = "^[a-z-]{1,255}$"
        b = "^[a-z0-9-]{1,255}$"
        c = "^[a-z-]{1,255}$"
        """
    )
    whitelist = load_whitelist(path)
    long_a = "x-" * 120 + "x"

    found = bounded(
        whitelist.match_command, f"cp -- /var/log/{long_a}-b-1-c-c.log /backup/{long_a}.log c-c"
    )

    assert found.params == {"a": long_a, "b": "b-1", "c": "c-c"}
    with pytest.raises(CommandNotAllowed):
        # c is "d" in the last element, so the first cannot end in "-c-c.log".
        bounded(
            whitelist.match_command, f"cp -- /var/log/{long_a}-b-1-c-c.log /backup/{long_a}.log d"
        )


def test_a_command_with_more_tokens_than_any_argv_is_refused_before_matching():
    whitelist = whitelist_of(["echo", "{a}"], {"a": OVERLAPPING})

    with pytest.raises(CommandNotAllowed, match=f"more than {MAX_ARGV_ELEMENTS} arguments"):
        bounded(whitelist.match_command, "echo " + "a " * 2000)


@pytest.fixture
def write_commands(tmp_path):
    def write(text: str):
        path = tmp_path / "commands.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- catastrophic backtracking patterns --------------------------------------------------------

CATASTROPHIC = [
    r"^(a+)+$",
    r"^(a|a)+$",
    r"^(a|aa)+$",
    r"^(a*)*b$",
    r"^(a+b?)+$",
    r"^a*a*a*a*a*a*a*a*a*a*a*a*b$",
    r"^(\w+\s?)+$",
    r"^([a-z0-9]+[.-]?)+[a-z0-9]$",
]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_a_catastrophic_pattern_refuses_a_crafted_value_in_bounded_time(pattern):
    command_type = CommandType.build("attack", ["echo", "{a}"], {"a": pattern})
    crafted = "a" * (MAX_PARAM_LENGTH - 1) + "!"

    with pytest.raises(ValidationFailed):
        bounded(command_type.render, {"a": crafted})
    with pytest.raises(CommandNotAllowed):
        bounded(Whitelist({"attack": command_type}).match_command, f"echo {crafted}")
    assert command_type.render({"a": "aab" if pattern.endswith("b$") else "aa"})[1]


def test_serve_refuses_a_pattern_only_backtracking_could_match_in_one_line(tmp_path):
    commands = tmp_path / "commands.toml"
    commands.write_text(
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = \'^(a+)-\\1$\'\n'
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    environment.update(HOMELAB_DATA_DIR=str(tmp_path), HOMELAB_COMMANDS_FILE=str(commands))

    result = subprocess.run(
        [sys.executable, "-m", "control.cli", "serve"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"commands file {commands}: [commands.x].params.a: pattern '^(a+)-\\1$'" in lines[0]
    assert "backreference" in lines[0]


# --- the linear-time matcher says what `re` says -----------------------------------------------

EQUIVALENT = [
    r"^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$",
    r"^[a-z][a-z0-9_-]{0,31}$",
    r"^[0-9]{1,4}M$",
    r"^\w{1,10}$",
    r"^\d+(\.\d{1,3})?$",
    r"^[^/\s]{1,20}$",
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    r"^(?i:abc)[x-z]$",
    r"(?i)^[a-c]+X$",
    r"^a$|^b+$",
    r"^(foo|foobar|fo+)(bar)?$",
    r"^.{2,5}$",
    r"^a{3}b{2,}c*?d+?$",
    r"^\S\s\D\W$",
    r"^[\]\\^-]+$",
    r"^[^a-y]$",
    r"^(a+)+$",
    r"^(a|aa)+b?$",
    r"^\Ax\Z$",
    r"^(?:(?:a|b)*c){1,3}$",
    r"^(|a)b$",
]
printable = st.text(alphabet=string.printable[:95], max_size=40)


@pytest.mark.parametrize("pattern", EQUIVALENT)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
@example(data=None)
def test_the_linear_matcher_agrees_with_re(pattern, data):
    compiled = compile_pattern(pattern)
    expected = re.compile(pattern, re.ASCII)
    values = ["", "a", "ab", "aaa", "abcX", "AbCy", "x", "1.25", "web-1.lan", "a-b"]
    if data is not None:
        values = [data.draw(printable), data.draw(st.from_regex(expected, fullmatch=True))]
        values = [v for v in values if v.isascii() and v.isprintable()]
    for value in values:
        assert compiled.fullmatch(value) == bool(expected.fullmatch(value)), (pattern, value)


def test_a_compiled_pattern_keeps_its_source_for_messages():
    compiled = compile_pattern(r"^[a-z]+$")

    assert isinstance(compiled, ParamPattern)
    assert compiled.pattern == r"^[a-z]+$"


# --- matching happens outside the database's write lock ----------------------------------------


@pytest.fixture
def settings_overrides(tmp_path):
    commands = tmp_path / "attack.toml"
    commands.write_text(
        '[commands.attack]\nargv = ["echo", "{a}-{b}-{c}-{d}"]\n[commands.attack.params]\n'
        + "".join(f'{name} = "{OVERLAPPING}"\n' for name in "abcd")
    )
    return {"commands_file": str(commands)}


@pytest.fixture
def lock_spy(monkeypatch):
    """Every pattern evaluation, with whether this thread held SQLite's write lock at the time."""
    calls = []
    original = ParamPattern.fullmatch

    def spy(self, value):
        calls.append(_sqlite_writer._is_owned())
        return original(self, value)

    monkeypatch.setattr(ParamPattern, "fullmatch", spy)
    return calls


def test_the_execute_attack_is_a_400_in_bounded_time(client, auth, box):
    command = "echo " + "a-" * 1000 + "!"

    def attack():
        return client.post(
            "/api/v1/servers/box/commands/execute", json={"command": command}, headers=auth.operator
        )

    response = bounded(attack)

    assert (response.status_code, response.json["code"]) == (400, "COMMAND_NOT_ALLOWED")


def test_no_pattern_is_evaluated_under_the_write_lock(client, auth, box, lock_spy):
    action = {"server_id": "box", "action_type": "attack",
              "parameters": {"a": "x", "b": "y", "c": "z", "d": "w"}}  # fmt: skip
    assert client.post("/api/v1/actions", json=action, headers=auth.operator).status_code == 201
    bad = {**action, "parameters": {**action["parameters"], "a": "X"}}
    assert client.post("/api/v1/actions", json=bad, headers=auth.operator).status_code == 422
    execute = client.post(
        "/api/v1/servers/box/commands/execute", json={"command": "echo x-y-z-!"},
        headers=auth.operator,
    )  # fmt: skip
    assert execute.status_code == 400

    assert lock_spy and not any(lock_spy)
