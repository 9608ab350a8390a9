"""Running an execution's ``onSuccess``/``onFailure`` actions in order, each failure recorded
as a failed outcome without stopping the rest, and checking action specs before anything
runs."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from quorus.core.errors import QuorusError
from quorus.workflow.actions.base import (
    ActionContext,
    ActionError,
    ValidatingAction,
    WorkflowAction,
    parse_target,
    show_location,
)
from quorus.workflow.actions.cleanup import CleanupAction
from quorus.workflow.actions.email import EmailAction
from quorus.workflow.actions.notify import NotifyAction, show_target, target_scheme
from quorus.workflow.actions.rollback import RollbackAction
from quorus.workflow.summary import ActionOutcome, ExecutionSummary

log = logging.getLogger(__name__)

_email = EmailAction()
#: The actions this package provides, by name.
BUILTIN_ACTIONS: Mapping[str, WorkflowAction] = MappingProxyType({
    "notify": NotifyAction(_email),
    "email": _email,
    "cleanup": CleanupAction(),
    "rollback": RollbackAction(),
})


def _name(spec: Mapping[str, Any]) -> str:
    name = spec.get("action")
    return name if isinstance(name, str) else ""


def describe_target(spec: Mapping[str, Any]) -> str:
    """What an action works on, safe to show: URLs and URIs without credentials."""
    target = spec.get("target")
    if isinstance(target, str) and target:
        if target_scheme(target) in (None, "http", "https", "slack", "webhook", "email"):
            return show_target(target)
        try:
            return show_location(parse_target(target, _name(spec)))
        except ActionError:
            return "<unparseable target>"
    strategy = spec.get("strategy")
    if _name(spec) == "rollback":
        return str(strategy or "deletePartial")
    to = spec.get("to")
    if isinstance(to, str | list):
        return "email://" + (to if isinstance(to, str) else ",".join(map(str, to)))
    return ""


def _unknown(name: str, actions: Mapping[str, WorkflowAction]) -> str:
    installed = ", ".join(sorted(actions)) or "none"
    close = difflib.get_close_matches(name, list(actions), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown action {name!r}: {hint}installed actions are {installed}"


def validate_action(
    spec: object, actions: Mapping[str, WorkflowAction] = BUILTIN_ACTIONS
) -> list[str]:
    """Problems of one action spec that can be found before anything runs; values still
    holding ``${...}`` are checked only once bound."""
    if not isinstance(spec, Mapping):
        return [f"an action must be a mapping with an 'action' key, not {type(spec).__name__}"]
    name = spec.get("action")
    if not isinstance(name, str) or not name:
        return ["an action needs 'action': the name of the action "
                f"({', '.join(sorted(actions))})"]
    action = actions.get(name)
    if action is None:
        return [_unknown(name, actions)]
    if isinstance(action, ValidatingAction):
        return action.validate(spec)
    return []


async def run_actions(
    specs: Sequence[Mapping[str, Any]],
    summary: ExecutionSummary,
    context: ActionContext,
    actions: Mapping[str, WorkflowAction] = BUILTIN_ACTIONS,
) -> tuple[ActionOutcome, ...]:
    """Run ``specs`` in order and return one outcome each. A failing action (an exception,
    an error answer, a timeout) gives a failed outcome with the reason and the next one still
    runs; only cancellation propagates."""
    outcomes: list[ActionOutcome] = []
    for spec in specs:
        if not isinstance(spec, Mapping):
            outcomes.append(ActionOutcome("?", "", False, validate_action(spec)[0]))
            continue
        name = _name(spec)
        target = describe_target(spec)
        action = actions.get(name)
        if action is None:
            outcomes.append(ActionOutcome(name or "?", target, False, _unknown(name, actions)))
            continue
        try:
            outcome = await action(spec, summary, context)
        except ActionError as exc:
            outcome = ActionOutcome(name, target, False, str(exc))
        except QuorusError as exc:  # a protocol's or setting's own actionable message
            outcome = ActionOutcome(name, target, False, f"{name}: {exc}")
        except Exception as exc:  # any failure of one action must not stop the others
            log.warning("action %s (%s) of execution %s failed", name, target,
                        summary.execution_id, exc_info=True)
            outcome = ActionOutcome(name, target, False,
                                    f"{name} failed unexpectedly: {type(exc).__name__}: {exc}")
        if not isinstance(outcome, ActionOutcome):
            outcome = ActionOutcome(
                name, target, False,
                f"action {name!r} returned {type(outcome).__name__}, not an ActionOutcome")
        outcomes.append(outcome)
    return tuple(outcomes)


__all__ = ["BUILTIN_ACTIONS", "describe_target", "run_actions", "validate_action"]
