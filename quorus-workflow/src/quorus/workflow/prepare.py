"""From documents to a checked plan in one call: schema validation, normalisation, reference
and condition checks, dependency planning — every problem of every stage that can run,
reported together as one :class:`~quorus.workflow.documents.DefinitionError`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from quorus.workflow.checks import check_references
from quorus.workflow.documents import DefinitionError, Document, Issue, load_paths
from quorus.workflow.model import Definitions, WorkflowDefinition, build_definitions
from quorus.workflow.planner import Plan, plan
from quorus.workflow.validation import validate_documents


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything the files define, the workflow chosen to run, and its plan."""

    definitions: Definitions
    workflow: WorkflowDefinition
    plan: Plan


def prepare(documents: Sequence[Document], *, name: str | None = None,
            sets: Iterable[str] = ()) -> Prepared:
    """Check ``documents`` and plan the workflow ``name`` (or the only one)."""
    issues: list[Issue] = list(validate_documents(documents))
    if issues:
        raise DefinitionError(tuple(sorted(issues)))
    issues.extend(check_references(documents, sets))
    definitions: Definitions | None = None
    try:
        definitions = build_definitions(documents)
    except DefinitionError as exc:
        issues.extend(exc.issues)
    if definitions is None:
        raise DefinitionError(tuple(sorted(issues)))
    workflow = definitions.select(name)
    try:
        planned = plan(workflow)
    except DefinitionError as exc:
        # Dependency problems are reported with the reference problems, not after them.
        raise DefinitionError(tuple(sorted((*issues, *exc.issues)))) from None
    if issues:
        raise DefinitionError(tuple(sorted(issues)))
    return Prepared(definitions, workflow, planned)


def prepare_paths(paths: Iterable[Path | str], *, name: str | None = None,
                  sets: Iterable[str] = ()) -> Prepared:
    """:func:`prepare` for files and directories of YAML."""
    return prepare(load_paths(paths), name=name, sets=sets)


__all__ = ["Prepared", "prepare", "prepare_paths"]
