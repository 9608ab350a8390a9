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
