"""Declarative map schemas, and the one function that checks them.

The contract itself is msgspec Structs (`protocol.contract`, `protocol.contract_results`);
`schema_of` derives a method's result schema from its Struct, for code that checks a map
as it is. A schema is a mapping of field name to `Field`. Checking is strict: an unknown key, a
missing required key, a wrong type or an out-of-bounds value is an `InvalidParams` naming
the field. It is hand-written because it runs on every sealed call and must cost
microseconds, not the tens a general JSON-Schema validator takes.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import msgspec.inspect

from protocol.errors import InvalidParams

DEFAULT_MAX_STRING = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One field: its type and bounds. `max_len` bounds strings, lists and maps."""

    type: type | tuple[type, ...]
    required: bool = True
    max_len: int | None = DEFAULT_MAX_STRING
    min: float | None = None
    max: float | None = None
    choices: frozenset[Any] | None = None
    # `builtins.type`: inside this class body, a bare `type` names the field above
    items: builtins.type | tuple[builtins.type, ...] | None = None
    #: For a map: the schema its contents must fit.
    fields: Mapping[str, Field] | None = None

    def check(self, name: str, value: Any) -> None:
        expected = self.type
        # bool is an int subclass: an int field must not accept True.
        if isinstance(value, bool) and bool not in _as_tuple(expected):
            raise InvalidParams(f"'{name}' must be {_type_names(expected)}")
        if not isinstance(value, expected):
            raise InvalidParams(f"'{name}' must be {_type_names(expected)}")
        if self.max_len is not None and isinstance(value, str | bytes | list | dict):
            if len(value) > self.max_len:
                raise InvalidParams(f"'{name}' is longer than {self.max_len}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                raise InvalidParams(f"'{name}' must be at least {self.min}")
            if self.max is not None and value > self.max:
                raise InvalidParams(f"'{name}' must be at most {self.max}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(sorted(map(str, self.choices)))
            raise InvalidParams(f"'{name}' must be one of: {allowed}")
        if self.fields is not None and isinstance(value, dict):
            try:
                validate(self.fields, value)
            except InvalidParams as exc:
                raise InvalidParams(f"in '{name}': {exc.message}") from None
        if self.items is not None and isinstance(value, list):
            for index, item in enumerate(value):
                if not isinstance(item, self.items) or isinstance(item, bool):
                    raise InvalidParams(f"'{name}[{index}]' must be {_type_names(self.items)}")


Schema = Mapping[str, Field]


def validate(schema: Schema, params: Mapping[str, Any]) -> None:
    """Raise `InvalidParams` unless `params` fits `schema` exactly."""
    for key in params:
        if key not in schema:
            raise InvalidParams(f"unknown parameter '{key}'" if isinstance(key, str) else "bad key")
    for name, field in schema.items():
        if name in params:
            value = params[name]
            if value is None and not field.required:
                continue
            field.check(name, value)
        elif field.required:
            raise InvalidParams(f"missing parameter '{name}'")


def _as_tuple(expected: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def _type_names(expected: type | tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "a boolean",
        list: "a list",
        dict: "a map",
        bytes: "bytes",
        type(None): "nil",
    }
    return " or ".join(names.get(t, t.__name__) for t in _as_tuple(expected))


@functools.cache
def schema_of(kind: type[msgspec.Struct]) -> Schema:
    """A Struct's fields as a Schema: the contract declares each result once, as a Struct
    (`protocol.contract_results`), and code that checks maps with `validate` reads it here."""
    info = msgspec.inspect.type_info(kind)
    if not isinstance(info, msgspec.inspect.StructType):
        raise RuntimeError(f"{kind!r} is not a Struct.")
    return {field.name: _field(field.type, field.required) for field in info.fields}


def _field(info: msgspec.inspect.Type, required: bool) -> Field:
    kinds = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    types = tuple(t for k in kinds for t in _python_types(k))
    sized = [k for k in kinds if isinstance(k, _SIZED)]
    max_len = getattr(sized[0], "max_length", None) if sized else None
    lists = [k for k in kinds if isinstance(k, msgspec.inspect.ListType)]
    items = _python_types(lists[0].item_type) if lists else ()
    structs = [k for k in kinds if isinstance(k, msgspec.inspect.StructType)]
    return Field(
        type=types[0] if len(types) == 1 else types,
        required=required,
        max_len=max_len,
        items=items if items and object not in items and dict not in items else None,
        fields=schema_of(structs[0].cls) if structs else None,
    )


_SIZED = (
    msgspec.inspect.StrType,
    msgspec.inspect.ListType,
    msgspec.inspect.DictType,
)


def _python_types(info: msgspec.inspect.Type) -> tuple[type, ...]:
    simple: dict[type, tuple[type, ...]] = {
        msgspec.inspect.StrType: (str,),
        msgspec.inspect.IntType: (int,),
        msgspec.inspect.FloatType: (float,),
        msgspec.inspect.BoolType: (bool,),
        msgspec.inspect.NoneType: (type(None),),
        msgspec.inspect.ListType: (list,),
        msgspec.inspect.DictType: (dict,),
        msgspec.inspect.StructType: (dict,),
    }
    return simple.get(type(info), (object,))
