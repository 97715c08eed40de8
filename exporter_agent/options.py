"""Settings as data: the ``Option`` record, its converters, and turning options into flags.

``config`` declares the agent-wide options and each collector module declares its own beside
its code; both use this module, which imports nothing else from the agent (no import cycles).
Precedence: flag, then environment variable, then default.
"""

import argparse
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._:\\-]{0,255}")


class SettingsError(ValueError):
    """A setting is missing, malformed or inconsistent; the message is meant for the operator."""


# The agent's records are NamedTuples, not dataclasses: the dataclasses module imports
# inspect (and ast, dis), ~0.9 MB of the agent's resident memory for a few records.
class Option(NamedTuple):
    """One setting: its flag, environment variable, default, converter and help."""

    dest: str
    flag: str
    env: str
    default: Any
    help: str
    convert: Callable[[str], Any] = str
    metavar: str | None = None


def number_between(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], Any]:
    """Converter to ``kind`` (int or float) that accepts only ``low <= value <= high``."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return convert


def regex(text: str) -> str:
    """Converter that checks ``text`` compiles as a regular expression and returns it unchanged."""
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return text


def unit_names(text: str) -> tuple[str, ...]:
    """Converter from a comma-separated list of systemd unit names to a tuple of checked names."""
    units = tuple(u.strip() for u in text.split(",") if u.strip())
    for unit in units:
        if not UNIT_NAME.fullmatch(unit):
            raise ValueError(f"invalid unit name {unit!r}")
    return units


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    """Add one flag per option; its help names the environment variable and the default."""
    for opt in options:
        default = ",".join(opt.default) if isinstance(opt.default, tuple) else opt.default
        parser.add_argument(
            opt.flag,
            dest=opt.dest,
            metavar=opt.metavar,
            help=(
                f"{opt.help} [env {opt.env}" + ("]" if default is None else f"; default {default}]")
            ).replace("%", "%%"),
        )


def resolve_options(
    args: argparse.Namespace, env: Mapping[str, str], options: Iterable[Option]
) -> dict[str, Any]:
    """Each option's converted value by dest: flag, else env var, else default (unconverted)."""
    values = {}
    for opt in options:
        raw, source = getattr(args, opt.dest), opt.flag
        if raw is None and env.get(opt.env, "") != "":
            raw, source = env[opt.env], opt.env
        if raw is None:
            values[opt.dest] = opt.default
            continue
        try:
            values[opt.dest] = opt.convert(raw)
        except ValueError as exc:
            raise SettingsError(f"{source}={raw!r}: {exc}") from None
    return values
