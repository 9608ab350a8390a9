"""Conversion between the protocol's frozen dataclasses and msgpack-friendly values, driven by
their type hints, so no message is converted by hand.

A dataclass becomes a map of its field names; tuples become lists, enums their values, and
``X | None`` is ``nil`` or an ``X``. Decoding checks every field against its declared type
(a ``bool`` is not an ``int``; an ``int`` is accepted for a ``float``), refuses missing and
unknown fields, and turns a value the dataclass itself refuses (its ``__post_init__`` raises
:class:`ValueError`) into :class:`MessageDecodeError`. Recursion follows the declared types,
never the input, so a hostile value cannot nest deeper than the schema.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from quorus.core.agentproto.errors import MessageDecodeError

Decoder = Callable[[object, str], Any]
Encoder = Callable[[Any], Any]


def _describe(value: object) -> str:
    if isinstance(value, str | int | float | bool) or value is None:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return type(value).__name__


def _fail(path: str, expected: str, value: object) -> MessageDecodeError:
    return MessageDecodeError(f"{path}: expected {expected}, got {_describe(value)}")


def _decode_str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, "a string", value)
    return value


def _decode_int(value: object, path: str) -> int:
    if type(value) is not int:
        raise _fail(path, "an integer", value)
    return value


def _decode_float(value: object, path: str) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _fail(path, "a number", value)


def _decode_bool(value: object, path: str) -> bool:
    if type(value) is not bool:
        raise _fail(path, "a boolean", value)
    return value


def _decode_none(value: object, path: str) -> None:
    if value is not None:
        raise _fail(path, "nil", value)


_PRIMITIVES: dict[object, Decoder] = {
    str: _decode_str,
    int: _decode_int,
    float: _decode_float,
    bool: _decode_bool,
    type(None): _decode_none,
}


def _identity(value: Any) -> Any:
    return value


@cache
def decoder_for(tp: Any) -> Decoder:
    """The function checking and converting a received value to type ``tp``."""
    if tp in _PRIMITIVES:
        return _PRIMITIVES[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_decoder(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if origin in (types.UnionType, typing.Union):
        return _optional_decoder(args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_decoder(decoder_for(args[0]))
    if origin in (Mapping, dict) and args:
        return _mapping_decoder(decoder_for(args[0]), decoder_for(args[1]))
    raise TypeError(f"the agent protocol codec does not support the type {tp!r}")


def _enum_decoder(cls: type[enum.Enum]) -> Decoder:
    allowed = ", ".join(repr(member.value) for member in cls)

    def decode(value: object, path: str) -> enum.Enum:
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise _fail(path, f"one of {allowed}", value) from None

    return decode


def _optional_decoder(args: tuple[Any, ...]) -> Decoder:
    present = [arg for arg in args if arg is not type(None)]
    if len(present) != 1 or len(args) != 2:
        raise TypeError(f"only 'X | None' unions are supported, not {args!r}")
    inner = decoder_for(present[0])

    def decode(value: object, path: str) -> Any:
        return None if value is None else inner(value, path)

    return decode


def _tuple_decoder(item: Decoder) -> Decoder:
    def decode(value: object, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise _fail(path, "a list", value)
        return tuple(item(element, f"{path}[{i}]") for i, element in enumerate(value))

    return decode


def _mapping_decoder(key: Decoder, item: Decoder) -> Decoder:
    def decode(value: object, path: str) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise _fail(path, "a map", value)
        return {key(k, f"{path} key"): item(v, f"{path}[{_describe(k)}]") for k, v in value.items()}

    return decode


_FIELD_TYPES: dict[type[Any], tuple[tuple[str, Any], ...]] = {}


def field_types(cls: type[Any]) -> tuple[tuple[str, Any], ...]:
    """``(name, type)`` of each field of the dataclass ``cls``, annotations resolved."""
    found = _FIELD_TYPES.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))
        _FIELD_TYPES[cls] = found
    return found


_LAYOUTS: dict[type[Any], tuple[tuple[tuple[str, Decoder], ...], frozenset[str]]] = {}


def _layout(cls: type[Any]) -> tuple[tuple[tuple[str, Decoder], ...], frozenset[str]]:
    found = _LAYOUTS.get(cls)
    if found is None:
        layout = tuple((name, decoder_for(tp)) for name, tp in field_types(cls))
        found = (layout, frozenset(name for name, _ in layout))
        _LAYOUTS[cls] = found
    return found


def _dataclass_decoder(cls: type[Any]) -> Decoder:
    def decode(value: object, path: str) -> Any:
        if not isinstance(value, dict):
            raise _fail(path, "a map", value)
        return build(cls, value, path)

    return decode


def build(
    cls: type[Any], value: dict[Any, Any], path: str, ignore: frozenset[str] = frozenset()
) -> Any:
    """An instance of the dataclass ``cls`` from the map ``value`` (keys in ``ignore`` are
    skipped, e.g. a message's ``type``); ``path`` names it in errors."""
    layout, names = _layout(cls)
    unknown = [key for key in value if key not in names and key not in ignore]
    if unknown:
        raise MessageDecodeError(f"{path}: unknown field {_describe(unknown[0])}")
    values: dict[str, Any] = {}
    for name, decode in layout:
        if name not in value:
            raise MessageDecodeError(f"{path}: missing field {name!r}")
        values[name] = decode(value[name], f"{path}.{name}")
    try:
        return cls(**values)
    except ValueError as exc:
        raise MessageDecodeError(f"{path}: {exc}") from None


def encode(value: Any) -> Any:
    """``value`` (a protocol dataclass or any value a field may hold) as msgpack types."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: encode(getattr(value, name)) for name, _ in field_types(type(value))}
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    if isinstance(value, Mapping):
        return {encode(k): encode(v) for k, v in value.items()}
    return value


__all__ = ["build", "decoder_for", "encode", "field_types"]
