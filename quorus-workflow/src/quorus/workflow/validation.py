"""Checks of loaded definitions against their kind's schema and against each other, reported as
:class:`Issue`s at the line and column of the offending text with "did you mean" hints.

Every problem of every document is reported at once; nothing here stops at the first."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError, best_match
from quorus.workflow.documents import (
    DefinitionError,
    DocPath,
    Document,
    Issue,
    format_path,
    read_paths,
)
from quorus.workflow.schema import KINDS, canonical_kind, conforms, validator_for

__all__ = ["API_VERSION", "load_and_validate", "validate_documents", "validate_or_raise"]

API_VERSION = "quorus.dev/v1"

# Validators whose failure is best explained by the described shape of the value ("expected a
# duration such as 300s ..."), when the schema that failed describes one.
_SHAPE_VALIDATORS = frozenset({"type", "pattern", "minimum", "maximum"})


def _closest(word: str, choices: Iterable[str]) -> str | None:
    options = list(choices)
    for option in options:
        if option.casefold() == word.casefold():
            return option
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return found[0] if found else None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "mapping"


def _describe(value: Any) -> str:
    """``string '3x'``, ``integer 640``, ``boolean true``, ``null``, ``list``, ``mapping``."""
    name = _type_name(value)
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"string {shown!r}"
    if isinstance(value, int | float):
        return f"{name} {value!r}"
    return name


_TYPE_WORDS = {"object": "mapping", "array": "list"}


def _either(words: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _describe(value)


def _schema_issues(document: Document, error: ValidationError) -> Iterator[Issue]:
    """The issues one schema error stands for, at the positions of the text concerned."""
    path: DocPath = tuple(error.absolute_path)
    instance = error.instance
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.validator_value

    if validator in ("oneOf", "anyOf"):
        branches = value if isinstance(value, list) else []
        fields = [b["required"][0] for b in branches if isinstance(b, dict)
                  and set(b) == {"required"} and len(b["required"]) == 1]
        if branches and len(fields) == len(branches):
            # The "exactly one of these fields" shape (uri or path; spec or ref).
            if not isinstance(instance, dict):
                return  # the type error beside this one says what is wrong
            given = [name for name in fields if name in instance]
            if given:
                yield document.issue(path, f"has both {' and '.join(map(repr, given))}: "
                                           "give only one")
            else:
                yield document.issue(path, f"needs {_either([repr(f) for f in fields])}")
            return
        if error.context:
            # Branches that accepted the value's type failed on something real (a pattern,
            # a field); when every branch refused the type, say which types would do.
            relevant = [sub for sub in error.context
                        if sub.validator != "type" or len(sub.absolute_path) > len(path)]
            if relevant:
                found = best_match(relevant)
                if found is not None:
                    yield from _schema_issues(document, found)
                    return
            else:
                wanted: list[str] = []
                for sub in error.context:
                    types = sub.validator_value
                    for name in types if isinstance(types, list) else [types]:
                        word = _TYPE_WORDS.get(str(name), str(name))
                        if word not in wanted:
                            wanted.append(word)
                yield document.issue(path, f"expected {_either(wanted)}, "
                                           f"got {_describe(instance)}")
                return
    if validator == "additionalProperties" and isinstance(instance, dict):
        allowed = schema.get("properties", {})
        for key in instance:
            if key in allowed or (not path and key == "status"):
                continue  # a top-level status has its own, clearer issue
            hint = _closest(key, allowed)
            message = f"unknown field {key!r}"
            if hint is None and allowed:
                message += f"; known fields here: {', '.join(allowed)}"
            yield document.issue((*path, key), message, hint)
        return
    if validator == "enum" and schema.get("type") == "string" and not isinstance(instance, str):
        return  # the type error beside this one says it
    if validator == "uniqueItems" and isinstance(instance, list):
        for index, item in enumerate(instance):
            if item in instance[:index]:
                yield document.issue((*path, index), f"lists {_describe(item)} more than once")
        return
    yield document.issue(path, *_message(error, schema, instance, value))


def _message(error: ValidationError, schema: dict[str, Any], instance: Any,
             value: Any) -> tuple[str, str | None]:
    """(message, hint) for a schema error about a single value."""
    validator = error.validator
    description = schema.get("description")
    scalar_schema = schema.get("type") not in ("object", "array")
    if validator in _SHAPE_VALIDATORS and description and scalar_schema:
        return f"expected {description}, got {_describe(instance)}", None
    if validator == "type":
        wanted = value if isinstance(value, list) else [value]
        words = [_TYPE_WORDS.get(str(word), str(word)) for word in wanted]
        return f"expected {_either(words)}, got {_describe(instance)}", None
    if validator == "required":
        missing = next((name for name in value if name not in instance), value[0])
        message = f"missing required field {missing!r}"
        if "then" in error.schema_path and description:
            message += f" ({description})"
        return message, None
    if validator == "enum":
        choices = ", ".join(str(choice) for choice in value)
        hint = _closest(instance, map(str, value)) if isinstance(instance, str) else None
        return f"expected one of {choices}, got {_describe(instance)}", hint
    if validator == "const":
        return f"expected {value!r}, got {_describe(instance)}", None
    if validator == "minimum":
        return f"must be at least {value}, got {instance!r}", None
    if validator == "maximum":
        return f"must be at most {value}, got {instance!r}", None
    if validator == "minItems":
        return f"needs at least {value} item{'' if value == 1 else 's'}", None
    if validator == "minLength":
        return "must not be empty", None
    if validator == "pattern":
        return f"{instance!r} does not match the pattern {value}", None
    return error.message, None


def _header_issues(document: Document) -> Iterator[Issue]:
    body = document.body
    if "apiVersion" not in body:
        yield document.issue((), f"missing apiVersion: add 'apiVersion: {API_VERSION}'")
    elif body["apiVersion"] != API_VERSION:
        given = body["apiVersion"]
        hint = _closest(given, [API_VERSION]) if isinstance(given, str) else None
        yield document.issue(("apiVersion",), f"unknown apiVersion {_shown(given)}: "
                                              f"definitions use {API_VERSION}", hint)
    if "kind" not in body:
        yield document.issue((), f"missing kind: one of {', '.join(KINDS)}")
    elif body["kind"] not in KINDS:
        given = body["kind"]
        hint = None
        if isinstance(given, str):
            try:
                hint = canonical_kind(given)
            except KeyError:
                hint = _closest(given, KINDS)
        yield document.issue(("kind",), f"unknown kind {_shown(given)}: use one of "
                                        f"{', '.join(KINDS)}", hint)
    if "status" in body:
        yield document.issue(("status",), "status is written by Quorus, not by users: "
                                          "remove it from the definition")


def _named_items(document: Document, path: DocPath, what: str) -> Iterator[Issue]:
    """Duplicate names among the items of the list at ``path``, and items that list their
    own name in ``dependsOn``."""
    items: Any = document.body
    for part in path:
        if isinstance(items, dict) and isinstance(part, str):
            items = items.get(part)
        elif isinstance(items, list) and isinstance(part, int) and part < len(items):
            items = items[part]
        else:
            return
    if not isinstance(items, list):
        return
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            earlier = document.position((*path, first[name], "name"))
            yield document.issue((*path, index, "name"),
                                 f"duplicate {what} name {name!r}: also used by "
                                 f"{format_path((*path, first[name]))} at line {earlier.line}")
        else:
            first[name] = index
        depends = item.get("dependsOn")
        if isinstance(depends, list) and name in depends:
            yield document.issue((*path, index, "dependsOn", depends.index(name)),
                                 f"{what} {name!r} depends on itself")


def _name_issues(document: Document) -> Iterator[Issue]:
    if document.kind == "TransferGroup":
        yield from _named_items(document, ("spec", "transfers"), "transfer")
    elif document.kind == "TransferWorkflow":
        spec = document.body.get("spec")
        groups = spec.get("groups") if isinstance(spec, dict) else None
        yield from _named_items(document, ("spec", "groups"), "group")
        for index in range(len(groups) if isinstance(groups, list) else 0):
            yield from _named_items(
                document, ("spec", "groups", index, "transferGroup", "spec", "transfers"),
                "transfer")
        yield from _named_items(document, ("spec", "triggers"), "trigger")
        yield from _named_items(document, ("spec", "validation"), "check")


def _duplicate_definitions(documents: Sequence[Document]) -> Iterator[Issue]:
    first: dict[tuple[str, str], Document] = {}
    for document in documents:
        kind, name = document.kind, document.name
        if kind not in KINDS or name is None:
            continue
        earlier = first.setdefault((kind, name), document)
        if earlier is not document:
            where = earlier.position(("metadata", "name"))
            yield document.issue(("metadata", "name"),
                                 f"{kind} {name!r} is defined twice: here and at "
                                 f"{earlier.file}:{where.line}:{where.column}")


def _text(mapping: dict[str, Any], key: str, default: str | None) -> str | None:
    """``mapping[key]`` when it is text, else ``default`` (a value of the wrong type is the
    schema's to report)."""
    value = mapping.get(key)
    return value if isinstance(value, str) else default


def _trigger_issues(document: Document, flagged: set[str]) -> Iterator[Issue]:
    """Triggers that fit the schema but cannot be used (a schedule with minute 99, a time zone
    that does not exist, a relative flag file path), at the field concerned, by the same check
    registering makes. Fields the schema refused (``flagged`` paths) are not judged again."""
    spec = document.body.get("spec")
    triggers = spec.get("triggers") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or not isinstance(triggers, list) or not triggers:
        return
    from quorus.workflow.model import Trigger
    from quorus.workflow.triggers import trigger_problems

    zone = _text(spec, "timezone", "UTC")
    for index, item in enumerate(triggers):
        name = item.get("name") if isinstance(item, dict) else None
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(name, str) or kind not in ("cron", "fileSystem"):
            continue  # the schema says what is wrong
        own: DocPath = ("spec", "triggers", index)
        # A trigger without a time zone takes the workflow's.
        zone_at = (*own, "timezone") if "timezone" in item else ("spec", "timezone")
        trigger = Trigger(name, kind, schedule=_text(item, "schedule", None),
                          timezone=_text(item, "timezone", zone) or "UTC",
                          path=_text(item, "path", None),
                          action=_text(item, "action", "create") or "create")
        for field, message in trigger_problems(trigger):
            if field != "timezone" and field not in item:
                continue  # a required field missing: the schema says so
            where = zone_at if field == "timezone" else (*own, field)
            if format_path(where) not in flagged:
                yield document.issue(where, message)


def _document_issues(document: Document) -> Iterator[Issue]:
    yield from _header_issues(document)
    flagged: set[str] = set()
    if document.kind in KINDS and not conforms(document.kind, document.body):
        for error in validator_for(document.kind).iter_errors(document.body):
            if tuple(error.absolute_path) in (("apiVersion",), ("kind",)):
                continue  # reported above, with a hint
            for issue in _schema_issues(document, error):
                flagged.add(issue.path)
                yield issue
    yield from _name_issues(document)
    if document.kind == "TransferWorkflow":
        yield from _trigger_issues(document, flagged)


def validate_documents(documents: Sequence[Document]) -> list[Issue]:
    """Every problem of ``documents``, sorted by file, line and column; empty if none."""
    issues: list[Issue] = []
    for document in documents:
        issues.extend(_document_issues(document))
    issues.extend(_duplicate_definitions(documents))
    return sorted(dict.fromkeys(issues))


def validate_or_raise(documents: Sequence[Document]) -> None:
    """Raises :class:`DefinitionError` with every problem of ``documents``, if any."""
    issues = validate_documents(documents)
    if issues:
        raise DefinitionError(issues)


def load_and_validate(paths: Iterable[Path | str]) -> list[Document]:
    """Reads and checks files and directories together: a file that cannot be read does not
    hide the problems of the others. Raises :class:`DefinitionError` with all of them."""
    documents, issues = read_paths(paths)
    issues.extend(validate_documents(documents))
    if issues:
        raise DefinitionError(issues)
    return documents
