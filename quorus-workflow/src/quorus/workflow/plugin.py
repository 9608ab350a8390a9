"""The workflow package's contributions to Quorus's hooks: the ``quorus workflow`` commands,
the built-in post-execution actions, and — on controllers — the replicated state module and
the leader's workflow driver with its REST routes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from quorus.core.hooks import hookimpl


@hookimpl
def quorus_cli_commands() -> Sequence[Any]:
    from quorus.workflow.cli import workflow

    return [workflow]


@hookimpl
def quorus_workflow_actions() -> Mapping[str, object]:
    from quorus.workflow.actions import BUILTIN_ACTIONS

    return dict(BUILTIN_ACTIONS)


def installed_actions() -> Mapping[str, object]:
    """Every workflow action the built-ins and installed plugins contribute, by name; clashes
    and malformed contributions are logged (see ``quorus.workflow.actions.installed_actions``)."""
    import logging

    from quorus.workflow.actions import installed_actions as collect

    found = collect()
    for problem in found.problems:
        logging.getLogger(__name__).warning("%s", problem)
    return found.actions


@hookimpl
def quorus_controller_state_modules() -> Sequence[Any]:
    from quorus.workflow.controller import WorkflowStateModule

    return [WorkflowStateModule()]


@hookimpl
def quorus_controller_extensions() -> Sequence[Any]:
    from quorus.workflow.controller import WorkflowExtension

    return [WorkflowExtension()]


