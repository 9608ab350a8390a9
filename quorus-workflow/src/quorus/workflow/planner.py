"""The execution plan of a workflow: its dependency graph checked and put in order.

Transfers depend on transfers of their own group (``dependsOn``), and groups on groups; a
transfer of a group that depends on group A waits for all of A. A ``sequential`` group also
orders its transfers one after another (dependencies first, then as written). Missing names,
self-dependencies and cycles are reported with every name involved, and each step gets a level:
the length of the longest chain of steps before it. Work is linear in steps and edges, so a
5,000-transfer workflow plans in milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from quorus.workflow.documents import DefinitionError, Issue
from quorus.workflow.model import GroupDefinition, Origin, TransferStep, WorkflowDefinition


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A step in plan order. ``after`` holds the ids of the steps of its own group it waits
    for (declared, plus the previous one in a sequential group); ``index`` is its position."""

    step: TransferStep
    index: int
    level: int
    after: tuple[str, ...]

    @property
    def step_id(self) -> str:
        return self.step.step_id

    @property
    def group(self) -> str:
        return self.step.group


@dataclass(frozen=True, slots=True)
class Plan:
    """Steps in an order that respects every dependency, with group order and levels."""

    workflow: WorkflowDefinition
    steps: tuple[PlannedStep, ...]
    group_order: tuple[str, ...]
    group_after: Mapping[str, tuple[str, ...]]

    @property
    def levels(self) -> list[list[PlannedStep]]:
        """Steps by level: everything in one level could run at the same time."""
        levels: list[list[PlannedStep]] = []
        for planned in self.steps:
            while len(levels) <= planned.level:
                levels.append([])
            levels[planned.level].append(planned)
        return levels

    def by_id(self) -> dict[str, PlannedStep]:
        return {p.step_id: p for p in self.steps}

    def to_json(self) -> dict[str, object]:
        return {
            "workflow": self.workflow.name,
            "groups": [{"name": g, "after": list(self.group_after[g])} for g in self.group_order],
            "levels": [[p.step_id for p in level] for level in self.levels],
        }


def plan(workflow: WorkflowDefinition) -> Plan:
    """The plan of ``workflow``; :class:`DefinitionError` lists every dependency problem."""
    issues: list[Issue] = []
    groups = {g.name: g for g in workflow.groups}
    group_after = {g.name: _checked(g.name, g.depends_on, groups, "group", g.origin, issues)
                   for g in workflow.groups}
    group_order = _order(
        [g.name for g in workflow.groups], group_after, "groups", workflow.origin, issues)
    step_after: dict[str, tuple[str, ...]] = {}
    step_orders: dict[str, list[str]] = {}
    for group in workflow.groups:
        names = {t.name: t for t in group.transfers}
        after = {t.name: _checked(t.name, t.depends_on, names, "transfer", t.origin, issues)
                 for t in group.transfers}
        order = _order([t.name for t in group.transfers], after,
                       f"transfers of group {group.name!r}", group.origin, issues)
        if group.strategy == "sequential" and order:
            for previous, current in itertools.pairwise(order):
                if previous not in after[current]:
                    after[current] = (*after[current], previous)
        step_orders[group.name] = order
        for name, deps in after.items():
            step_after[f"{group.name}/{name}"] = tuple(f"{group.name}/{d}" for d in deps)
    if issues:
        raise DefinitionError(tuple(sorted(issues)))

    levels: dict[str, int] = {}
    group_end: dict[str, int] = {}
    planned: list[PlannedStep] = []
    for group_name in group_order:
        group = groups[group_name]
        start = max((group_end[d] + 1 for d in group_after[group_name]), default=0)
        end = start - 1
        by_name = {t.name: t for t in group.transfers}
        for name in step_orders[group_name]:
            step = by_name[name]
            deps = step_after[step.step_id]
            level = max([start, *(levels[d] + 1 for d in deps)])
            levels[step.step_id] = level
            end = max(end, level)
            planned.append(PlannedStep(step, len(planned), level, deps))
        group_end[group_name] = max(end, start - 1) if group.transfers else start - 1
    return Plan(workflow, tuple(planned), tuple(group_order), group_after)


def _checked(name: str, depends_on: Sequence[str], known: Mapping[str, object], what: str,
             origin: Origin, issues: list[Issue]) -> tuple[str, ...]:
    result: list[str] = []
    for dep in depends_on:
        if dep == name:
            issues.append(_issue(origin, f"{what} {name!r} depends on itself"))
        elif dep not in known:
            hint = _close(dep, known)
            issues.append(_issue(origin, f"{what} {name!r} depends on {dep!r}, which is not "
                                         f"defined here", hint))
        elif dep not in result:
            result.append(dep)
    return tuple(result)


def _order(names: Sequence[str], after: Mapping[str, Sequence[str]], what: str, origin: Origin,
           issues: list[Issue]) -> list[str]:
    """Kahn's algorithm, ties broken by position as written; a cycle becomes an issue."""
    position = {n: i for i, n in enumerate(names)}
    waiting = {n: len(after.get(n, ())) for n in names}
    dependents: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for d in after.get(n, ()):
            dependents[d].append(n)
    ready = [(position[n], n) for n in names if waiting[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for m in dependents[n]:
            waiting[m] -= 1
            if waiting[m] == 0:
                heapq.heappush(ready, (position[m], m))
    if len(order) < len(names):
        cycle = _find_cycle([n for n in names if waiting[n] > 0], after)
        issues.append(_issue(origin, f"dependency cycle among {what}: {' → '.join(cycle)}"))
    return order


def _find_cycle(stuck: Iterable[str], after: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle among the nodes Kahn's algorithm could not order, named in dependency
    order (``a → b → a`` means a depends on b, which depends on a)."""
    stuck_set = set(stuck)
    start = min(stuck_set)
    seen: dict[str, int] = {}
    path: list[str] = []
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        # Every stuck node waits on at least one other stuck node.
        node = next(d for d in after[node] if d in stuck_set)
    return [*path[seen[node]:], node]


def _issue(origin: Origin, message: str, hint: str | None = None) -> Issue:
    return Issue(origin.file, origin.line, origin.column, origin.path, message, hint)


def _close(name: str, choices: Iterable[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(choices), n=1)
    # The hint is the bare name: Issue adds "did you mean ...?" when it is shown.
    return found[0] if found else None


__all__ = ["GroupDefinition", "Plan", "PlannedStep", "plan"]
