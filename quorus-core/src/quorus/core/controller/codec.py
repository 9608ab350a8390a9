"""The one place controller records and commands become plain data and back.

:func:`to_plain` turns a frozen dataclass (with nested dataclasses, enums, tuples, dicts and
optionals) into msgpack-friendly values; ``json=True`` gives the JSON-ready form people see,
where fields marked :data:`SECRET` are left out and fields with a :data:`SHOWN_AS` function are
shown through it. :func:`from_plain` is the strict inverse, driven by the dataclass's type
hints: it refuses a missing or unknown field, a wrong type or a value out of range with a
:class:`RecordFormatError` naming the path of the bad field, so nothing malformed reaches the
state machine.

Every controller decodes every command it applies, so both directions are compiled: each
class gets, once, a function specialised for it (a decoder built from its fields' type hints,
an encoder over its fields), and valid data costs no hint inspection and no path strings. A
refusal carries the steps of its path up from where it was found and becomes the public
error, message and all, in :func:`from_plain`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from quorus.core.errors import QuorusError

T = TypeVar("T")

#: Field metadata: keep the field out of the JSON form (real URIs with credentials).
SECRET = "quorus.secret"
#: Field metadata: a function giving the JSON form of the field's plain value.
SHOWN_AS = "quorus.shown_as"


class RecordFormatError(QuorusError, ValueError):
    """Data does not describe a valid record or command: says which field and why."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    hint: Any
    required: bool
    default: Any
    secret: bool
    shown_as: Callable[[Any], Any] | None


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields(cls: type) -> tuple[_Field, ...]:
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    result = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            required, default = False, f.default
        elif f.default_factory is not dataclasses.MISSING:
            required, default = False, f.default_factory
        else:
            required, default = True, None
        result.append(_Field(
            f.name, hints[f.name], required, default,
            bool(f.metadata.get(SECRET)), f.metadata.get(SHOWN_AS),
        ))
    _FIELDS[cls] = fields = tuple(result)
    return fields


# --- To plain data ----------------------------------------------------------------------------

#: Converts one value of a given class: ``encode(value, json)``.
_Encoder = Callable[[Any, bool], Any]
_ENCODERS: dict[type, _Encoder] = {}
_AS_IS = frozenset({type(None), bool, int, float, str})


def to_plain(value: Any, *, json: bool = False) -> Any:
    """``value`` as None, bool, int, float, str, lists and string-keyed dicts.

    With ``json=True`` secret fields are dropped and ``SHOWN_AS`` fields transformed.
    """
    return _plain(value, json)


def _plain(value: Any, json: bool) -> Any:
    cls = type(value)
    if cls in _AS_IS:
        return value
    return (_ENCODERS.get(cls) or _encoder(cls))(value, json)


def _same(value: Any, json: bool) -> Any:
    return value


def _enum_value(value: enum.Enum, json: bool) -> Any:
    return value.value


def _list(value: Any, json: bool) -> list[Any]:
    return [v if type(v) in _AS_IS else _plain(v, json) for v in value]


def _map(value: Mapping[Any, Any], json: bool) -> dict[str, Any]:
    return {str(k): v if type(v) in _AS_IS else _plain(v, json) for k, v in value.items()}


def _encoder(cls: type) -> _Encoder:
    """The encoder for values of ``cls``, cached (the same choices, in the same order, that
    looking at one value would make)."""
    encoder: _Encoder
    if issubclass(cls, (bool, int, float, str)) or cls is type(None):
        encoder = _enum_value if issubclass(cls, enum.Enum) else _same
    elif issubclass(cls, enum.Enum):
        encoder = _enum_value
    elif dataclasses.is_dataclass(cls) and not issubclass(cls, type):
        encoder = _dataclass_encoder(cls)
    elif issubclass(cls, (tuple, list)):
        encoder = _list
    elif issubclass(cls, Mapping):
        encoder = _map
    else:  # not cached: the class may yet be registered as a Mapping
        raise TypeError(f"cannot convert {cls.__name__} to plain data")
    _ENCODERS[cls] = encoder
    return encoder


def _dataclass_encoder(cls: type) -> _Encoder:
    fields = _fields(cls)
    names = tuple(f.name for f in fields)
    shown = tuple((f.name, f.shown_as) for f in fields if not f.secret)

    def encode(value: Any, json: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not json:
            for name in names:
                field_value = getattr(value, name)
                out[name] = (field_value if type(field_value) in _AS_IS
                             else _plain(field_value, False))
            return out
        for name, shown_as in shown:
            plain = _plain(getattr(value, name), True)
            out[name] = plain if shown_as is None else shown_as(plain)
        return out

    return encode


# --- From plain data --------------------------------------------------------------------------

#: Converts plain data to the value of one type hint, or raises a :class:`_Refusal`.
_Decoder = Callable[[Any], Any]


class _Refusal(Exception):
    """A decoder could not convert a value. ``steps`` is the path from the decoder that
    caught it down to where it was found, last step first: each decoder of a container adds
    its own step on the way up, so paths cost something only when something is wrong."""

    public: type[Exception] = RecordFormatError

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.steps: list[str] = []


class _Unsupported(_Refusal):
    """The type hint has no decoder: a programming error, raised as :class:`TypeError`."""

    public = TypeError


def from_plain(cls: type[T], data: Any, *, path: str = "") -> T:
    """Rebuild a ``cls`` dataclass from :func:`to_plain` output, validating every field."""
    root = path or cls.__name__
    try:
        return typing.cast(T, (_DECODERS.get(cls) or _decoder(cls))(data))
    except _Refusal as refusal:
        where = root + "".join(reversed(refusal.steps))
        raise refusal.public(f"{where}: {refusal.message}") from None


def _describe(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


# Only classes are cached: typing says ``int | float == float | int`` (and so
# ``tuple[int | float, ...] == tuple[float | int, ...]``), yet the first option that fits wins.
_DECODERS: dict[type, _Decoder] = {}


def _passes_as_is(hint: Any) -> frozenset[type]:
    """The classes whose exact instances are valid values of ``hint`` as they are: its
    decoder would return them unchanged, so callers skip the call. Most fields are strings,
    integers, flags or nothing."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return frozenset({hint} & {str, int, bool})
    options = typing.get_args(hint)
    concrete = [o for o in options if o is not type(None)]
    as_is = {type(None)} if type(None) in options else set()
    if len(concrete) == 1:  # with several, the first that fits may change the value
        as_is |= {concrete[0]} & {str, int, bool}
    return frozenset(as_is)


def _decoder(hint: Any) -> _Decoder:
    """The decoder for ``hint``: looked up for a class, built for anything else."""
    if isinstance(hint, type):
        cached = _DECODERS.get(hint)
        if cached is not None:
            return cached
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _union_decoder(typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return _variadic_tuple_decoder(_decoder(args[0]), _passes_as_is(args[0]))
        return _fixed_tuple_decoder(tuple(_decoder(a) for a in args))
    if origin in (dict, Mapping):
        key_hint, value_hint = typing.get_args(hint)
        return _map_decoder(_decoder(key_hint), _passes_as_is(key_hint),
                            _decoder(value_hint), _passes_as_is(value_hint))
    if not isinstance(hint, type):
        return _unsupported_decoder(hint)
    decoder: _Decoder
    if dataclasses.is_dataclass(hint):
        decoder = _dataclass_decoder(hint)
    elif issubclass(hint, enum.Enum):
        decoder = _enum_decoder(hint)
    elif hint in _SCALARS:
        decoder = _SCALARS[hint]
    else:
        decoder = _unsupported_decoder(hint)
    _DECODERS[hint] = decoder
    return decoder


def _unsupported_decoder(hint: Any) -> _Decoder:
    # Refused when a value for it turns up, not before: a field that is always absent, or a
    # union's None, never needs one.
    def decode(data: Any) -> Any:
        raise _Unsupported(f"unsupported type hint {hint!r}")

    return decode


def _bool(data: Any) -> bool:
    if data is True or data is False:
        return data
    raise _Refusal(f"expected true or false, got {_describe(data)}")


def _int(data: Any) -> int:
    if type(data) is int or (isinstance(data, int) and not isinstance(data, bool)):
        return data
    raise _Refusal(f"expected an integer, got {_describe(data)}")


def _float(data: Any) -> float:
    if type(data) is not float and (not isinstance(data, (int, float)) or isinstance(data, bool)):
        raise _Refusal(f"expected a number, got {_describe(data)}")
    if not math.isfinite(data):
        raise _Refusal(f"expected a finite number, got {data!r}")
    return float(data)


def _str(data: Any) -> str:
    if isinstance(data, str):
        return data
    raise _Refusal(f"expected a string, got {_describe(data)}")


_SCALARS: dict[type, _Decoder] = {bool: _bool, int: _int, float: _float, str: _str}


def _union_decoder(options: tuple[Any, ...]) -> _Decoder:
    none_allowed = type(None) in options
    decoders = tuple(_decoder(o) for o in options if o is not type(None))
    if len(decoders) == 1:
        only = decoders[0]

        def optional(data: Any) -> Any:
            if data is None and none_allowed:
                return None
            return only(data)

        return optional

    def first_that_fits(data: Any) -> Any:  # e.g. int | float
        if data is None and none_allowed:
            return None
        for decode in decoders:
            try:
                return decode(data)
            except _Unsupported:
                raise
            except _Refusal:
                continue
        raise _Refusal(f"{_describe(data)} is not a valid value")

    return first_that_fits


def _expect_list(data: Any) -> None:
    if not isinstance(data, (list, tuple)):
        raise _Refusal(f"expected a list, got {_describe(data)}")


def _variadic_tuple_decoder(item: _Decoder, as_is: frozenset[type]) -> _Decoder:
    def decode(data: Any) -> tuple[Any, ...]:
        _expect_list(data)
        out: list[Any] = []
        try:
            for value in data:
                out.append(value if type(value) in as_is else item(value))
        except _Refusal as refusal:
            refusal.steps.append(f"[{len(out)}]")
            raise
        return tuple(out)

    return decode


def _fixed_tuple_decoder(items: tuple[_Decoder, ...]) -> _Decoder:
    def decode(data: Any) -> tuple[Any, ...]:
        _expect_list(data)
        if len(items) != len(data):
            raise _Refusal(f"expected {len(items)} items, got {len(data)}")
        out: list[Any] = []
        try:
            for item, value in zip(items, data, strict=True):
                out.append(item(value))
        except _Refusal as refusal:
            refusal.steps.append(f"[{len(out)}]")
            raise
        return tuple(out)

    return decode


def _map_decoder(key: _Decoder, key_as_is: frozenset[type],
                 value: _Decoder, value_as_is: frozenset[type]) -> _Decoder:
    def decode(data: Any) -> dict[Any, Any]:
        if type(data) is not dict and not isinstance(data, Mapping):
            raise _Refusal(f"expected a map, got {_describe(data)}")
        out: dict[Any, Any] = {}
        for k, v in data.items():
            try:
                decoded_key = k if type(k) in key_as_is else key(k)
            except _Refusal as refusal:
                refusal.steps.append(" key")
                raise
            try:
                out[decoded_key] = v if type(v) in value_as_is else value(v)
            except _Refusal as refusal:
                refusal.steps.append(f"[{k!r}]")
                raise
        return out

    return decode


def _enum_decoder(cls: type[enum.Enum]) -> _Decoder:
    # The lookup ``cls(data)`` starts with, without the call; anything else goes through it.
    members = cls._value2member_map_

    def decode(data: Any) -> enum.Enum:
        try:
            return members[data]
        except (KeyError, TypeError):
            pass
        try:
            return cls(data)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in cls)
            raise _Refusal(f"{data!r} is not one of {allowed}") from None

    return decode


def _dataclass_decoder(cls: type) -> _Decoder:
    # The fields' decoders are built on the first value, not here: a dataclass may refer to
    # itself, and a hint that cannot be resolved fails where it always did.
    plan: tuple[tuple[str, _Decoder, frozenset[type], bool], ...] | None = None
    known: frozenset[str] = frozenset()

    def decode(data: Any) -> Any:
        nonlocal plan, known
        if type(data) is not dict and not isinstance(data, Mapping):
            raise _Refusal(f"expected a map, got {_describe(data)}")
        if plan is None:
            fields = _fields(cls)
            known = frozenset(f.name for f in fields)
            plan = tuple((f.name, _decoder(f.hint), _passes_as_is(f.hint), f.required)
                         for f in fields)
        if not known.issuperset(data):
            unknown = sorted(str(k) for k in data if k not in known)
            raise _Refusal(f"unknown field(s) {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, field_decoder, as_is, required in plan:
            if name in data:
                value = data[name]
                if type(value) in as_is:
                    kwargs[name] = value
                    continue
                try:
                    kwargs[name] = field_decoder(value)
                except _Refusal as refusal:
                    refusal.steps.append(f".{name}")
                    raise
            elif required:
                raise _Refusal(f"missing field {name}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # __post_init__ checks
            raise _Refusal(str(exc)) from None

    return decode


__all__ = ["SECRET", "SHOWN_AS", "RecordFormatError", "from_plain", "to_plain"]
