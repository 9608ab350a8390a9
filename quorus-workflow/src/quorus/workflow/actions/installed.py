"""The actions a workflow may name: the built-in ones, then those hook plugins contribute
through ``quorus_workflow_actions``. A later contribution never replaces an earlier name;
clashes and contributions that are not callable are reported, not raised."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

import pluggy
from quorus.core.hooks import plugin_manager
from quorus.workflow.actions.base import WorkflowAction
from quorus.workflow.actions.runner import BUILTIN_ACTIONS


@dataclass(frozen=True, slots=True)
class InstalledActions:
    """Actions by name, and what was wrong with the contributions left out."""

    actions: Mapping[str, WorkflowAction]
    problems: tuple[str, ...] = ()


def merge_actions(contributions: Iterable[object]) -> InstalledActions:
    """The built-in actions plus every contribution (each a mapping of name → action), in
    order; the first action under a name wins."""
    actions: dict[str, WorkflowAction] = dict(BUILTIN_ACTIONS)
    problems: list[str] = []
    for contribution in contributions:
        if not isinstance(contribution, Mapping):
            problems.append(f"a quorus_workflow_actions hook returned "
                            f"{type(contribution).__name__}, not a mapping of name to action")
            continue
        for name, action in contribution.items():
            if not isinstance(name, str) or not callable(action):
                problems.append(f"workflow action {name!r} is {action!r}: expected a name and "
                                "an async callable (spec, summary, context)")
            elif name not in actions:
                actions[name] = cast(WorkflowAction, action)
            elif actions[name] is not action:
                problems.append(f"workflow action {name!r} is contributed more than once; "
                                f"keeping {actions[name]!r}, ignoring {action!r}")
    return InstalledActions(MappingProxyType(actions), tuple(problems))


def installed_actions(pm: pluggy.PluginManager | None = None) -> InstalledActions:
    """The actions of the built-ins and of the installed hook plugins (``pm``, by default
    the process-wide plugin manager)."""
    manager = pm if pm is not None else plugin_manager()
    return merge_actions(manager.hook.quorus_workflow_actions())


__all__ = ["InstalledActions", "installed_actions", "merge_actions"]
