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


class _Bad(Exception):
    """A value that does not fit, found below the point being decoded: ``where`` is the path
    from that point (``.field``, ``[3]``), ``what`` the problem. Decoding builds no path
    string unless something is wrong: each level adds its part as the error passes up."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(what)
        self.where = where
        self.what = what


def _expected(expected: str, value: object) -> _Bad:
    return _Bad("", f"expected {expected}, got {_describe(value)}")


def _fail(path: str, expected: str, value: object) -> MessageDecodeError:
    return MessageDecodeError(f"{path}: expected {expected}, got {_describe(value)}")


# The fast decoders take the value alone and raise _Bad; decoder_for wraps them.
_Fast = Callable[[object], Any]


def _decode_str(value: object) -> str:
    if not isinstance(value, str):
        raise _expected("a string", value)
    return value


def _decode_int(value: object) -> int:
    if type(value) is not int:
        raise _expected("an integer", value)
    return value


def _decode_float(value: object) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _expected("a number", value)


def _decode_bool(value: object) -> bool:
    if type(value) is not bool:
        raise _expected("a boolean", value)
    return value


def _decode_none(value: object) -> None:
    if value is not None:
        raise _expected("nil", value)


_PRIMITIVES: dict[object, _Fast] = {
    str: _decode_str,
    int: _decode_int,
    float: _decode_float,
    bool: _decode_bool,
    type(None): _decode_none,
}


def _identity(value: Any) -> Any:
    return value


def _at(path: str, bad: _Bad) -> MessageDecodeError:
    return MessageDecodeError(f"{path}{bad.where}: {bad.what}")


@cache
def decoder_for(tp: Any) -> Decoder:
    """The function checking and converting a received value to type ``tp``; errors name
    the value as its second argument, ``path``."""
    fast = _fast_for(tp)

    def decode(value: object, path: str) -> Any:
        try:
            return fast(value)
        except _Bad as bad:
            raise _at(path, bad) from None

    return decode


@cache
def _fast_for(tp: Any) -> _Fast:
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
        return _tuple_decoder(_fast_for(args[0]))
    if origin in (Mapping, dict) and args:
        return _mapping_decoder(_fast_for(args[0]), _fast_for(args[1]))
    raise TypeError(f"the agent protocol codec does not support the type {tp!r}")


def _enum_decoder(cls: type[enum.Enum]) -> _Fast:
    allowed = ", ".join(repr(member.value) for member in cls)
    members = {member.value: member for member in cls}

    def decode(value: object) -> enum.Enum:
        try:
            found = members.get(value)
        except TypeError:  # unhashable
            found = None
        if found is None:
            raise _expected(f"one of {allowed}", value)
        return found

    return decode


def _optional_decoder(args: tuple[Any, ...]) -> _Fast:
    present = [arg for arg in args if arg is not type(None)]
    if len(present) != 1 or len(args) != 2:
        raise TypeError(f"only 'X | None' unions are supported, not {args!r}")
    inner = _fast_for(present[0])

    def decode(value: object) -> Any:
        return None if value is None else inner(value)

    return decode


def _tuple_decoder(item: _Fast) -> _Fast:
    def decode(value: object) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise _expected("a list", value)
        if not value:
            return ()
        try:
            return tuple([item(element) for element in value])
        except _Bad:
            pass
        for i, element in enumerate(value):  # which one: only when one is wrong
            try:
                item(element)
            except _Bad as bad:
                raise _Bad(f"[{i}]{bad.where}", bad.what) from None
        raise AssertionError("unreachable")  # pragma: no cover

    return decode


def _mapping_decoder(key: _Fast, item: _Fast) -> _Fast:
    def decode(value: object) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise _expected("a map", value)
        out: dict[Any, Any] = {}
        for k, v in value.items():
            try:
                decoded_key = key(k)
            except _Bad as bad:
                raise _Bad(f" key{bad.where}", bad.what) from None
            try:
                out[decoded_key] = item(v)
            except _Bad as bad:
                raise _Bad(f"[{_describe(k)}]{bad.where}", bad.what) from None
        return out

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


_LAYOUTS: dict[type[Any], tuple[tuple[tuple[str, _Fast], ...], frozenset[str]]] = {}


def _layout(cls: type[Any]) -> tuple[tuple[tuple[str, _Fast], ...], frozenset[str]]:
    found = _LAYOUTS.get(cls)
    if found is None:
        layout = tuple((name, _fast_for(tp)) for name, tp in field_types(cls))
        found = (layout, frozenset(name for name, _ in layout))
        _LAYOUTS[cls] = found
    return found


def _dataclass_decoder(cls: type[Any]) -> _Fast:
    def decode(value: object) -> Any:
        if not isinstance(value, dict):
            raise _expected("a map", value)
        return _build(cls, value, frozenset())

    return decode


def _build(cls: type[Any], value: dict[Any, Any], ignore: frozenset[str]) -> Any:
    layout, names = _layout(cls)
    if len(value) != len(names) or ignore:
        _refuse_unknown(value, names, ignore)
    values: dict[str, Any] = {}
    for name, decode in layout:
        try:
            raw = value[name]
        except KeyError:
            _refuse_unknown(value, names, ignore)  # an unknown field is named first
            raise _Bad("", f"missing field {name!r}") from None
        try:
            values[name] = decode(raw)
        except _Bad as bad:
            raise _Bad(f".{name}{bad.where}", bad.what) from None
    try:
        return cls(**values)
    except ValueError as exc:
        raise _Bad("", str(exc)) from None


def _refuse_unknown(value: dict[Any, Any], names: frozenset[str], ignore: frozenset[str]) -> None:
    unknown = [key for key in value if key not in names and key not in ignore]
    if unknown:
        raise _Bad("", f"unknown field {_describe(unknown[0])}")


def build(
    cls: type[Any], value: dict[Any, Any], path: str, ignore: frozenset[str] = frozenset()
) -> Any:
    """An instance of the dataclass ``cls`` from the map ``value`` (keys in ``ignore`` are
    skipped, e.g. a message's ``type``); ``path`` names it in errors."""
    try:
        return _build(cls, value, ignore)
    except _Bad as bad:
        raise _at(path, bad) from None


def encode(value: Any) -> Any:
    """``value`` (a protocol dataclass or any value a field may hold) as msgpack types.

    What a value becomes depends on its class alone (an enum its value, a dataclass a map of
    its fields, a tuple or list a list, a mapping a dict, anything else itself), so the
    choice is made once per class and kept: the leader encodes an assignment, a job's whole
    description, for every job it places.
    """
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        encoder = _ENCODERS[type(value)] = _encoder_for_class(type(value))
    return encoder(value)


#: Values of these classes are sent as they are.
_PLAIN: frozenset[type[Any]] = frozenset({str, int, float, bool, bytes, type(None)})
_ENCODERS: dict[type[Any], Encoder] = {}


def _encode_item(item: Any) -> Any:
    return item if type(item) in _PLAIN else encode(item)


def _encode_enum(value: enum.Enum) -> Any:
    return value.value


def _encode_sequence(value: tuple[Any, ...] | list[Any]) -> list[Any]:
    return [item if type(item) in _PLAIN else encode(item) for item in value]


def _encode_mapping(value: Mapping[Any, Any]) -> dict[Any, Any]:
    return {_encode_item(k): _encode_item(v) for k, v in value.items()}


def _encoder_for_class(cls: type[Any]) -> Encoder:
    if cls in _PLAIN:
        return _identity
    if issubclass(cls, enum.Enum):
        return _encode_enum
    if dataclasses.is_dataclass(cls):
        return _dataclass_encoder(cls)
    if issubclass(cls, tuple | list):
        return _encode_sequence
    if issubclass(cls, Mapping):
        return _encode_mapping
    return _identity


def _dataclass_encoder(cls: type[Any]) -> Encoder:
    names = tuple(name for name, _ in field_types(cls))
    plain = _PLAIN

    def encode_fields(value: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            item = getattr(value, name)
            out[name] = item if type(item) in plain else encode(item)
        return out

    return encode_fields


__all__ = ["build", "decoder_for", "encode", "field_types"]
