"""The actions of an execution that ended, for both runners: each group's ``onSuccess`` or
``onFailure`` (as the group succeeded or not; groups that never ran have none), then the
workflow's, every spec bound first (``${error.message}``, results) and run in order. A spec
that cannot be bound becomes a failed outcome; the next one still runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from quorus.core.errors import QuorusError
from quorus.workflow.actions import ActionContext, WorkflowAction, run_actions
from quorus.workflow.binding import Binder
from quorus.workflow.execution import Execution
from quorus.workflow.model import GroupDefinition
from quorus.workflow.summary import ActionOutcome, ExecutionSummary


async def run_after(execution: Execution, binder: Binder, summary: ExecutionSummary,
                    context: ActionContext, actions: Mapping[str, WorkflowAction]
                    ) -> tuple[ActionOutcome, ...]:
    """Run the actions ``execution``'s outcome calls for (see the module docstring)."""
    workflow = execution.plan.workflow
    outcomes: list[ActionOutcome] = []
    for group in workflow.groups:
        succeeded = execution.group_succeeded(group.name)
        if succeeded is not None:
            specs = group.on_success if succeeded else group.on_failure
            outcomes += await _run(specs, group, execution, binder, summary, context, actions)
    specs = workflow.on_success if summary.status.value == "completed" else workflow.on_failure
    outcomes += await _run(specs, None, execution, binder, summary, context, actions)
    return tuple(outcomes)


async def _run(specs: Sequence[Mapping[str, Any]], group: GroupDefinition | None,
               execution: Execution, binder: Binder, summary: ExecutionSummary,
               context: ActionContext, actions: Mapping[str, WorkflowAction]
               ) -> list[ActionOutcome]:
    outcomes: list[ActionOutcome] = []
    for spec in specs:
        try:
            bound = binder.render(dict(spec), group=group, execution=execution,
                                  error=summary.error)
        except QuorusError as exc:
            outcomes.append(ActionOutcome(
                str(spec.get("action", "?")), str(spec.get("target", "")), False,
                f"cannot bind the action: {getattr(exc, 'message', None) or exc}"))
            continue
        outcomes += await run_actions([bound], summary, context, actions)
    return outcomes


__all__ = ["run_after"]
