"""The JSON Schema (draft 2020-12) of each definition kind, shipped as self-contained files in
``schemas/`` so editors can use them as they are, and compiled validators for them."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from quorus.core.errors import QuorusError

__all__ = ["KINDS", "UnknownKindError", "canonical_kind", "conforms", "schema_for",
           "validator_for"]

KINDS: tuple[str, ...] = ("Transfer", "TransferGroup", "TransferWorkflow", "TenantConfiguration")

_LOCAL = "#/$defs/"

_FILES = {
    "Transfer": "transfer.json",
    "TransferGroup": "transfer-group.json",
    "TransferWorkflow": "transfer-workflow.json",
    "TenantConfiguration": "tenant-configuration.json",
}


def _folded(kind: str) -> str:
    return kind.replace("-", "").replace("_", "").replace(" ", "").casefold()


_BY_FOLDED = {_folded(kind): kind for kind in KINDS}


class UnknownKindError(QuorusError, KeyError):
    """A kind that is not one of :data:`KINDS`."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown kind {kind!r}: use one of {', '.join(KINDS)} "
                         "(or a hyphenated form such as transfer-group)")

    def __str__(self) -> str:
        # KeyError would show the message quoted like a dictionary key.
        return str(self.args[0])


def canonical_kind(kind: str) -> str:
    """``transfer-group``, ``transfergroup`` or ``TransferGroup`` → ``TransferGroup``.

    Raises :class:`UnknownKindError` (a ``KeyError``) for anything else."""
    found = _BY_FOLDED.get(_folded(kind))
    if found is None:
        raise UnknownKindError(kind)
    return found


@functools.cache
def _load(kind: str) -> dict[str, Any]:
    text = resources.files("quorus.workflow").joinpath("schemas", _FILES[kind]).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_for(kind: str) -> dict[str, Any]:
    """The JSON Schema of ``kind`` (exact or hyphenated), a copy the caller may change."""
    return copy.deepcopy(_load(canonical_kind(kind)))


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith(_LOCAL):
                yield item.removeprefix(_LOCAL)
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every plain reference to a non-recursive ``$defs`` entry replaced by
    the entry itself. Resolving a ``$ref`` is about a third of jsonschema's time on large
    groups; the files keep their references because they are meant to be read."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def reaches(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(_refs(defs[start]))
        while todo:
            name = todo.pop()
            if name not in seen and name in defs:
                seen.add(name)
                todo.extend(_refs(defs[name]))
        return seen

    recursive = {name for name in defs if name in reaches(name)}

    def inline(value: Any) -> Any:
        if isinstance(value, dict):
            target = value.get("$ref")
            if (len(value) == 1 and isinstance(target, str) and target.startswith(_LOCAL)
                    and target.removeprefix(_LOCAL) not in recursive):
                return inline(defs[target.removeprefix(_LOCAL)])
            return {key: inline(item) for key, item in value.items()}
        if isinstance(value, list):
            return [inline(item) for item in value]
        return value

    result: dict[str, Any] = inline(schema)
    return result


@functools.cache
def _compiled(kind: str) -> Draft202012Validator:
    return Draft202012Validator(_inlined(_load(kind)))


@functools.cache
def _fast(kind: str) -> Callable[[Any], Any]:
    # fastjsonschema compiles the schema to Python code: about six times faster than
    # jsonschema on a 5,000-transfer workflow (measured: 0.05 s against 0.28 s). It speaks
    # draft-07, which holds every keyword these schemas use, so the same schema is compiled
    # under that name. It only says yes or no: jsonschema explains a no. The schema keeps its
    # $refs here: inlined, the generated code is one huge function, and each rejected oneOf
    # branch formats its exception from that function's locals() (measured eight times slower).
    schema = copy.deepcopy(_load(kind))
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    compiled: Callable[[Any], Any] = fastjsonschema.compile(schema)
    return compiled


def conforms(kind: str, body: Any) -> bool:
    """Whether ``body`` satisfies ``kind``'s schema (the fast check; use
    :func:`validator_for` to learn why not)."""
    try:
        _fast(canonical_kind(kind))(body)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def validator_for(kind: str) -> Draft202012Validator:
    """A validator for ``kind``'s schema, compiled once per process and shared."""
    return _compiled(canonical_kind(kind))
