"""The command whitelist: which commands control may run on a box, and with which parameters.

An action type is an argv template. Placeholders (`{service_name}`) fill a whole argv element or
part of one (`"/var/log/{name}.log"`); each has one anchored ASCII pattern that a value must
`re.fullmatch`. A rendered argv reaches the remote shell only through `to_shell`, which quotes
every element, so a value is always exactly one argument and never shell syntax.

Over 300 lines: parsing the commands file and matching commands share the placeholder and
pattern types; split apart, each half would import the other's internals.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any, NamedTuple

from control.errors import CommandNotAllowed, ConfigError, ValidationFailed

MAX_PARAM_LENGTH = 255
MAX_COMMAND_LENGTH = 4096
MAX_ARGV_ELEMENTS = 64
# Sections the commands file may hold. "remediation" is reserved for the alert → action rules.
KNOWN_SECTIONS = frozenset({"commands", "remediation"})
KNOWN_TYPE_KEYS = frozenset({"argv", "params", "description"})

_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)
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
    """One whitelisted action type: an argv template and one compiled pattern per parameter."""

    name: str
    template: tuple[tuple[Segment, ...], ...]
    patterns: Mapping[str, re.Pattern[str]]
    description: str = ""

    @classmethod
    def build(
        cls, name: str, argv: list[str], params: Mapping[str, str], description: str = ""
    ) -> CommandType:
        """Validate a template and its patterns; raise `ConfigError` naming the first problem."""
        where = f"[commands.{name}]"
        if not isinstance(name, str) or not _TYPE_NAME.fullmatch(name):
            raise ConfigError(f"{where}: type name must match ^[a-z][a-z0-9_]{{0,63}}$")
        if not isinstance(argv, list) or not argv or len(argv) > MAX_ARGV_ELEMENTS:
            raise ConfigError(f"{where}: argv must be a list of 1..{MAX_ARGV_ELEMENTS} strings")
        template = tuple(_parse_element(where, i, element) for i, element in enumerate(argv))
        if any(isinstance(segment, Placeholder) for segment in template[0]):
            raise ConfigError(f"{where}: argv[0] (the program) must not contain a placeholder")
        used = {s.name for element in template for s in element if isinstance(s, Placeholder)}
        if not isinstance(params, Mapping):
            raise ConfigError(f"{where}.params must be a table of name = pattern")
        for placeholder in sorted(used - params.keys()):
            raise ConfigError(f"{where}: placeholder {{{placeholder}}} has no pattern in params")
        for extra in sorted(params.keys() - used):
            raise ConfigError(f"{where}.params: {extra} is not used by any placeholder in argv")
        patterns = {key: _compile_pattern(f"{where}.params.{key}", params[key]) for key in used}
        return cls(name, template, patterns, description)

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
        """Return the parameters that render exactly `tokens`, or None when none do."""
        if len(tokens) != len(self.template):
            return None
        for params in self._bind(tokens, 0, {}):
            # Belt and braces: the binding must render back to the very same argv.
            if self.render(params) == tokens:
                return params
        return None

    def _bind(
        self, tokens: list[str], index: int, bound: dict[str, str]
    ) -> Iterator[dict[str, str]]:
        if index == len(tokens):
            yield bound
            return
        for more in self._split(self.template[index], tokens[index], 0, bound):
            yield from self._bind(tokens, index + 1, more)

    def _split(
        self, segments: tuple[Segment, ...], token: str, pos: int, bound: dict[str, str]
    ) -> Iterator[dict[str, str]]:
        # Every way of reading `token[pos:]` as `segments`, each value checked as it is cut.
        if not segments:
            if pos == len(token):
                yield bound
            return
        head, rest = segments[0], segments[1:]
        if isinstance(head, str):
            if token.startswith(head, pos):
                yield from self._split(rest, token, pos + len(head), bound)
            return
        if head.name in bound:
            value = bound[head.name]
            if token.startswith(value, pos):
                yield from self._split(rest, token, pos + len(value), bound)
            return
        last = min(len(token), pos + MAX_PARAM_LENGTH)
        ends = [len(token)] if not rest else range(pos, last + 1)
        for end in ends:
            value = token[pos:end]
            if self.check(head.name, value) is None:
                yield from self._split(rest, token, end, {**bound, head.name: value})


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

    def render(self, action_type: str, params: Mapping[str, Any] | None = None) -> list[str]:
        """Argv for an action; `CommandNotAllowed` for an unknown type, `ValidationFailed` else."""
        command_type = self.types.get(action_type) if isinstance(action_type, str) else None
        if command_type is None:
            raise CommandNotAllowed(f"action type {_short(action_type)} is not in the whitelist")
        return command_type.render(params)

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
        types[name] = CommandType.build(name, spec["argv"], spec.get("params", {}), description)
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


def _compile_pattern(where: str, pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ConfigError(f"{where}: pattern must be a string")
    if not pattern.isascii():
        raise ConfigError(f"{where}: pattern must be ASCII")
    if not pattern.startswith("^") or not pattern.endswith("$") or pattern.endswith("\\$"):
        raise ConfigError(f"{where}: pattern must be anchored, starting with ^ and ending with $")
    try:
        compiled = re.compile(pattern, re.ASCII)
    except re.error as exc:
        raise ConfigError(f"{where}: pattern does not compile: {exc}") from None
    if compiled.fullmatch(""):
        raise ConfigError(f"{where}: pattern accepts an empty value")
    return compiled


def _fill(element: tuple[Segment, ...], params: Mapping[str, Any]) -> str:
    return "".join(s if isinstance(s, str) else params[s.name] for s in element)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 66 else text[:63] + "..."


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
}
