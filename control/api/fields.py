"""Marshmallow fields and validators shared by the API schemas."""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import json
import math
import re
from typing import Any

import marshmallow as ma
import msgspec

from control.bounds import ACTION_TYPE_PATTERN, BIGINT_MAX, SERVER_ID_MAX, SERVER_ID_PATTERN

HOSTNAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,254})$"
SSH_USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
TAG_PATTERN = r"^[a-z0-9_]{1,32}$"
# The URL converter of a BIGINT row id: anything larger is a 404 before it reaches the database.
ROW_ID = f"int(max={BIGINT_MAX})"


class FullMatch(ma.validate.Validator):
    """`re.fullmatch` with ASCII semantics (`$` alone would accept a trailing newline).

    Exposes `regex` like marshmallow's `Regexp`, so apispec documents it as the OpenAPI
    `pattern` and clients (and schemathesis) know the rule before they are refused.
    """

    error: str  # always given here; marshmallow's Validator allows None

    def __init__(self, pattern: str, error: str):
        self.regex = re.compile(pattern, re.ASCII)
        self.error = error

    def __call__(self, value: str) -> str:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self.error)
        return value


def fullmatch(pattern: str, error: str) -> FullMatch:
    """A validator that accepts only strings matching `pattern` in full."""
    return FullMatch(pattern, error)


# A DNS name: dot-separated labels of letters, digits and inner '-', 253 characters at most.
DNS_NAME_PATTERN = (
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_DNS_NAME = re.compile(DNS_NAME_PATTERN, re.ASCII)
_DOTTED_NUMBERS = re.compile(r"[0-9.]+", re.ASCII)


def validate_host_address(value: str) -> None:
    """Accept an IPv4 or IPv6 address or a DNS name; nothing that could be read as an option."""
    try:
        ipaddress.ip_address(value)
        return
    except ValueError:
        pass
    # "10.0.0.300" is a typo of an address, not a name to look up.
    if _DOTTED_NUMBERS.fullmatch(value) or not _DNS_NAME.fullmatch(value):
        raise ma.ValidationError("Not an IPv4 or IPv6 address or a DNS name.")


def HostAddress(**kwargs: Any) -> ma.fields.String:
    """Where to reach a server: an IP address or a DNS name (OpenAPI `anyOf` of the three)."""
    nullable = {"nullable": True} if kwargs.get("allow_none") else {}
    metadata = {
        "anyOf": [
            {"type": "string", "format": "ipv4", **nullable},
            {"type": "string", "format": "ipv6", **nullable},
            {"type": "string", "pattern": DNS_NAME_PATTERN, "maxLength": 253, **nullable},
        ],
        **kwargs.pop("metadata", {}),
    }
    return ma.fields.String(
        validate=[ma.validate.Length(max=253), validate_host_address],
        metadata=metadata,
        **kwargs,
    )


class UtcDateTime(ma.fields.DateTime):
    """ISO 8601 in and out. Stored naive UTC; dumped with a `Z`; naive input is taken as UTC.

    A well-formed time that is no instant, because converting it to UTC leaves the calendar
    (`9999-12-31T23:59:59-05:00`, `0001-01-01T00:00:00+01:00`), is a 422 like any bad value.
    """

    default_error_messages = {
        "no_instant": "Not an instant: in UTC it falls outside the years 1 to 9999.",
    }

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and "\x00" in value:
            # CPython 3.11's fromisoformat stops reading at a NUL and accepts what came before.
            raise self.make_error("invalid", obj_type=self.OBJ_TYPE)
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            return self.no_instant()

    def no_instant(self) -> dt.datetime | None:
        """What a time that is no instant loads as: a 422 here; subclasses may decide otherwise."""
        raise self.make_error("no_instant")


class AgentClock(UtcDateTime):
    """An agent's clock reading: a time that is no instant loads as None instead of a 422.

    The box's clock is wild, not its request; `control.fleet.heartbeats.sample_time` then
    stores the receive time. Malformed text (not an ISO 8601 date-time) is still a 422.
    """

    def no_instant(self) -> dt.datetime | None:
        """None: the domain stands control's receive time in for it."""
        return None


def ServerId(**kwargs) -> ma.fields.String:
    """A server id: lowercase letters, digits and dashes, 1-100 characters."""
    return ma.fields.String(
        validate=[
            ma.validate.Length(1, SERVER_ID_MAX),
            fullmatch(SERVER_ID_PATTERN, "Only lowercase letters, digits and '-'."),
        ],
        **kwargs,
    )


def Hostname(**kwargs) -> ma.fields.String:
    """A host name: letters, digits, '.', '_' and '-', 1-255 characters."""
    return ma.fields.String(
        validate=[
            ma.validate.Length(1, 255),
            fullmatch(HOSTNAME_PATTERN, "Letters, digits, '.', '_' and '-' only."),
        ],
        **kwargs,
    )


def BigInt(**kwargs) -> ma.fields.Integer:
    """A non-negative integer that fits a BIGINT column."""
    return ma.fields.Integer(strict=True, validate=ma.validate.Range(0, BIGINT_MAX), **kwargs)


def Float(low: float | None = 0, high: float | None = None, **kwargs) -> ma.fields.Float:
    """A finite float within [low, high]."""
    return ma.fields.Float(allow_nan=False, validate=ma.validate.Range(low, high), **kwargs)


NO_NUL_PATTERN = r"^[^\x00]*$"


def Text(max_length: int, min_length: int = 0, **kwargs: Any) -> ma.fields.String:
    """Free text up to `max_length` characters without NUL (which PostgreSQL cannot store).

    The NUL rule is a documented `pattern`, so clients know it before they are refused.
    """
    return ma.fields.String(
        validate=[
            ma.validate.Length(min_length, max_length),
            fullmatch(NO_NUL_PATTERN, "NUL characters are not allowed."),
        ],
        **kwargs,
    )


def ActionType(**kwargs) -> ma.fields.String:
    """An action type name (whether it is whitelisted is checked separately: 403)."""
    return ma.fields.String(
        validate=fullmatch(ACTION_TYPE_PATTERN, "Lowercase letters, digits and '_'."), **kwargs
    )


def Parameters() -> ma.fields.Dict:
    """Action parameters: name → string value; which names a type takes is the whitelist's call."""
    # Names and values are checked by the whitelist's anchored ASCII patterns (so no NUL).
    return ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), load_default=dict)


def Tag(**kwargs) -> ma.fields.String:
    """A server tag name."""
    return ma.fields.String(
        validate=fullmatch(TAG_PATTERN, "Lowercase letters, digits, '_'; 1-32."), **kwargs
    )


def OneOf(values: type[enum.StrEnum], **kwargs) -> ma.fields.Enum:
    """One of an enum's values, loaded as the enum member and documented as an OpenAPI enum."""
    return ma.fields.Enum(values, by_value=True, **kwargs)


def _openapi_30(node: Any, components: dict[str, Any]) -> Any:
    """A msgspec JSON Schema (2020-12) node in OpenAPI 3.0's dialect, components inlined.

    3.0 has `nullable` instead of a `{"type": "null"}` alternative, no `$defs`, and ECMA
    regexes, which have no `\\Z`: our patterns use it because msgspec matches with Python's
    `re.search`, where `$` also matches before a trailing newline; in ECMA `$` means `\\Z`.
    """
    if isinstance(node, list):
        return [_openapi_30(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _openapi_30(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {key: _openapi_30(value, components) for key, value in node.items()}
    if isinstance(out.get("pattern"), str) and out["pattern"].endswith("\\Z"):
        out["pattern"] = out["pattern"][:-2] + "$"
    choices = out.get("anyOf")
    if choices and {"type": "null"} in choices and len(choices) == 2:
        (only,) = [choice for choice in choices if choice != {"type": "null"}]
        del out["anyOf"]
        out = {**only, **out, "nullable": True}
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def openapi_schema(type_: Any) -> dict[str, Any]:
    """The OpenAPI 3.0 schema of a msgspec type (a Struct, a list of them, ...), inlined."""
    (schema,), components = msgspec.json.schema_components([type_])
    result: dict[str, Any] = _openapi_30(schema, components)
    return result


class Struct(ma.fields.Field):
    """A JSON value checked by a msgspec type (Structs with `Meta` bounds, `Literal` enums).

    Loads as plain dicts and lists (unknown object keys dropped, like the Lenient schemas do)
    and is documented from the same type. msgspec checks 20 nested containers in ~13 µs where
    marshmallow takes ~290 µs: the heartbeat is control's hot path. Its error keeps msgspec's
    path to the bad value (`... - at $[3].state`).
    """

    def __init__(self, type_: Any, **kwargs: Any):
        self.type = type_
        metadata = {**openapi_schema(type_), **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return msgspec.to_builtins(msgspec.convert(value, self.type))
        except msgspec.ValidationError as exc:
            raise ma.ValidationError(str(exc)) from None


# Seed 002's grouping names (`role`, `branch`, `segment`) and a git commit, full or abbreviated.
GROUP_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
COMMIT_HASH_PATTERN = r"^[0-9a-f]{7,40}$"


def GroupName(**kwargs: Any) -> ma.fields.String:
    """A role, branch or segment name: lowercase letters, digits, '.', '_', '-'; 1-64."""
    message = "Lowercase letters, digits, '.', '_', '-'; 1-64; a letter or digit first."
    return ma.fields.String(validate=fullmatch(GROUP_NAME_PATTERN, message), **kwargs)


def CommitHash(**kwargs: Any) -> ma.fields.String:
    """A git commit hash in lowercase hex, full (40) or abbreviated (at least 7)."""
    return ma.fields.String(
        validate=fullmatch(COMMIT_HASH_PATTERN, "A commit hash: 7-40 lowercase hex digits."),
        **kwargs,
    )


class StrictBoolean(ma.fields.Boolean):
    """A JSON true or false, nothing else: marshmallow's Boolean also takes "yes", 1 and "on"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class JsonObject(ma.fields.Field):
    """A free-form JSON object that any database keeps and any client reads back unchanged.

    At most `max_bytes` of compact UTF-8 JSON and `max_depth` nested objects and arrays; no
    NUL in any key or string (PostgreSQL text cannot hold one), no NaN or infinity. Checked
    without recursion, so no nesting can exhaust the stack.
    """

    default_error_messages = {
        "invalid": "Not a JSON object.",
        "too_deep": "Nested deeper than {max_depth} levels.",
        "nul": "NUL characters are not allowed (at {path}).",
        "number": "Not a finite number (at {path}).",
        "too_large": "Longer than {max_bytes} bytes as JSON.",
    }

    def __init__(self, max_bytes: int, max_depth: int, **kwargs: Any):
        self.max_bytes, self.max_depth = max_bytes, max_depth
        description = f"A JSON object of at most {max_bytes} bytes and {max_depth} levels."
        metadata = {"type": "object", "description": description, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        pending: list[tuple[Any, str, int]] = [(value, "$", 1)]
        while pending:
            item, path, depth = pending.pop()
            if isinstance(item, dict | list):
                if depth > self.max_depth:
                    raise self.make_error("too_deep", max_depth=self.max_depth)
                pairs = item.items() if isinstance(item, dict) else enumerate(item)
                for key, child in pairs:
                    if isinstance(key, str) and "\x00" in key:
                        raise self.make_error("nul", path=path)
                    pending.append((child, f"{path}[{key!r}]", depth + 1))
            elif isinstance(item, str) and "\x00" in item:
                raise self.make_error("nul", path=path)
            elif isinstance(item, float) and not math.isfinite(item):
                raise self.make_error("number", path=path)
            elif not (item is None or isinstance(item, bool | int | float | str)):
                raise self.make_error("invalid")
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if size > self.max_bytes:
            raise self.make_error("too_large", max_bytes=self.max_bytes)
        return value
