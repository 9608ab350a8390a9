"""The rules of the controller commands: recording where a controller added while serving
listens (its agent and HTTP addresses), and forgetting it once it left the quorum. Both
read only the command, so every controller reaches the same records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quorus.core.controller.change import Change, handles
from quorus.core.controller.commands import ForgetController, RecordController
from quorus.core.controller.results import Result
from quorus.core.controller.state import ControllerEndpoints

if TYPE_CHECKING:
    from quorus.core.controller.state import ControllerState


@handles(RecordController)
def _record(state: ControllerState, index: int, cmd: RecordController) -> Result:
    change = Change(state, index, cmd)
    endpoints = ControllerEndpoints(cmd.agents, cmd.http)
    if state.controllers.get(cmd.node_id) == endpoints:
        return change.result(duplicate=True)
    state.put_controller(cmd.node_id, endpoints)
    change.message = f"controller {cmd.node_id} recorded"
    return change.result()


@handles(ForgetController)
def _forget(state: ControllerState, index: int, cmd: ForgetController) -> Result:
    change = Change(state, index, cmd)
    if state.drop_controller(cmd.node_id) is None:
        return change.result(duplicate=True)
    change.message = f"controller {cmd.node_id} forgotten"
    return change.result()


__all__: list[str] = []
