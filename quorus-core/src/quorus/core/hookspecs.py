"""Every pluggy hook Quorus calls, in one place, grouped by phase.

Plugins implement these with ``@quorus.core.hookimpl`` and register the module or object in
the ``quorus.plugins`` entry-point group. Built-in features use the same hooks. Hooks are
called synchronously from the event loop: an implementation must return quickly and must not
block (hand slow work to a thread or a queue of its own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    from quorus.core.controller.extension import ControllerExtension
    from quorus.core.controller.state import StateModule
    from quorus.core.engine.model import TransferProgress, TransferRequest, TransferResult
    from quorus.core.errors import TransferError

hookspec = pluggy.HookspecMarker("quorus")

# --- Transfer lifecycle -------------------------------------------------------------------


@hookspec
def quorus_transfer_started(request: TransferRequest, attempt: int, offset: int) -> None:
    """A transfer attempt began. ``offset`` > 0 means it resumes a partial file."""


@hookspec
def quorus_transfer_progress(request: TransferRequest, progress: TransferProgress) -> None:
    """Progress of a running transfer: bytes, total, smoothed rate and ETA.

    Called at most a few times per second per transfer.
    """


@hookspec
def quorus_transfer_retrying(
    request: TransferRequest, attempt: int, error: TransferError, delay: float
) -> None:
    """Attempt ``attempt`` failed with a retryable ``error``; the next starts in ``delay`` s."""


@hookspec
def quorus_transfer_finished(request: TransferRequest, result: TransferResult) -> None:
    """A transfer ended: ``result.status`` is ``completed``, ``skipped``, ``failed`` or
    ``cancelled``."""


# --- Metrics ------------------------------------------------------------------------------


@hookspec
def quorus_metric(name: str, kind: str, value: float, labels: Mapping[str, str]) -> None:
    """A measurement: ``kind`` is ``counter`` (add ``value``), ``gauge`` (set ``value``) or
    ``histogram`` (observe ``value``). Names are dotted, e.g. ``transfer.bytes``."""


# --- Controller state -----------------------------------------------------------------------


@hookspec
def quorus_controller_state_modules() -> Sequence[StateModule]:
    """New :class:`~quorus.core.controller.state.StateModule` instances to add to a controller's
    replicated state machine (their own commands and snapshot section). Called once for each
    state machine built, so return fresh objects each time."""
    raise NotImplementedError  # a specification: pluggy calls the implementations


@hookspec
def quorus_controller_extensions() -> Sequence[ControllerExtension]:
    """New :class:`~quorus.core.controller.extension.ControllerExtension` instances for a
    controller process: REST routes of their own, and a task the controller runs only while
    it leads (cancelled when it stops leading). Called once per controller process."""
    raise NotImplementedError  # a specification: pluggy calls the implementations


# --- Command line -----------------------------------------------------------------------------


@hookspec
def quorus_cli_commands() -> Sequence[click.Command]:
    """Extra sub-commands (or command groups) of the ``quorus`` command line. Their names must
    not clash with the built-in ones (``transfer``, ``plugins``, ``cluster``, ``agents``,
    ``jobs``) or with another plugin's; a clash is reported and the later one is left out."""
    raise NotImplementedError  # a specification: pluggy calls the implementations


# --- Workflows ----------------------------------------------------------------------------------


@hookspec
def quorus_workflow_actions() -> Mapping[str, object]:
    """Named ``onSuccess``/``onFailure`` workflow actions: action name (``notify``, ``cleanup``,
    ...) to an async callable ``(spec, summary, context) -> ActionOutcome`` as defined by
    ``quorus.workflow.actions.WorkflowAction``. Later registrations do not replace earlier
    names; a clash is reported."""
    raise NotImplementedError  # a specification: pluggy calls the implementations
