"""Connected agents' access judged again (asyncio and trio), through core's generic mechanism
only: a state module names the commands that may withdraw access (``access_commands``), and
after one is applied the leader judges every link again with the authenticate and authorize
path the hello and registration used; on a timer it judges a bounded number of links in turn.
An agent no longer allowed gets an ``unauthorized`` error and its link closes; the others keep
theirs, and allowing re-checks are not reported to the verdict observers."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
from quorus.core.agentproto import Error, ErrorCode
from quorus.core.auth import Principal
from quorus.core.controller import Command, ControllerState
from quorus.core.controller.server import ControllerServer
from quorus.core.controller.service import ControllerService
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.testing.controller import (
    ScriptedAgent,
    controller_address,
    eventually,
    running_controller,
)
from quorus.core.testing.fixtures import anyio_backend

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio


@dataclass(frozen=True, slots=True)
class CloseTenant(Command):
    NAME: ClassVar[str] = "gate-close"
    tenant: str


@dataclass(frozen=True, slots=True)
class Note(Command):
    NAME: ClassVar[str] = "gate-note"
    text: str


class GateModule:
    """Tenants closed to agents; only closing one is an access command."""

    name = "gate"
    command_types: Sequence[type[Command]] = (CloseTenant, Note)
    access_commands: Sequence[type[Command]] = (CloseTenant,)

    def __init__(self) -> None:
        self.closed: set[str] = set()

    def apply(self, command: Command, index: int, state: ControllerState) -> Any:
        if isinstance(command, CloseTenant):
            self.closed.add(command.tenant)
        return None

    def snapshot(self) -> Any:
        return sorted(self.closed)

    def restore(self, data: Any) -> None:
        self.closed = set(data or ())


class Plugin:
    @hookimpl
    def quorus_controller_state_modules(self) -> Sequence[Any]:
        return [GateModule()]


class Gate:
    """Refuses ``agents.register`` in closed tenants; keeps every verdict it is told."""

    name = "gate"

    def __init__(self) -> None:
        self.service: ControllerService | None = None
        self.verdicts: list[tuple[str, str | None, str | None]] = []

    def routes(self, service: ControllerService) -> Any:
        return None

    async def lead(self, leadership: Any) -> None:
        return None

    def authenticator(self, service: ControllerService) -> None:
        self.service = service

    def module(self) -> GateModule:
        assert self.service is not None
        found = self.service.state.modules["gate"]
        assert isinstance(found, GateModule)
        return found

    def authorize(self, principal: Principal, action: str, tenant: str | None,
                  namespace: str | None) -> str | None:
        if action == "agents.register" and tenant in self.module().closed:
            return f"the gate closed tenant {tenant}"
        return None

    def authorized(self, principal: Principal, action: str, tenant: str | None,
                   namespace: str | None, reason: str | None) -> None:
        self.verdicts.append((action, tenant, reason))


@pytest.fixture(autouse=True)
def gate_module(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(Plugin())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)


def serving(server: ControllerServer, agent_id: str, tenant: str) -> ScriptedAgent:
    agent = ScriptedAgent(agent_id, [controller_address(server)])
    agent.session.registration = dataclasses.replace(agent.session.registration, tenant=tenant)
    return agent


def errors(agent: ScriptedAgent) -> list[Error]:
    return [f for f in agent.frames if isinstance(f, Error)]


async def test_an_access_command_has_every_link_judged_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("quorus.core.controller.server.AGENT_REVIEW_INTERVAL", 3600.0)
    gate = Gate()
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", extensions=[gate]) as server, \
                anyio.create_task_group() as tg:
            closing, staying = serving(server, "a1", "t1"), serving(server, "a2", "t2")
            tg.start_soon(closing.run)
            tg.start_soon(staying.run)
            await eventually(lambda: {"a1", "a2"} <= set(server.links))
            kept = server.links["a2"]
            # A change no command announces, then a command that is not an access command:
            # nothing is judged again (the timer is an hour away).
            gate.module().closed.add("t1")
            await server.service.propose(Note("nothing to see"))
            await anyio.sleep(0.3)
            assert "a1" in server.links and not errors(closing)
            await server.service.propose(CloseTenant("t1"))
            await eventually(lambda: bool(errors(closing)))
            assert errors(closing) == [Error(
                ErrorCode.UNAUTHORIZED, "token-holder may no longer register agents in tenant "
                "t1: the gate closed tenant t1")]
            await eventually(lambda: "a1" not in server.links)
            assert server.links["a2"] is kept and kept.session.active and not errors(staying)
            # Registration verdicts were told, and the refusal; allowing re-checks were not.
            assert sorted(gate.verdicts[:2]) == [("agents.register", "t1", None),
                                                 ("agents.register", "t2", None)]
            assert gate.verdicts[2:] == [("agents.register", "t1", "the gate closed tenant t1")]
            closing.kill()
            staying.kill()


async def test_the_timer_judges_a_bounded_number_of_links_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("quorus.core.controller.server.AGENT_REVIEW_INTERVAL", 0.05)
    monkeypatch.setattr("quorus.core.controller.server.AGENT_REVIEW_BATCH", 1)
    gate = Gate()
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", extensions=[gate]) as server, \
                anyio.create_task_group() as tg:
            agents = [serving(server, f"a{n}", "t1" if n < 3 else "t2") for n in range(4)]
            for agent in agents:
                tg.start_soon(agent.run)
            await eventually(lambda: {"a0", "a1", "a2", "a3"} <= set(server.links))
            kept = server.links["a3"]
            assert await server.review_agents(limit=1) == 0
            gate.module().closed.add("t1")  # no command: only the timer can find it
            await eventually(lambda: not {"a0", "a1", "a2"} & set(server.links))
            # The link leaves the server's table as its error frame is sent: the agent may
            # read it a moment later. A refused agent that comes back is answered with a
            # refused registration, not another error.
            await eventually(lambda: all(errors(a) for a in agents[:3]))
            assert all(len(errors(a)) == 1 for a in agents[:3]) and not errors(agents[3])
            assert server.links["a3"] is kept and kept.session.active
            for agent in agents:
                agent.kill()


async def test_a_controller_whose_agents_hold_its_own_token_judges_nothing_again(
    tmp_path: Path
) -> None:
    with anyio.fail_after(30):
        async with running_controller(tmp_path / "c", extensions=[]) as server, \
                anyio.create_task_group() as tg:
            agent = ScriptedAgent("a1", [controller_address(server)])
            tg.start_soon(agent.run)
            await eventually(lambda: "a1" in server.links)
            link = server.links["a1"]
            assert link.access_problem() is None and await server.review_agents() == 0
            assert server.links["a1"] is link
            agent.kill()
