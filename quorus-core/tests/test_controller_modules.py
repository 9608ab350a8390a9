"""State modules of other packages: contributed through the hook, given their own commands
and snapshot section, restored exactly, and refused when they clash."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from quorus.core.controller import (
    Applied,
    Command,
    ControllerState,
    MalformedCommandError,
    SubmitJob,
)
from quorus.core.controller.state import installed_state_modules
from quorus.core.hooks import hookimpl, new_plugin_manager


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    NAME: ClassVar[str] = "set-quota"
    tenant: str
    max_jobs: int


class Quotas:
    """A module keeping a quota per tenant, and reporting the jobs each tenant has."""

    name = "quotas"
    command_types: Sequence[type[Command]] = (SetQuota,)

    def __init__(self) -> None:
        self.quotas: dict[str, int] = {}

    def apply(self, command: Command, index: int, state: ControllerState) -> Any:
        assert isinstance(command, SetQuota)
        self.quotas[command.tenant] = command.max_jobs
        used = sum(1 for j in state.jobs.values() if j.tenant == command.tenant)
        return {"tenant": command.tenant, "used": used, "index": index}

    def snapshot(self) -> Any:
        return dict(self.quotas)

    def restore(self, data: Any) -> None:
        self.quotas = dict(data or {})


class Plugin:
    @hookimpl
    def quorus_controller_state_modules(self) -> Sequence[Any]:
        return [Quotas()]


def test_hook_contributes_modules_with_commands_and_snapshot_sections() -> None:
    pm = new_plugin_manager(load_entry_points=False)
    pm.register(Plugin())
    state = ControllerState(installed_state_modules(pm))
    state.apply(1, SubmitJob.new("/a", "/b", job_id="j1", at=1.0, tenant="acme").encode())
    result = state.apply(2, SetQuota("acme", 10).encode())
    assert isinstance(result, Applied)
    assert result.value == {"tenant": "acme", "used": 1, "index": 2}

    restored = ControllerState(installed_state_modules(pm))
    restored.restore(state.snapshot(), 2)
    module = restored.modules["quotas"]
    assert isinstance(module, Quotas) and module.quotas == {"acme": 10}
    assert restored.snapshot() == state.snapshot()
    # A fresh module per state machine: the first state's module is not shared.
    assert module is not state.modules["quotas"]


def test_without_the_module_its_commands_are_unknown_and_its_section_empty() -> None:
    plain = ControllerState()
    with pytest.raises(MalformedCommandError, match="unknown command 'set-quota'"):
        plain.apply(1, SetQuota("acme", 1).encode())
    # A snapshot from a state without the module restores into one with it.
    with_module = ControllerState([Quotas()])
    with_module.restore(plain.snapshot(), 0)
    assert with_module.modules["quotas"].snapshot() == {}


def test_clashing_modules_are_refused() -> None:
    with pytest.raises(ValueError, match="two state modules are named 'quotas'"):
        ControllerState([Quotas(), Quotas()])

    class Impostor(Quotas):
        name = "impostor"
        command_types = (SubmitJob,)

    with pytest.raises(ValueError, match="'submit-job' is built in"):
        ControllerState([Impostor()])
