"""From documents to a checked plan in one call: schema validation, normalisation, reference
and condition checks, dependency planning — every problem of every stage that can run,
reported together as one :class:`~quorus.workflow.documents.DefinitionError`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quorus.workflow.binding import step_templates
from quorus.workflow.checks import RESULT_TYPES, check_references
from quorus.workflow.documents import DefinitionError, Document, Issue, read_paths
from quorus.workflow.expr import ExpressionError, parse_template
from quorus.workflow.model import Definitions, Origin, WorkflowDefinition, build_definitions
from quorus.workflow.planner import Plan, plan
from quorus.workflow.validation import validate_documents

RESULT_ROOTS = {name.split(".")[0] for name in RESULT_TYPES}


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything the files define, the workflow chosen to run, and its plan."""

    definitions: Definitions
    workflow: WorkflowDefinition
    plan: Plan


def prepare(documents: Sequence[Document], *, name: str | None = None,
            sets: Iterable[str] = (), load_issues: Sequence[Issue] = ()) -> Prepared:
    """Check ``documents`` and plan the workflow ``name`` (or the only one)."""
    definitions, issues = _checked(documents, sets, load_issues)
    workflow = definitions.select(name)
    planned = _plan(workflow, issues)
    return Prepared(definitions, workflow, planned)


def prepare_each(documents: Sequence[Document], *, sets: Iterable[str] = (),
                 load_issues: Sequence[Issue] = ()) -> list[Prepared]:
    """Check ``documents`` and plan every workflow, group and transfer they define (what
    ``quorus workflow validate`` does with a folder of definitions)."""
    definitions, issues = _checked(documents, sets, load_issues)
    prepared: list[Prepared] = []
    problems: list[Issue] = []
    for workflow in definitions.workflows.values():
        try:
            prepared.append(Prepared(definitions, workflow, _plan(workflow, issues)))
        except DefinitionError as exc:
            problems.extend(exc.issues)
    _raise(problems)
    return prepared


def prepare_paths(paths: Iterable[Path | str], *, name: str | None = None,
                  sets: Iterable[str] = ()) -> Prepared:
    """:func:`prepare` for files and directories of YAML (a file that cannot be read or
    parsed is reported together with the other files' problems)."""
    documents, issues = read_paths(paths)
    return prepare(documents, name=name, sets=sets, load_issues=issues)


def _checked(documents: Sequence[Document], sets: Iterable[str],
             load_issues: Sequence[Issue]) -> tuple[Definitions, list[Issue]]:
    issues: list[Issue] = [*load_issues, *validate_documents(documents)]
    _raise(issues)
    issues.extend(check_references(documents, sets))
    try:
        definitions = build_definitions(documents)
    except DefinitionError as exc:
        _raise([*issues, *exc.issues])
        raise
    return definitions, issues


def _plan(workflow: WorkflowDefinition, issues: list[Issue]) -> Plan:
    try:
        planned = plan(workflow)
    except DefinitionError as exc:
        # Dependency problems are reported with the reference problems, not after them.
        _raise([*issues, *exc.issues])
        raise
    _raise([*issues, *check_result_order(planned)])
    return planned


def _raise(issues: Sequence[Issue]) -> None:
    if issues:
        # A TransferGroup used by a workflow is checked as itself and as part of the workflow.
        raise DefinitionError(tuple(sorted(dict.fromkeys(issues))))


def check_result_order(planned: Plan) -> list[Issue]:
    """Results read before they can exist: a transfer's condition or locations naming the
    result of a transfer or group it does not (even indirectly) wait for."""
    workflow = planned.workflow
    by_id = planned.by_id()
    group_of: dict[str, list[str]] = {}
    for step in workflow.steps:
        group_of.setdefault(step.name, []).append(step.group)
    after = {k: v.after for k, v in by_id.items()}
    issues: list[Issue] = []
    for group in workflow.groups:
        earlier_groups = _closure(group.name, planned.group_after)
        issues.extend(_order_issues(group.condition, group.origin,
                                    f"group {group.name!r} condition", group.name, None,
                                    earlier_groups, set(), group_of))
        for step in group.transfers:
            texts = [(where, text) for where, value in step_templates(step).items()
                     for text in _strings(value) if "${" in text]
            if not texts:
                continue
            # Only steps that hold references pay for the walk back through their waits.
            earlier = _closure(step.step_id, after)
            for where, text in texts:
                issues.extend(_order_issues(text, step.origin, f"{where} of {step.step_id}",
                                            group.name, step.step_id, earlier_groups,
                                            earlier, group_of))
    return issues


def _order_issues(text: str | None, origin: Origin, where: str, group: str, step: str | None,
                  earlier_groups: set[str], earlier_steps: set[str],
                  group_of: dict[str, list[str]]) -> list[Issue]:
    if not text or "${" not in text:
        return []
    try:
        references = parse_template(text).references
    except ExpressionError:
        return []  # reported by the reference checks
    issues: list[Issue] = []
    for ref in references:
        parts = ref.segments
        if len(parts) < 2 or parts[1] not in RESULT_ROOTS:
            continue
        root = parts[0]
        groups = group_of.get(root, [])
        if group in groups:
            target = f"{group}/{root}"
            if target != step and target not in earlier_steps:
                issues.append(_issue(origin, f"{where} reads {ref}, but {root!r} is not among "
                                             f"the transfers it waits for: add it to dependsOn"))
        elif groups:
            if not any(g in earlier_groups for g in groups):
                issues.append(_issue(origin, f"{where} reads {ref}, but group {groups[0]!r} of "
                                             f"{root!r} is not among the groups {group!r} "
                                             f"waits for: add it to the group's dependsOn"))
        elif root in earlier_groups or root == group:
            continue
        elif root in {g for gs in group_of.values() for g in gs}:
            issues.append(_issue(origin, f"{where} reads {ref}, but group {group!r} does not "
                                         f"wait for group {root!r}: add it to dependsOn"))
    return issues


def _closure(start: str, after: Mapping[str, Sequence[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(after.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(after.get(node, ()))
    return seen


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _issue(origin: Origin, message: str) -> Issue:
    return Issue(origin.file, origin.line, origin.column, origin.path, message)


__all__ = ["Prepared", "check_result_order", "prepare", "prepare_each", "prepare_paths"]
