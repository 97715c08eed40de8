"""The command whitelist: which commands control may run on a box, and with which parameters.

An action type is an argv template. Placeholders (`{service_name}`) fill a whole argv element or
part of one (`"/var/log/{name}.log"`); each has one anchored ASCII pattern that a value must
match in full. A rendered argv reaches the remote shell only through `to_shell`, which quotes
every element, so a value is always exactly one argument and never shell syntax.

A type may also say `approval = "always"` (its actions wait for an operator even on a server
that is not paused) and `changes_software = true` (refused on a server whose `update_enabled`
is false). A file that replaces a built-in keeps the built-in's value of either unless it
says otherwise, so redefining `reboot` never silently drops its approval.

Patterns are matched by `patterns.py` in time linear in the value, and a command string is
cut into values in linear time too (`CommandType.match`), so no commands file and no request
can make matching hang (a catastrophic `^(a+)+$`, or `{a}-{b}-{c}` with overlapping patterns).

Over 300 lines: parsing the commands file and matching commands share the placeholder and
pattern types; split apart, each half would import the other's internals.
"""

from __future__ import annotations

import enum
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, NamedTuple

from control.bounds import ACTION_TYPE
from control.errors import CommandNotAllowed, ConfigError, ValidationFailed
from control.remediation.patterns import ParamPattern, PatternError, compile_pattern, split

MAX_PARAM_LENGTH = 255
MAX_COMMAND_LENGTH = 4096
MAX_ARGV_ELEMENTS = 64
# Cutting a token holding several placeholders costs its length times their patterns' states.
MAX_ELEMENT_PLACEHOLDERS = 4
# Sections the commands file may hold. "remediation" is reserved for the alert → action rules.
KNOWN_SECTIONS = frozenset({"commands", "remediation"})
KNOWN_TYPE_KEYS = frozenset(
    {"argv", "params", "description", "approval", "changes_software", "timeout"}
)


class Approval(enum.StrEnum):
    """When an action of a type needs an operator's approval (`approval` in the commands file)."""

    AUTO = "auto"  # approved at once, unless the server is paused
    ALWAYS = "always"  # pending until an operator approves it, paused or not


_PRINTABLE = re.compile(r"[\x20-\x7e]*", re.ASCII)
# `{{` and `}}` are literal braces; any other lone brace is a mistake in the file.
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


@dataclass(frozen=True)
class Placeholder:
    """A parameter slot inside an argv element."""

    name: str


Segment = str | Placeholder


class Match(NamedTuple):
    """What `Whitelist.match_command` found: the type, its parameters and the argv to run."""

    action_type: str
    params: dict[str, str]
    argv: list[str]


@dataclass(frozen=True)
class CommandType:
    """One whitelisted action type: an argv template and one compiled pattern per parameter.

    `order` is the order `match` reads argv elements in, worked out from the template (see
    `_match_order`, which refuses a template that could be read in more than one way).
    """

    name: str
    template: tuple[tuple[Segment, ...], ...]
    patterns: Mapping[str, ParamPattern]
    description: str = ""
    approval: Approval = Approval.AUTO
    changes_software: bool = False
    timeout: int | None = None  # seconds; None: HOMELAB_COMMAND_TIMEOUT
    order: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        order = _match_order(f"[commands.{self.name}]", self.template)
        object.__setattr__(self, "order", order)  # frozen: set once, here

    @classmethod
    def build(
        cls,
        name: str,
        argv: list[str],
        params: Mapping[str, str],
        description: str = "",
        approval: Any = Approval.AUTO,
        changes_software: Any = False,
        timeout: Any = None,
    ) -> CommandType:
        """Validate a template and its patterns; raise `ConfigError` naming the first problem."""
        where = f"[commands.{name}]"
        if approval not in tuple(Approval) or not isinstance(approval, str):
            raise ConfigError(f'{where}: approval must be "auto" or "always", not {approval!r}')
        if not isinstance(changes_software, bool):
            raise ConfigError(
                f"{where}: changes_software must be true or false, not {changes_software!r}"
            )
        if timeout is not None and (
            not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 86400
        ):
            raise ConfigError(f"{where}: timeout must be whole seconds 1..86400, not {timeout!r}")
        if not isinstance(name, str) or not ACTION_TYPE.fullmatch(name):
            raise ConfigError(f"{where}: type name must match ^[a-z][a-z0-9_]{{0,63}}$")
        if not isinstance(argv, list) or not argv or len(argv) > MAX_ARGV_ELEMENTS:
            raise ConfigError(f"{where}: argv must be a list of 1..{MAX_ARGV_ELEMENTS} strings")
        template = tuple(_parse_element(where, i, element) for i, element in enumerate(argv))
        if any(isinstance(segment, Placeholder) for segment in template[0]):
            raise ConfigError(f"{where}: argv[0] (the program) must not contain a placeholder")
        for index, element in enumerate(template):
            if sum(isinstance(s, Placeholder) for s in element) > MAX_ELEMENT_PLACEHOLDERS:
                raise ConfigError(
                    f"{where}: argv[{index}] has more than {MAX_ELEMENT_PLACEHOLDERS} placeholders"
                )
        used = {s.name for element in template for s in element if isinstance(s, Placeholder)}
        if not isinstance(params, Mapping):
            raise ConfigError(f"{where}.params must be a table of name = pattern")
        for placeholder in sorted(used - params.keys()):
            raise ConfigError(f"{where}: placeholder {{{placeholder}}} has no pattern in params")
        for extra in sorted(params.keys() - used):
            raise ConfigError(f"{where}.params: {extra} is not used by any placeholder in argv")
        patterns = {key: _compile_pattern(f"{where}.params.{key}", params[key]) for key in used}
        return cls(
            name, template, patterns, description, Approval(approval), changes_software, timeout
        )

    def render(self, params: Mapping[str, Any] | None) -> list[str]:
        """The argv for these parameters; `ValidationFailed` lists every bad parameter."""
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ValidationFailed(
                f"invalid parameters for {self.name}",
                errors={"parameters": ["Not a valid mapping."]},
            )
        errors: dict[str, list[str]] = {}
        for name in sorted(self.patterns):
            if name not in params:
                errors[f"parameters.{name}"] = ["Missing data for required field."]
            else:
                problem = self.check(name, params[name])
                if problem:
                    errors[f"parameters.{name}"] = [problem]
        for name in sorted(str(key) for key in params.keys() - self.patterns.keys()):
            errors[f"parameters.{name}"] = ["Unknown field."]
        if errors:
            raise ValidationFailed(f"invalid parameters for {self.name}", errors=errors)
        return [_fill(element, params) for element in self.template]

    def check(self, name: str, value: Any) -> str | None:
        """Return why `value` is not acceptable for parameter `name`, or None when it is."""
        if not isinstance(value, str):
            return "Not a valid string."
        if len(value) > MAX_PARAM_LENGTH:
            return f"Longer than {MAX_PARAM_LENGTH} characters."
        if not _PRINTABLE.fullmatch(value):
            return "Must be printable ASCII (no control characters)."
        pattern = self.patterns[name]
        if not pattern.fullmatch(value):
            return f"Does not match {pattern.pattern}."
        return None

    def match(self, tokens: list[str]) -> dict[str, str] | None:
        """Return the parameters that render exactly `tokens`, or None when none do.

        Linear in the tokens' length: elements are read in `order`, so each either has at
        most one placeholder not yet known (its value follows from the token's length) or
        several found nowhere else, cut apart by `patterns.split` in one pass.
        """
        if len(tokens) != len(self.template):
            return None
        bound: dict[str, str] = {}
        for index in self.order:
            element, token = self.template[index], tokens[index]
            fresh = {s.name for s in element if isinstance(s, Placeholder)} - bound.keys()
            if len(fresh) == 1:
                (name,) = fresh
                value = _solve(element, token, bound, name)
                if value is None or self.check(name, value) is not None:
                    return None
                bound[name] = value
            elif fresh:
                values = self._cut(element, token, bound)
                if values is None:
                    return None
                bound.update(values)
            if _fill(element, bound) != token:
                return None
        try:
            # Belt and braces: the binding must render back to the very same argv.
            return bound if self.render(bound) == tokens else None
        except ValidationFailed:
            return None

    def _cut(
        self, element: tuple[Segment, ...], token: str, bound: Mapping[str, str]
    ) -> dict[str, str] | None:
        """Values for the unknown placeholders of one element, each checked, or None."""
        parts: list[str | ParamPattern] = []
        names: list[str] = []
        for segment in element:
            if isinstance(segment, Placeholder) and segment.name not in bound:
                parts.append(self.patterns[segment.name])
                names.append(segment.name)
                continue
            text = segment if isinstance(segment, str) else bound[segment.name]
            if parts and isinstance(parts[-1], str):
                parts[-1] += text
            else:
                parts.append(text)
        found = split(parts, token, MAX_PARAM_LENGTH)
        if found is None:
            return None
        values = dict(zip(names, found, strict=True))
        if any(self.check(name, value) is not None for name, value in values.items()):
            return None
        return values


def _solve(
    element: tuple[Segment, ...], token: str, bound: Mapping[str, str], name: str
) -> str | None:
    """The value of the one unknown placeholder `name` that makes `element` read `token`.

    There is at most one: every other part has a known length, so the token's length fixes
    the value's (the placeholder may occur more than once, as in "{dir}:{dir}").
    """
    occurrences = sum(1 for s in element if isinstance(s, Placeholder) and s.name == name)
    known = sum(
        len(s if isinstance(s, str) else bound[s.name])
        for s in element
        if not (isinstance(s, Placeholder) and s.name == name)
    )
    length, rest = divmod(len(token) - known, occurrences)
    if length < 1 or rest:
        return None
    pos, value = 0, None
    for segment in element:
        if isinstance(segment, Placeholder) and segment.name == name:
            piece = token[pos : pos + length]
            if value is not None and piece != value:
                return None
            value, pos = piece, pos + length
            continue
        text = segment if isinstance(segment, str) else bound[segment.name]
        if not token.startswith(text, pos):
            return None
        pos += len(text)
    return value


def _match_order(where: str, template: tuple[tuple[Segment, ...], ...]) -> tuple[int, ...]:
    """The order in which `match` reads the elements; ConfigError for an ambiguous template.

    First, repeatedly, every element with at most one placeholder not fixed by the elements
    before it: its value is then unique. What remains are elements with two or more unknown
    placeholders; each of those must occur in no other such element and only once in its
    own, so each element is cut independently. Otherwise (`{a}-{b}` and `{a}-{c}` with `a`
    nowhere alone) a command could be read several ways that only a search could sort out.
    """
    known: set[str] = set()
    order: list[int] = []
    pending = list(range(len(template)))
    progress = True
    while progress:
        progress = False
        for index in list(pending):
            names = {s.name for s in template[index] if isinstance(s, Placeholder)} - known
            if len(names) <= 1:
                order.append(index)
                pending.remove(index)
                known |= names
                progress = True
    seen: dict[str, int] = {}
    for index in pending:
        for segment in template[index]:
            if not isinstance(segment, Placeholder) or segment.name in known:
                continue
            if segment.name in seen:
                places = sorted({seen[segment.name], index})
                raise ConfigError(
                    f"{where}: placeholder {{{segment.name}}} appears more than once "
                    f"({' and '.join(f'argv[{i}]' for i in places)}) beside other placeholders "
                    "and never as the only unknown of an element, so a command could be read "
                    "in more than one way; use it once, or also alone in an element"
                )
            seen[segment.name] = index
    return (*order, *pending)


class Whitelist:
    """All allowed action types; built from the built-ins plus the commands file."""

    def __init__(self, types: Mapping[str, CommandType], raw: Mapping[str, Any] | None = None):
        self.types = dict(types)
        # The whole parsed file, kept for sections other modules read (remediation rules).
        self.raw = dict(raw or {})

    def __contains__(self, action_type: object) -> bool:
        return action_type in self.types

    def names(self) -> list[str]:
        """The allowed action types, sorted."""
        return sorted(self.types)

    def command_type(self, action_type: str) -> CommandType:
        """The whitelisted type called `action_type`; `CommandNotAllowed` when there is none."""
        command_type = self.types.get(action_type) if isinstance(action_type, str) else None
        if command_type is None:
            raise CommandNotAllowed(f"action type {_short(action_type)} is not in the whitelist")
        return command_type

    def render(self, action_type: str, params: Mapping[str, Any] | None = None) -> list[str]:
        """Argv for an action; `CommandNotAllowed` for an unknown type, `ValidationFailed` else."""
        return self.command_type(action_type).render(params)

    def match_command(self, command: str) -> Match:
        """Accept a command string only if it tokenizes to exactly an argv some type renders."""
        if not isinstance(command, str):
            raise CommandNotAllowed("command must be a string")
        if len(command) > MAX_COMMAND_LENGTH:
            raise CommandNotAllowed(f"command is longer than {MAX_COMMAND_LENGTH} characters")
        if not _PRINTABLE.fullmatch(command):
            raise CommandNotAllowed("command must be printable ASCII on one line")
        try:
            tokens = shlex.split(command)
        except ValueError as exc:
            raise CommandNotAllowed(f"command cannot be tokenized: {exc}") from None
        if not tokens:
            raise CommandNotAllowed("command is empty")
        if len(tokens) > MAX_ARGV_ELEMENTS:
            # No type has that many: refused before any matching.
            raise CommandNotAllowed(f"command has more than {MAX_ARGV_ELEMENTS} arguments")
        for name, command_type in self.types.items():
            params = command_type.match(tokens)
            if params is not None:
                return Match(name, params, tokens)
        raise CommandNotAllowed("command is not in the whitelist")


def to_shell(argv: list[str]) -> str:
    """The one command line sent to a remote shell: every element quoted with `shlex.quote`."""
    return " ".join(shlex.quote(arg) for arg in argv)


def load_whitelist(path: str | PathLike[str] | None = None) -> Whitelist:
    """Built-in types plus those in the TOML commands file at `path`, which may replace them."""
    if path is None:
        return Whitelist(BUILTIN_TYPES)
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"commands file {path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"commands file {path}: not valid TOML: {exc}") from None
    try:
        return Whitelist({**BUILTIN_TYPES, **_parse_commands(raw)}, raw)
    except ConfigError as exc:
        raise ConfigError(f"commands file {path}: {exc}") from None


def _parse_commands(raw: Mapping[str, Any]) -> dict[str, CommandType]:
    for section in sorted(raw.keys() - KNOWN_SECTIONS):
        raise ConfigError(
            f"unknown section [{section}] (known: {', '.join(sorted(KNOWN_SECTIONS))})"
        )
    commands = raw.get("commands", {})
    if not isinstance(commands, Mapping):
        raise ConfigError("[commands] must be a table of action types")
    types = {}
    for name, spec in commands.items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"[commands.{name}] must be a table with argv and params")
        for key in sorted(spec.keys() - KNOWN_TYPE_KEYS):
            raise ConfigError(f"[commands.{name}]: unknown key {key!r}")
        if "argv" not in spec:
            raise ConfigError(f"[commands.{name}]: argv is missing")
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"[commands.{name}]: description must be a string")
        # A replaced built-in keeps its safety defaults unless the file says otherwise.
        builtin = BUILTIN_TYPES.get(name)
        types[name] = CommandType.build(
            name,
            spec["argv"],
            spec.get("params", {}),
            description,
            spec.get("approval", builtin.approval if builtin else Approval.AUTO),
            spec.get("changes_software", builtin.changes_software if builtin else False),
            spec.get("timeout", builtin.timeout if builtin else None),
        )
    return types


def _parse_element(where: str, index: int, element: Any) -> tuple[Segment, ...]:
    if not isinstance(element, str) or not element:
        raise ConfigError(f"{where}: argv[{index}] must be a non-empty string")
    if not _PRINTABLE.fullmatch(element):
        raise ConfigError(f"{where}: argv[{index}] must be printable ASCII")
    segments: list[Segment] = []
    literal, pos = "", 0
    for found in _TEMPLATE_TOKEN.finditer(element):
        literal += element[pos : found.start()]
        pos = found.end()
        if found.group(1):
            if segments and isinstance(segments[-1], Placeholder) and not literal:
                raise ConfigError(
                    f"{where}: argv[{index}] has adjacent placeholders; separate them with text"
                )
            if literal:
                segments.append(literal)
            segments.append(Placeholder(found.group(1)))
            literal = ""
        elif found.group(0) in ("{{", "}}"):
            literal += found.group(0)[0]
        else:
            raise ConfigError(
                f"{where}: argv[{index}] has a stray {found.group(0)!r} "
                "(write {{name}} for a placeholder, {{{{ or }}}} for a literal brace)"
            )
    literal += element[pos:]
    if literal:
        segments.append(literal)
    return tuple(segments)


def _compile_pattern(where: str, pattern: Any) -> ParamPattern:
    if not isinstance(pattern, str):
        raise ConfigError(f"{where}: pattern must be a string")
    if not pattern.isascii():
        raise ConfigError(f"{where}: pattern must be ASCII")
    if not pattern.startswith("^") or not pattern.endswith("$") or pattern.endswith("\\$"):
        raise ConfigError(f"{where}: pattern must be anchored, starting with ^ and ending with $")
    try:
        re.compile(pattern, re.ASCII)  # the syntax check, with `re`'s own messages
    except re.error as exc:
        raise ConfigError(f"{where}: pattern does not compile: {exc}") from None
    try:
        compiled = compile_pattern(pattern)
    except PatternError as exc:
        shown = f"'{pattern}'" if _PRINTABLE.fullmatch(pattern) else repr(pattern)
        raise ConfigError(f"{where}: pattern {shown} {exc}") from None
    if compiled.fullmatch(""):
        raise ConfigError(f"{where}: pattern accepts an empty value")
    return compiled


def _fill(element: tuple[Segment, ...], params: Mapping[str, Any]) -> str:
    return "".join(s if isinstance(s, str) else params[s.name] for s in element)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 66 else text[:63] + "..."


# The wire contract's container name (Docker's, without the leading "/").
CONTAINER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
# A constant script: no placeholder, so nothing a client sends reaches this shell. Non-
# interactive end to end (no debconf prompt, no question about a changed configuration file:
# keep the local one), waiting for the dpkg lock an unattended upgrade may hold rather than
# failing at once, and quiet so the output cap keeps the end of it.
APT_UPGRADE = (
    "apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q -y "
    "-o DPkg::Lock::Timeout=120 "
    "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade"
)

# Built last: building validates the templates with the helpers above.
BUILTIN_TYPES: dict[str, CommandType] = {
    "restart_service": CommandType.build(
        "restart_service",
        ["systemctl", "restart", "--", "{service_name}"],
        {"service_name": r"^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$"},
        "Restart a systemd unit.",
    ),
    "clear_logs": CommandType.build(
        "clear_logs",
        ["journalctl", "--vacuum-time=7d"],
        {},
        "Remove journal files older than seven days.",
    ),
    "restart_container": CommandType.build(
        "restart_container",
        ["docker", "restart", "--", "{name}"],
        {"name": CONTAINER_NAME_PATTERN},
        "Restart a container (Docker, or Podman's docker-compatible CLI).",
    ),
    "upgrade_packages": CommandType.build(
        "upgrade_packages",
        ["sh", "-c", APT_UPGRADE],
        {},
        "Upgrade the installed packages with apt, keeping changed configuration files.",
        approval=Approval.ALWAYS,
        changes_software=True,
        timeout=1800,  # killed mid-dpkg by the default 30 s, it would leave a broken box
    ),
    "reboot": CommandType.build(
        "reboot",
        # --no-block: systemctl returns once the reboot is queued, so the command completes
        # before the shutdown closes the SSH session (instead of ending as an SSH error).
        ["systemctl", "--no-block", "reboot"],
        {},
        "Reboot the box.",
        approval=Approval.ALWAYS,
    ),
}
