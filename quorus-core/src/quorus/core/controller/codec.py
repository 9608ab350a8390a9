"""The one place controller records and commands become plain data and back.

:func:`to_plain` turns a frozen dataclass (with nested dataclasses, enums, tuples, dicts and
optionals) into msgpack-friendly values; ``json=True`` gives the JSON-ready form people see,
where fields marked :data:`SECRET` are left out and fields with a :data:`SHOWN_AS` function are
shown through it. :func:`from_plain` is the strict inverse, driven by the dataclass's type
hints: it refuses a missing or unknown field, a wrong type or a value out of range with a
:class:`RecordFormatError` naming the path of the bad field, so nothing malformed reaches the
state machine.
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


def to_plain(value: Any, *, json: bool = False) -> Any:
    """``value`` as None, bool, int, float, str, lists and string-keyed dicts.

    With ``json=True`` secret fields are dropped and ``SHOWN_AS`` fields transformed.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return value.value
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in _fields(type(value)):
            if json and f.secret:
                continue
            plain = to_plain(getattr(value, f.name), json=json)
            if json and f.shown_as is not None:
                plain = f.shown_as(plain)
            out[f.name] = plain
        return out
    if isinstance(value, (tuple, list)):
        return [to_plain(v, json=json) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, json=json) for k, v in value.items()}
    raise TypeError(f"cannot convert {type(value).__name__} to plain data")


def from_plain(cls: type[T], data: Any, *, path: str = "") -> T:
    """Rebuild a ``cls`` dataclass from :func:`to_plain` output, validating every field."""
    return typing.cast(T, _convert(cls, data, path or cls.__name__))


def _describe(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _convert(hint: Any, data: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(hint)
        if data is None and type(None) in options:
            return None
        concrete = [o for o in options if o is not type(None)]
        if len(concrete) == 1:
            return _convert(concrete[0], data, path)
        for option in concrete:  # e.g. int | float: the first that fits
            try:
                return _convert(option, data, path)
            except RecordFormatError:
                continue
        raise RecordFormatError(f"{path}: {_describe(data)} is not a valid value")
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(data, (list, tuple)):
            raise RecordFormatError(f"{path}: expected a list, got {_describe(data)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(data))
        if len(args) != len(data):
            raise RecordFormatError(f"{path}: expected {len(args)} items, got {len(data)}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, data, strict=True)))
    if origin in (dict, Mapping):
        key_hint, value_hint = typing.get_args(hint)
        if not isinstance(data, Mapping):
            raise RecordFormatError(f"{path}: expected a map, got {_describe(data)}")
        return {
            _convert(key_hint, k, f"{path} key"): _convert(value_hint, v, f"{path}[{k!r}]")
            for k, v in data.items()
        }
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return _dataclass(hint, data, path)
        if issubclass(hint, enum.Enum):
            try:
                return hint(data)
            except ValueError:
                allowed = ", ".join(str(m.value) for m in hint)
                raise RecordFormatError(
                    f"{path}: {data!r} is not one of {allowed}"
                ) from None
        if hint is bool:
            if not isinstance(data, bool):
                raise RecordFormatError(f"{path}: expected true or false, got {_describe(data)}")
            return data
        if hint is int:
            if not isinstance(data, int) or isinstance(data, bool):
                raise RecordFormatError(f"{path}: expected an integer, got {_describe(data)}")
            return data
        if hint is float:
            if not isinstance(data, (int, float)) or isinstance(data, bool):
                raise RecordFormatError(f"{path}: expected a number, got {_describe(data)}")
            if not math.isfinite(data):
                raise RecordFormatError(f"{path}: expected a finite number, got {data!r}")
            return float(data)
        if hint is str:
            if not isinstance(data, str):
                raise RecordFormatError(f"{path}: expected a string, got {_describe(data)}")
            return data
    raise TypeError(f"{path}: unsupported type hint {hint!r}")


def _dataclass(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise RecordFormatError(f"{path}: expected a map, got {_describe(data)}")
    fields = _fields(cls)
    known = {f.name for f in fields}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise RecordFormatError(f"{path}: unknown field(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f.name in data:
            kwargs[f.name] = _convert(f.hint, data[f.name], f"{path}.{f.name}")
        elif f.required:
            raise RecordFormatError(f"{path}: missing field {f.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # __post_init__ checks
        raise RecordFormatError(f"{path}: {exc}") from None


__all__ = ["SECRET", "SHOWN_AS", "RecordFormatError", "from_plain", "to_plain"]
