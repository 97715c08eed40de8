"""The command whitelist: built-in types, the commands file, parameter validation, matching.

Over 300 lines: mostly tables of accepted and refused inputs (the injection corpus for the
parser and matcher), which read best side by side.
"""

from __future__ import annotations

import shlex
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import CommandNotAllowed, ConfigError, ValidationFailed
from control.remediation.whitelist import (
    BUILTIN_TYPES,
    MAX_PARAM_LENGTH,
    CommandType,
    Whitelist,
    load_whitelist,
    to_shell,
)

SERVICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$"

INJECTION_CORPUS = [
    "nginx;reboot",
    "nginx; reboot",
    "nginx && reboot",
    "nginx&&reboot",
    "nginx|sh",
    "nginx || true",
    "$(reboot)",
    "nginx$(id)",
    "`reboot`",
    "nginx`id`",
    "nginx\nreboot",
    "nginx\n",
    "\nnginx",
    "nginx\r",
    "nginx\t",
    "-nginx",
    "--help",
    "-",
    "nginx service",
    " nginx",
    "nginx ",
    "..",
    "../../etc/passwd",
    "nginx/../../x",
    "\uff4e\uff47\uff49\uff4e\uff58",  # fullwidth "nginx"
    "ngin\u0445",  # Cyrillic ha for x
    "ng\u0456nx",  # Cyrillic i
    "nginx\u200b",  # zero-width space
    "nginx\x00",
    "\x00",
    "nginx>/etc/passwd",
    "nginx<x",
    "$HOME",
    "${IFS}",
    "nginx*",
    "ngin?",
    "nginx#",
    "~root",
    "a" * 129,
    "a" * 10 * 1024,
    "",
]


@pytest.fixture
def whitelist() -> Whitelist:
    return load_whitelist(None)


@pytest.fixture
def write_commands(tmp_path):
    def write(text: str):
        path = tmp_path / "commands.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- built-ins ---------------------------------------------------------------------------------


def test_restart_service_renders_a_quoted_argv(whitelist):
    argv = whitelist.render("restart_service", {"service_name": "nginx"})

    assert argv == ["systemctl", "restart", "--", "nginx"]


@pytest.mark.parametrize("name", ["nginx", "getty@tty1", "systemd-journald.service", "a", "A_b"])
def test_restart_service_accepts_real_unit_names(whitelist, name):
    assert whitelist.render("restart_service", {"service_name": name})[-1] == name


def test_clear_logs_takes_no_parameters(whitelist):
    assert whitelist.render("clear_logs", {}) == ["journalctl", "--vacuum-time=7d"]
    assert whitelist.render("clear_logs", None) == ["journalctl", "--vacuum-time=7d"]


BUILTIN_NAMES = ["clear_logs", "reboot", "restart_container", "restart_service", "upgrade_packages"]


def test_builtin_types_are_listed(whitelist):
    assert whitelist.names() == BUILTIN_NAMES
    assert "restart_service" in whitelist
    assert "shutdown" not in whitelist


def test_restart_container_renders_docker_restart_of_one_name(whitelist):
    argv = whitelist.render("restart_container", {"name": "web_1.blue-2"})

    assert argv == ["docker", "restart", "--", "web_1.blue-2"]


@pytest.mark.parametrize("name", ["-web", "/web", "web;id", "web 1", "w" * 129, "", "wéb"])
def test_restart_container_refuses_what_is_no_container_name(whitelist, name):
    with pytest.raises(ValidationFailed):
        whitelist.render("restart_container", {"name": name})


def test_upgrade_packages_is_a_constant_non_interactive_apt_upgrade(whitelist):
    argv = whitelist.render("upgrade_packages", {})

    assert argv[:2] == ["sh", "-c"] and len(argv) == 3
    assert "DEBIAN_FRONTEND=noninteractive" in argv[2]
    assert "--force-confold" in argv[2] and " -y " in argv[2]
    assert whitelist.types["upgrade_packages"].patterns == {}
    assert whitelist.match_command(to_shell(argv)).action_type == "upgrade_packages"


def test_reboot_is_queued_without_waiting_so_the_command_completes_before_ssh_drops(whitelist):
    assert whitelist.render("reboot", None) == ["systemctl", "--no-block", "reboot"]


def test_upgrade_packages_has_its_own_long_timeout_and_the_others_the_default(whitelist):
    timeouts = {name: whitelist.types[name].timeout for name in BUILTIN_NAMES}
    assert timeouts.pop("upgrade_packages") == 1800
    assert set(timeouts.values()) == {None}  # HOMELAB_COMMAND_TIMEOUT


def test_a_file_sets_a_timeout_and_a_replaced_builtin_keeps_its_own(write_commands):
    path = write_commands(
        """
        [commands.backup]
        argv = ["/usr/local/bin/backup"]
        timeout = 600
        [commands.upgrade_packages]
        argv = ["sh", "-c", "dnf -y upgrade"]
        """
    )
    types = load_whitelist(path).types
    assert (types["backup"].timeout, types["upgrade_packages"].timeout) == (600, 1800)


@pytest.mark.parametrize("timeout", ["600", 0, -1, 86401, 1.5, True])
def test_a_timeout_that_is_no_whole_number_of_seconds_in_range_is_refused(write_commands, timeout):
    value = f'"{timeout}"' if isinstance(timeout, str) else str(timeout).lower()
    path = write_commands(f'[commands.backup]\nargv = ["backup"]\ntimeout = {value}\n')
    with pytest.raises(ConfigError, match="timeout must be whole seconds"):
        load_whitelist(path)


def test_reboot_and_upgrade_need_approval_and_only_upgrade_changes_software(whitelist):
    approval = {name: whitelist.types[name].approval for name in BUILTIN_NAMES}
    software = {name: whitelist.types[name].changes_software for name in BUILTIN_NAMES}

    assert {name for name, value in approval.items() if value == "always"} == {
        "reboot",
        "upgrade_packages",
    }
    assert {name for name, value in approval.items() if value == "auto"} == {
        "clear_logs",
        "restart_container",
        "restart_service",
    }
    assert [name for name, changes in software.items() if changes] == ["upgrade_packages"]


@pytest.mark.parametrize("action_type", ["shutdown", "", "RESTART_SERVICE", None, 3, "x" * 5000])
def test_unknown_type_is_not_allowed(whitelist, action_type):
    with pytest.raises(CommandNotAllowed) as raised:
        whitelist.render(action_type, {})

    assert len(raised.value.message) < 120


def test_missing_parameter_is_reported_per_field(whitelist):
    with pytest.raises(ValidationFailed) as raised:
        whitelist.render("restart_service", {})

    assert raised.value.errors == {"parameters.service_name": ["Missing data for required field."]}


def test_extra_parameter_is_reported_per_field(whitelist):
    with pytest.raises(ValidationFailed) as raised:
        whitelist.render("clear_logs", {"days": "1"})

    assert raised.value.errors == {"parameters.days": ["Unknown field."]}


@pytest.mark.parametrize("params", [["nginx"], "nginx", 5])
def test_parameters_must_be_a_mapping(whitelist, params):
    with pytest.raises(ValidationFailed) as raised:
        whitelist.render("restart_service", params)

    assert "parameters" in raised.value.errors


@pytest.mark.parametrize("value", [None, 5, 1.5, ["nginx"], {"a": "b"}, b"nginx", True])
def test_parameter_must_be_a_string(whitelist, value):
    with pytest.raises(ValidationFailed) as raised:
        whitelist.render("restart_service", {"service_name": value})

    assert raised.value.errors == {"parameters.service_name": ["Not a valid string."]}


@pytest.mark.parametrize("value", [*INJECTION_CORPUS, "'nginx'", '"nginx"'])
def test_injection_corpus_is_rejected_as_a_parameter(whitelist, value):
    with pytest.raises(ValidationFailed) as raised:
        whitelist.render("restart_service", {"service_name": value})

    assert list(raised.value.errors) == ["parameters.service_name"]
    # The message never echoes what the client sent.
    assert value not in raised.value.message or not value


@pytest.mark.parametrize("value", INJECTION_CORPUS)
def test_injection_corpus_is_rejected_as_a_command(whitelist, value):
    # Quoted, so the whole value arrives as the one service_name token.
    with pytest.raises(CommandNotAllowed):
        whitelist.match_command(f"systemctl restart -- {shlex.quote(value)}")


# --- the commands file -------------------------------------------------------------------------


def test_no_file_means_builtins_only():
    assert load_whitelist(None).names() == BUILTIN_NAMES


def test_file_adds_a_type_with_a_placeholder_inside_an_element(write_commands):
    path = write_commands(
        """
        [commands.tail_log]
        argv = ["tail", "-n", "100", "/var/log/{name}.log"]
        description = "Last lines of a log."
        [commands.tail_log.params]
        name = "^[a-z][a-z0-9_-]{0,31}$"
        """
    )

    whitelist = load_whitelist(path)

    assert whitelist.names() == sorted([*BUILTIN_NAMES, "tail_log"])
    assert whitelist.render("tail_log", {"name": "syslog"}) == [
        "tail",
        "-n",
        "100",
        "/var/log/syslog.log",
    ]
    assert whitelist.types["tail_log"].description == "Last lines of a log."


def test_file_replaces_a_builtin_type(write_commands):
    path = write_commands(
        """
        [commands.clear_logs]
        argv = ["journalctl", "--vacuum-size={size}"]
        [commands.clear_logs.params]
        size = "^[0-9]{1,4}M$"
        """
    )

    whitelist = load_whitelist(path)

    assert whitelist.render("clear_logs", {"size": "500M"}) == ["journalctl", "--vacuum-size=500M"]
    assert whitelist.render("restart_service", {"service_name": "x"})[-1] == "x"
    with pytest.raises(ValidationFailed):
        whitelist.render("clear_logs", {})


def test_the_example_from_the_design_loads(write_commands):
    path = write_commands(
        """
        [commands.restart_service]
        argv = ["systemctl", "restart", "--", "{service_name}"]
        [commands.restart_service.params]
        service_name = "^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$"
        """
    )

    assert load_whitelist(path).render("restart_service", {"service_name": "sshd"})[-1] == "sshd"


def test_doubled_braces_are_literal(write_commands):
    path = write_commands(
        """
        [commands.find_old]
        argv = ["find", "/tmp/{dir}", "-exec", "rm", "--", "{{}}", "+"]
        [commands.find_old.params]
        dir = "^[a-z]{1,16}$"
        """
    )

    argv = load_whitelist(path).render("find_old", {"dir": "cache"})

    assert argv == ["find", "/tmp/cache", "-exec", "rm", "--", "{}", "+"]


def test_a_file_sets_approval_and_changes_software_on_any_type(write_commands):
    path = write_commands(
        """
        [commands.restart_service]
        argv = ["systemctl", "restart", "--", "{service_name}"]
        approval = "always"
        [commands.restart_service.params]
        service_name = "^[a-z]{1,16}$"

        [commands.deploy]
        argv = ["/usr/local/bin/deploy"]
        changes_software = true

        [commands.reboot]
        argv = ["systemctl", "reboot"]
        approval = "auto"
        """
    )

    types = load_whitelist(path).types

    assert (types["restart_service"].approval, types["restart_service"].changes_software) == (
        "always",
        False,
    )
    assert (types["deploy"].approval, types["deploy"].changes_software) == ("auto", True)
    assert types["reboot"].approval == "auto"  # turned off on purpose
    assert types["upgrade_packages"].approval == "always"  # untouched built-in


def test_replacing_a_builtin_keeps_its_safety_defaults_unless_the_file_says_otherwise(
    write_commands,
):
    path = write_commands(
        """
        [commands.upgrade_packages]
        argv = ["sh", "-c", "dnf -y upgrade"]
        [commands.reboot]
        argv = ["shutdown", "-r", "+1"]
        changes_software = true
        """
    )

    types = load_whitelist(path).types

    assert (types["upgrade_packages"].approval, types["upgrade_packages"].changes_software) == (
        "always",
        True,
    )
    assert (types["reboot"].approval, types["reboot"].changes_software) == ("always", True)


def test_the_parsed_file_is_kept_for_other_sections(write_commands):
    path = write_commands('[remediation]\nHighLoad = "clear_logs"\n')

    assert load_whitelist(path).raw == {"remediation": {"HighLoad": "clear_logs"}}


INVALID_FILES = {
    "bad TOML": ("[commands.x\nargv = 1", "not valid TOML"),
    "unknown section": ('[comands.x]\nargv = ["true"]', "unknown section [comands]"),
    "commands not a table": ('commands = "x"', "[commands] must be a table"),
    "type not a table": ('[commands]\nx = "true"', "[commands.x] must be a table"),
    "bad type name": ('[commands."Bad Name"]\nargv = ["true"]', "type name must match"),
    "missing argv": ("[commands.x]\nparams = {}", "argv is missing"),
    "argv not a list": ('[commands.x]\nargv = "reboot"', "argv must be a list"),
    "empty argv": ("[commands.x]\nargv = []", "argv must be a list"),
    "argv element not a string": ("[commands.x]\nargv = [1]", "argv[0] must be a non-empty"),
    "empty argv element": ('[commands.x]\nargv = ["a", ""]', "argv[1] must be a non-empty"),
    "non-ASCII argv": ('[commands.x]\nargv = ["ëcho"]', "argv[0] must be printable ASCII"),
    "newline in argv": ('[commands.x]\nargv = ["a\\nb"]', "argv[0] must be printable ASCII"),
    "unknown key": ('[commands.x]\nargv = ["true"]\nshell = true', "unknown key 'shell'"),
    "placeholder without pattern": (
        '[commands.x]\nargv = ["rm", "{path}"]',
        "placeholder {path} has no pattern",
    ),
    "pattern without placeholder": (
        '[commands.x]\nargv = ["true"]\n[commands.x.params]\npath = "^a$"',
        "path is not used by any placeholder",
    ),
    "placeholder as the program": (
        '[commands.x]\nargv = ["{prog}"]\n[commands.x.params]\nprog = "^[a-z]+$"',
        "argv[0] (the program) must not contain a placeholder",
    ),
    "stray brace": ('[commands.x]\nargv = ["echo", "{oops"]', "stray '{'"),
    "adjacent placeholders": (
        '[commands.x]\nargv = ["echo", "{a}{b}"]\n[commands.x.params]\na = "^a$"\nb = "^b$"',
        "adjacent placeholders",
    ),
    "params not a table": (
        '[commands.x]\nargv = ["echo", "{a}"]\nparams = "^a$"',
        "params must be a table",
    ),
    "pattern not a string": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = 1',
        "pattern must be a string",
    ),
    "pattern not anchored at start": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "[a-z]+$"',
        "pattern must be anchored",
    ),
    "pattern not anchored at end": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^[a-z]+"',
        "pattern must be anchored",
    ),
    "pattern ending in an escaped dollar": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^[a-z]+\\\\$"',
        "pattern must be anchored",
    ),
    "pattern that does not compile": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^[a-z$"',
        "pattern does not compile",
    ),
    "non-ASCII pattern": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^[a-zé]+$"',
        "pattern must be ASCII",
    ),
    "pattern accepting empty": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^[a-z]*$"',
        "pattern accepts an empty value",
    ),
    "description not a string": (
        '[commands.x]\nargv = ["true"]\ndescription = 3',
        "description must be a string",
    ),
    # What only a backtracking matcher can do (patterns are matched in linear time).
    "backreference": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = \'^(a+)-\\1$\'',
        "pattern '^(a+)-\\1$' uses a backreference",
    ),
    "lookahead": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^(?!-)[a-z-]+$"',
        "pattern '^(?!-)[a-z-]+$' uses a lookahead or lookbehind",
    ),
    "word boundary": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = \'^a\\b.+$\'',
        "uses a word boundary",
    ),
    "atomic group": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^(?>a+)b$"',
        "uses an atomic group",
    ),
    "possessive quantifier": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^a++b$"',
        "uses a possessive quantifier",
    ),
    "conditional": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^(a)?(?(1)b|c)$"',
        "uses a conditional group",
    ),
    "anchor inside": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^a$b|^c$"',
        "uses $ before the end of the value",
    ),
    "pattern too large once unrolled": (
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^(a{1,100}){1,100}$"',
        "pattern '^(a{1,100}){1,100}$' is too large",
    ),
    "too many placeholders in one element": (
        '[commands.x]\nargv = ["echo", "{a}-{b}-{c}-{d}-{e}"]\n[commands.x.params]\n'
        + "".join(f'{n} = "^[a-z]+$"\n' for n in "abcde"),
        "argv[1] has more than 4 placeholders",
    ),
    "placeholder shared by two elements that both need cutting": (
        '[commands.x]\nargv = ["echo", "{a}-{b}", "{a}-{c}"]\n[commands.x.params]\n'
        + "".join(f'{n} = "^[a-z-]+$"\n' for n in "abc"),
        "placeholder {a} appears more than once (argv[1] and argv[2])",
    ),
    "unknown approval": (
        '[commands.x]\nargv = ["true"]\napproval = "never"',
        '[commands.x]: approval must be "auto" or "always", not \'never\'',
    ),
    "approval not a string": (
        '[commands.x]\nargv = ["true"]\napproval = true',
        '[commands.x]: approval must be "auto" or "always", not True',
    ),
    "changes_software not a boolean": (
        '[commands.x]\nargv = ["true"]\nchanges_software = "yes"',
        "[commands.x]: changes_software must be true or false, not 'yes'",
    ),
    "misspelt key": ('[commands.x]\nargv = ["true"]\napprove = "always"', "unknown key 'approve'"),
    "placeholder twice in one element beside another": (
        '[commands.x]\nargv = ["echo", "{a}-{b}-{a}"]\n[commands.x.params]\n'
        + "".join(f'{n} = "^[a-z-]+$"\n' for n in "ab"),
        "placeholder {a} appears more than once (argv[1])",
    ),
}


@pytest.mark.parametrize(("text", "expected"), INVALID_FILES.values(), ids=INVALID_FILES.keys())
def test_invalid_commands_file_is_a_one_line_config_error(write_commands, text, expected):
    path = write_commands(text)

    with pytest.raises(ConfigError) as raised:
        load_whitelist(path)

    message = str(raised.value)
    assert expected in message
    assert message.startswith(f"commands file {path}: ")
    assert "\n" not in message


def test_missing_commands_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        load_whitelist(tmp_path / "nope.toml")


# --- match_command -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("systemctl restart -- nginx", ("restart_service", {"service_name": "nginx"})),
        ("systemctl restart -- 'nginx'", ("restart_service", {"service_name": "nginx"})),
        ('  systemctl   restart "--"  nginx ', ("restart_service", {"service_name": "nginx"})),
        ("journalctl --vacuum-time=7d", ("clear_logs", {})),
        ("docker restart -- web-1", ("restart_container", {"name": "web-1"})),
        ("systemctl --no-block reboot", ("reboot", {})),
    ],
)
def test_command_matching_a_render_token_for_token_is_allowed(whitelist, command, expected):
    action_type, params, argv = whitelist.match_command(command)

    assert (action_type, params) == expected
    assert argv == whitelist.render(action_type, params)


@pytest.mark.parametrize(
    "command",
    [
        "",
        "   ",
        "reboot",
        "systemctl restart nginx",
        "systemctl restart -- nginx extra",
        "systemctl restart -- nginx nginx",
        "systemctl restart --",
        "systemctl stop -- nginx",
        "systemctl  restart -- 'nginx; reboot'",
        "systemctl restart -- nginx; reboot",
        "systemctl restart -- nginx && reboot",
        "systemctl restart -- nginx | sh",
        "systemctl restart -- nginx\nreboot",
        "systemctl restart -- nginx\n",
        "systemctl\trestart -- nginx",
        "/bin/systemctl restart -- nginx",
        "journalctl --vacuum-time=1d",
        "journalctl --vacuum-time=7d --rotate",
        "journalctl --vacuum-time 7d",
        "sudo journalctl --vacuum-time=7d",
        "systemctl restart -- 'nginx",
        "systemctl restart -- \uff4e\uff47\uff49\uff4e\uff58",
        "\uff53ystemctl restart -- nginx",
        "systemctl restart -- nginx\x00",
        "systemctl restart -- " + "a" * 5000,
    ],
)
def test_any_other_command_is_not_allowed(whitelist, command):
    with pytest.raises(CommandNotAllowed):
        whitelist.match_command(command)


@pytest.mark.parametrize("command", [None, 3, b"systemctl restart -- nginx", ["systemctl"]])
def test_command_must_be_a_string(whitelist, command):
    with pytest.raises(CommandNotAllowed):
        whitelist.match_command(command)


def test_command_with_placeholders_inside_elements_is_matched(write_commands):
    path = write_commands(
        """
        [commands.copy_log]
        argv = ["cp", "--", "/var/log/{a}-{b}.log", "/backup/{a}.log"]
        [commands.copy_log.params]
        a = "^[a-z-]{1,20}$"
        b = "^[0-9]{1,8}$"
        """
    )
    whitelist = load_whitelist(path)

    found = whitelist.match_command("cp -- /var/log/foo-bar-20240101.log /backup/foo-bar.log")

    assert found.params == {"a": "foo-bar", "b": "20240101"}
    with pytest.raises(CommandNotAllowed):
        # The same placeholder must have the same value everywhere it appears.
        whitelist.match_command("cp -- /var/log/foo-bar-1.log /backup/foo.log")


# --- properties --------------------------------------------------------------------------------

any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=300)
service_like = st.from_regex(SERVICE_PATTERN, fullmatch=True)
permissive = CommandType.build(
    "echo_any", ["echo", "--", "<{value}>"], {"value": r"^[\x20-\x7e]{1,255}$"}
)


@given(st.one_of(any_text, service_like))
def test_an_accepted_service_name_renders_to_exactly_one_argv_element(value):
    whitelist = Whitelist(BUILTIN_TYPES)
    try:
        argv = whitelist.render("restart_service", {"service_name": value})
    except ValidationFailed:
        return

    assert argv == ["systemctl", "restart", "--", value]
    assert shlex.split(to_shell(argv)) == argv
    assert whitelist.match_command(to_shell(argv)).params == {"service_name": value}


@given(st.text(alphabet=string.printable, max_size=MAX_PARAM_LENGTH + 5))
def test_any_accepted_value_stays_one_quoted_argv_element_even_with_shell_syntax(value):
    whitelist = Whitelist({"echo_any": permissive})
    try:
        argv = whitelist.render("echo_any", {"value": value})
    except ValidationFailed:
        assert not value or len(value) > MAX_PARAM_LENGTH or not value.isprintable()
        return

    assert len(argv) == 3
    assert argv[2] == f"<{value}>"
    assert shlex.split(to_shell(argv)) == argv
    assert whitelist.match_command(to_shell(argv)) == ("echo_any", {"value": value}, argv)


@given(st.lists(st.text(max_size=40), min_size=1, max_size=6))
def test_to_shell_round_trips_through_shlex(argv):
    argv = [a for a in argv if "\x00" not in a] or ["x"]

    assert shlex.split(to_shell(argv)) == argv


def test_word_class_in_a_pattern_is_ascii_only(write_commands):
    path = write_commands(
        '[commands.x]\nargv = ["echo", "{a}"]\n[commands.x.params]\na = "^\\\\w{1,10}$"'
    )
    whitelist = load_whitelist(path)

    assert whitelist.render("x", {"a": "abc_1"}) == ["echo", "abc_1"]
    with pytest.raises(ValidationFailed):
        whitelist.render("x", {"a": "ngin\u0445"})
