"""Marshmallow schemas compiled to msgspec types: the same rules, checked in C.

Marshmallow calls a few Python functions per field and validator: for a heartbeat, ~160 µs of
the request (profiled, bench/README.md). `compile_schema` reads a schema's own fields and
validators once and builds a msgspec Struct with the same bounds, lengths and anchored
patterns, so the schema stays the one definition (and the OpenAPI document is still generated
from it). `FastLoadSchema.load` tries that Struct first and hands anything it refuses to
marshmallow, which then answers as it always did: the 422 messages and their shape cannot
drift, and a value the compiled type is unsure about (the string "5" for a float, say) is
simply decided the slow way.

For that to be exact, the compiled type may only ever be stricter than the schema, and must
load what it accepts to the same value; `tests/control/test_heartbeat.py` checks both on
generated heartbeats. Only the field and validator classes below compile; any other raises
TypeError when the schema is compiled (at import), never a silent gap.
"""

from __future__ import annotations

import functools
import operator
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

import marshmallow as ma
import msgspec

from control.api.fields import FullMatch, Struct

# A field's compiled type, and what to run on its loaded value in Python (None: nothing).
Compiled = tuple[Any, Callable[[Any], Any] | None]


def _pattern(validator: FullMatch) -> str:
    """`re.fullmatch(p, s, re.ASCII)` as msgspec's `re.search`: anchored at both ends."""
    if validator.regex.flags & ~(re.ASCII | re.UNICODE):
        raise TypeError(f"cannot compile pattern flags of {validator.regex.pattern!r}")
    return rf"(?a)\A(?:{validator.regex.pattern})\Z"


def _constraints(field: ma.fields.Field) -> dict[str, Any]:
    """The msgspec Meta constraints of a field's validators."""
    meta: dict[str, Any] = {}
    for validator in field.validators:
        # Exactly these classes: a subclass may check something else.
        if type(validator) not in (ma.validate.Length, ma.validate.Range, FullMatch):
            raise TypeError(f"cannot compile validator {validator!r} of {field!r}")
        if isinstance(validator, ma.validate.Length) and validator.equal is None:
            if validator.min is not None:
                meta["min_length"] = validator.min
            if validator.max is not None:
                meta["max_length"] = validator.max
        elif isinstance(validator, ma.validate.Range):
            if validator.min is not None:
                meta["ge" if validator.min_inclusive else "gt"] = validator.min
            if validator.max is not None:
                meta["le" if validator.max_inclusive else "lt"] = validator.max
        elif isinstance(validator, FullMatch) and "pattern" not in meta:
            meta["pattern"] = _pattern(validator)
        else:
            raise TypeError(f"cannot compile validator {validator!r} of {field!r}")
    return meta


def _field_type(field: ma.fields.Field, strict: bool = False) -> Compiled:
    """The msgspec type of one marshmallow field (None allowed if the field allows it).

    `strict`: every object in it refuses unknown keys (see `compile_schema`).
    """
    kind = type(field)
    after: Callable[[Any], Any] | None = None
    if kind is ma.fields.String:
        base: Any = str
    elif isinstance(field, ma.fields.Float) and kind is ma.fields.Float and not field.allow_nan:
        base = float
    elif kind is ma.fields.Integer:
        base = int
    elif isinstance(field, ma.fields.DateTime) and not field.validators:
        # The field itself parses the text: its own rules, clock quirks included.
        base, after = str, field.deserialize
    elif isinstance(field, Struct) and kind is Struct and not field.validators:
        base = strict_type(field.type) if strict else field.type
    elif isinstance(field, ma.fields.Nested) and kind is ma.fields.Nested and not field.validators:
        if field.many:
            raise TypeError(f"cannot compile field {field!r}")
        base, after = compile_schema(field.schema, strict=strict)
    else:
        raise TypeError(f"cannot compile field {field!r}")
    meta = _constraints(field) if base in (str, float, int) else {}
    typ = Annotated[base, msgspec.Meta(**meta)] if meta else base
    return (typ | None if field.allow_none else typ), after


def compile_schema(schema: ma.Schema, *, strict: bool = False) -> Compiled:
    """A msgspec Struct with `schema`'s fields and rules, and what to finish in Python.

    Unknown keys are ignored (EXCLUDE) or refused (RAISE) as the schema says; `strict` refuses
    them everywhere, nested objects included. A strict type can decode JSON bytes directly
    with nothing left unchecked: msgspec skips an unknown key's value without the checks
    `strict_json` makes (UTF-8, number range), so a body with one must take the exact path.
    """
    if any(schema._hooks.values()):  # pre/post-load hooks, schema validators
        raise TypeError(f"cannot compile the hooks of {schema!r}")
    if schema.unknown not in (ma.EXCLUDE, ma.RAISE):
        raise TypeError(f"cannot compile unknown={schema.unknown!r} of {schema!r}")
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    finish: dict[str, Callable[[Any], Any]] = {}
    for name, field in schema.load_fields.items():
        if field.data_key not in (None, name) or field.load_default is not ma.missing:
            raise TypeError(f"cannot compile data_key or load_default of {name!r}")
        typ, after = _field_type(field, strict)
        if field.required:
            fields.append((name, typ))
        else:
            fields.append((name, typ | msgspec.UnsetType, msgspec.UNSET))
        if after is not None:
            finish[name] = after
    # Required fields first, as a Struct needs; the loaded dict is keyed by name anyway.
    fields.sort(key=len)
    struct = msgspec.defstruct(
        f"{type(schema).__name__}Compiled",
        fields,
        forbid_unknown_fields=strict or schema.unknown == ma.RAISE,
    )
    return struct, (_finisher(finish) if finish else None)


def strict_type(typ: Any) -> Any:
    """`typ` with each msgspec Struct in it replaced by a subclass refusing unknown fields.

    Lists, unions (`| None`) and `Annotated` constraints are kept; other types are returned as
    they are (they hold no objects).
    """
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is Annotated:
        return Annotated[(strict_type(args[0]), *typ.__metadata__)]
    if origin is list:
        return list[strict_type(args[0])]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, (strict_type(arg) for arg in args))
    if isinstance(typ, type) and issubclass(typ, msgspec.Struct):
        return _strict_struct(typ)
    return typ


@functools.cache
def _strict_struct(struct: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """`struct` refusing unknown fields, its own field types made strict too (one per class)."""
    config = struct.__struct_config__
    infos = msgspec.structs.fields(struct)
    if config.array_like or config.tag is not None or any(f.encode_name != f.name for f in infos):
        raise TypeError(f"cannot make {struct!r} strict: its wire form is not its fields")
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in infos:
        typ = strict_type(field.type)
        if field.default is not msgspec.NODEFAULT:
            fields.append((field.name, typ, field.default))
        elif field.default_factory is not msgspec.NODEFAULT:
            fields.append((field.name, typ, msgspec.field(default_factory=field.default_factory)))
        else:
            fields.append((field.name, typ))
    return msgspec.defstruct(f"Strict{struct.__name__}", fields, forbid_unknown_fields=True)


def _finisher(finish: dict[str, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def run(loaded: Any) -> Any:
        if loaded is not None:
            for name, after in finish.items():
                if name in loaded:
                    loaded[name] = after(loaded[name]) if loaded[name] is not None else None
        return loaded

    return run


class FastLoadSchema(ma.Schema):
    """A Schema whose `load` first tries its compiled msgspec type (see the module docstring).

    Its Nested schemas compile with it. Subclasses declare fields as usual; each instance
    compiles its own fields (`only`, `exclude`) on first use: build the instance once.
    """

    _compiled: Compiled | None = None
    _strict: tuple[msgspec.json.Decoder, Callable[[Any], Any] | None] | None = None

    def load(self, data: Any, *, many: Any = None, partial: Any = None, unknown: Any = None):
        """Load `data` as marshmallow would, taking msgspec's word where it accepts."""
        if many is None and partial is None and unknown is None and not self.many:
            if self._compiled is None:
                self._compiled = compile_schema(self)
            struct, finish = self._compiled
            try:
                loaded = msgspec.to_builtins(msgspec.convert(data, struct))
                return finish(loaded) if finish else loaded
            except (msgspec.ValidationError, ma.ValidationError):
                pass  # marshmallow decides, and words the 422
        return super().load(data, many=many, partial=partial, unknown=unknown)

    def load_json(self, body: bytes) -> Any | None:
        """`load(strict_json.loads(body))` in one pass in C, for a body of known fields only.

        None when that pass refuses the body for any reason (a key this schema does not know,
        malformed JSON, a value out of bounds): the caller then takes the exact path, which
        accepts or words the refusal as ever. Whatever this accepts, the exact path loads to
        the same value (tests/control/test_heartbeat.py).
        """
        if self._strict is None:
            struct, finish = compile_schema(self, strict=True)
            self._strict = msgspec.json.Decoder(struct), finish
        decoder, finish = self._strict
        try:
            loaded = msgspec.to_builtins(decoder.decode(body))
            return finish(loaded) if finish else loaded
        except (msgspec.DecodeError, msgspec.ValidationError, ma.ValidationError):
            return None
