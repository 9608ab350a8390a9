"""Checks of the references and conditions a definition holds, before anything runs: malformed
``${...}`` and conditions, undefined variables ("did you mean"), results of transfers that do
not exist, and type errors a condition shows without running (``${a.bytes} > "x"``). Each
problem is an :class:`~quorus.workflow.documents.Issue` at the exact line and column."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from quorus.workflow.documents import Document, Issue
from quorus.workflow.expr import (
    ExpressionError,
    Reference,
    check_condition,
    parse_condition,
    parse_template,
)

RUNNABLE = ("Transfer", "TransferGroup", "TransferWorkflow")
#: Result fields and their types, for static checks of conditions.
RESULT_TYPES: Mapping[str, type] = {
    "success": bool, "status": str, "bytes": int, "duration": float, "attempts": int,
    "error": str, "sha256": str, "result.checksum": str, "result.bytes": int,
    "result.status": str,
}
_RESULT_ROOTS = {name.split(".")[0] for name in RESULT_TYPES}
Path = tuple[str | int, ...]


def check_references(documents: Sequence[Document], sets: Iterable[str] = ()) -> list[Issue]:
    """Every reference and condition problem in the runnable documents."""
    defined = set(sets)
    steps: set[str] = set()
    for doc in documents:
        if doc.kind not in RUNNABLE:
            continue
        defined.update(_variable_names(doc.body))
        steps.update(_step_names(doc))
    issues: list[Issue] = []
    for doc in documents:
        if doc.kind in RUNNABLE:
            issues.extend(_check_document(doc, defined, steps))
    return sorted(issues)


def _check_document(doc: Document, defined: set[str], steps: set[str]) -> Iterator[Issue]:
    for path, text in _strings(doc.body.get("spec") or {}, ("spec",)):
        try:
            template = parse_template(text)
        except ExpressionError as exc:
            yield _issue(doc, path, exc)
            continue
        for ref in template.references:
            problem = _reference_problem(ref, defined, steps)
            if problem is not None:
                yield _at(doc, path, *problem)
        if path and path[-1] == "condition":
            yield from _check_condition(doc, path, text, steps)


def _reference_problem(ref: Reference, defined: set[str],
                       steps: set[str]) -> tuple[str, str | None] | None:
    if ref.kind != "name":
        return None
    parts = ref.segments
    if len(parts) == 1:
        if ref.argument in defined:
            return None
        return (f"undefined variable {ref}: define it in variables or an environment, or "
                f"give it with --set {ref.argument}=VALUE", _close(ref.argument, defined))
    if parts[1] in _RESULT_ROOTS and parts[0] not in steps and parts[0] not in (
            "metadata", "tenant", "namespace", "workflow", "error") and ref.argument not in defined:
        return (f"{ref} refers to the result of {parts[0]!r}, but no transfer or group has "
                f"that name", _close(parts[0], steps))
    return None


def _check_condition(doc: Document, path: Path, text: str, steps: set[str]) -> Iterator[Issue]:
    try:
        condition = parse_condition(text)
    except ExpressionError as exc:
        yield _issue(doc, path, exc)
        return

    def types(ref: Reference) -> type | None:
        parts = ref.segments
        if len(parts) >= 2 and parts[0] in steps:
            return RESULT_TYPES.get(".".join(parts[1:]))
        return None

    for error in check_condition(condition, types):
        yield _issue(doc, path, error)


def _variable_names(body: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    spec = body.get("spec") or {}
    names.update(spec.get("variables") or {})
    for environment in (spec.get("environments") or {}).values():
        names.update(environment or {})
    for group in spec.get("groups") or ():
        names.update(group.get("variables") or {})
        inline = (group.get("transferGroup") or {}).get("spec") or {}
        names.update(inline.get("variables") or {})
    return names


def _step_names(doc: Document) -> set[str]:
    spec = doc.body.get("spec") or {}
    names = {str(doc.name)} if doc.name else set()
    for transfer in spec.get("transfers") or ():
        names.add(str(transfer.get("name")))
    for group in spec.get("groups") or ():
        names.add(str(group.get("name")))
        inline = (group.get("transferGroup") or {}).get("spec") or {}
        names.update(str(t.get("name")) for t in inline.get("transfers") or ())
    return names


def _strings(node: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*path, i))


def _issue(doc: Document, path: Path, exc: ExpressionError) -> Issue:
    position = doc.position(path)
    # A document knows where keys start, not where their values' text does (quotes, spacing),
    # so adding the offset inside the text to the key's column would point at the wrong place:
    # the issue is at the field, and the offset inside its text is said in words.
    inside = f" (at character {exc.column} of the text)" if exc.column is not None else ""
    return Issue(doc.file, position.line, position.column, _path_text(path),
                 exc.message + inside)


def _at(doc: Document, path: Path, message: str, hint: str | None) -> Issue:
    position = doc.position(path)
    return Issue(doc.file, position.line, position.column, _path_text(path), message, hint)


def _path_text(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _close(name: str, choices: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(name, sorted(choices), n=1)
    # The hint is the bare name: Issue adds "did you mean ...?" when it is shown.
    return found[0] if found else None


__all__ = ["RESULT_TYPES", "check_references"]
