"""The tenant reach of workflow commands: computed from the definition (owner, groups' tenants,
agreements, ``crossTenantAllowed``, roles), carried by submissions, registrations and trigger
fires and declared through ``tenant_reach()``; commands logged before reaches existed decode
without one; and on a real controller with a fencing state module, a refused submission is
``403`` with the reason and a refused trigger fire is recorded on its registration (which
stays and fires again once allowed) without stopping the driver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgpack
import pytest
from quorus.core.controller import ControllerState, RejectCode, Rejected
from quorus.core.controller.codec import to_plain
from quorus.core.controller.commands import Command
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.testing.controller import TOKEN, running_controller
from quorus.core.testing.fixtures import anyio_backend
from quorus.workflow.controller import WorkflowExtension, WorkflowStateModule
from quorus.workflow.controller.commands import (
    RegisterWorkflow,
    SubmitExecution,
    TriggerFired,
    WorkflowReach,
    workflow_reach,
)
from quorus.workflow.documents import load_file, load_text
from quorus.workflow.prepare import prepare

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio

DESIGN = Path(__file__).parent / "data" / "design"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CROSSING = """\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata: {{name: sync, tenant: acme}}
spec:
  execution: {{crossTenantAllowed: true}}
  security: {{dataSharing: {{agreements: [DSA-1]}}}}
  groups:
    - name: out
      transferGroup:
        spec:
          transfers:
            - {{name: t, source: {{path: /data/a}}, destination: {{path: /data/b}}}}
    - name: in
      tenant: partner
      dependsOn: [out]
      transferGroup:
        spec:
          transfers:
            - {{name: t, source: {{path: /data/b}}, destination: {{path: /data/c}}}}
{triggers}"""
CRON = """\
  triggers:
    - {name: nightly, type: cron, schedule: "0 2 * * *"}
"""


def test_the_reach_of_the_design_multi_tenant_workflow() -> None:
    (doc,) = load_file(DESIGN / "multi-tenant-workflow.yaml")
    reach = workflow_reach(prepare([doc]).workflow)
    assert reach == WorkflowReach(
        owner="enterprise", tenants=("acme-corp", "partner-corp"),
        agreements=("DSA-2024-001",), declared=True,
        roles=(("acme-corp", "source"), ("partner-corp", "destination")))
    assert reach.others() == ("acme-corp", "partner-corp")


def test_a_single_tenant_workflow_reaches_only_its_owner() -> None:
    text = CROSSING.format(triggers="").replace("      tenant: partner\n", "")
    reach = workflow_reach(prepare(load_text(text, "sync.yaml")).workflow)
    assert reach.owner == "acme" and reach.tenants == ("acme",) and reach.others() == ()
    assert reach.roles == () and reach.declared and reach.agreements == ("DSA-1",)


def test_the_commands_declare_their_reach_and_old_ones_decode_without() -> None:
    reach = WorkflowReach("acme", ("acme", "partner"), ("DSA-1",), True)
    files = {"sync.yaml": "x"}
    commands: list[Command] = [
        SubmitExecution("e1", 1.0, files, reach=reach),
        RegisterWorkflow("sync", 1.0, files, reach=reach),
        TriggerFired("sync", "nightly", 1.0, 1.0, reach=reach)]
    state = ControllerState([WorkflowStateModule()])
    for command in commands:
        assert command.tenant_reach() == reach
        assert state.commands.decode(command.encode()) == command
        plain = to_plain(command)
        del plain["reach"]
        old = state.commands.decode(msgpack.packb([command.NAME, plain], use_bin_type=True))
        assert old.tenant_reach() is None


def test_agreements_and_crossTenantAllowed_are_no_notices_any_more() -> None:
    workflow = prepare(load_text(CROSSING.format(triggers=""), "sync.yaml")).workflow
    assert workflow.all_notices() == []
    (doc,) = load_file(DESIGN / "multi-tenant-workflow.yaml")
    infos = [n.message for _, n in prepare([doc]).workflow.all_notices() if n.level == "info"]
    assert infos == ["security.dataSharing.dataClassification and retentionPolicy are "
                     "recorded, not enforced (the agreements are checked by the controllers "
                     "when the workflow is submitted)"]


class Fence:
    """A state module standing in for a tenant fence: while ``closed``, it refuses every
    command whose reach includes tenant ``partner``."""

    name = "fence"
    command_types: Sequence[type[Command]] = ()

    def __init__(self) -> None:
        self.closed = True
        self.asked: list[str] = []

    def apply(self, command: Command, index: int, state: Any) -> None:
        return None

    def admit(self, command: Command, index: int, state: Any) -> Rejected | None:
        reach = command.tenant_reach()
        if reach is None:
            return None
        self.asked.append(command.NAME)
        if self.closed and "partner" in reach.tenants:
            return Rejected(command.NAME, index, RejectCode.ADMISSION_DENIED,
                            "tenant partner is fenced off")
        return None

    def snapshot(self) -> Any:
        return None

    def restore(self, data: Any) -> None:
        return None


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def fenced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
                 ) -> AsyncIterator[tuple[Fence, httpx.AsyncClient]]:
    fence = Fence()

    class Modules:
        @hookimpl
        def quorus_controller_state_modules(self) -> Sequence[Any]:
            return [WorkflowStateModule(), fence]

    pm = new_plugin_manager(load_entry_points=False)
    pm.register(Modules())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: pm)
    extension = WorkflowExtension(actions={}, clock=clock, round_interval=0.05)
    async with running_controller(tmp_path / "c", extensions=[extension]) as server, \
            httpx.AsyncClient(base_url=f"http://{server.settings.listen_http}", headers=AUTH,
                              timeout=10) as http:
        yield fence, http


async def trigger_view(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.get("/v1/workflows/registrations")
    assert answer.status_code == 200, answer.text
    [only] = answer.json()["registrations"]
    return dict(only["triggers"][0])


async def wait_trigger(http: httpx.AsyncClient, check: Any) -> dict[str, Any]:
    view: dict[str, Any] = {}
    with anyio.move_on_after(10):
        while True:
            view = await trigger_view(http)
            if check(view):
                return view
            await anyio.sleep(0.05)
    raise AssertionError(f"the trigger never reached the expected state: {view}")


@pytest.mark.anyio
async def test_a_refused_submission_is_403_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with fenced(tmp_path, monkeypatch, Clock(1_700_000_000.0)) as (fence, http):
        body = {"files": {"sync.yaml": CROSSING.format(triggers="")}, "id": "e1"}
        refused = await http.post("/v1/workflows/executions", json=body)
        assert refused.status_code == 403
        assert refused.json() == {"error": "admission-denied",
                                  "message": "tenant partner is fenced off"}
        assert (await http.get("/v1/workflows/executions/e1")).status_code == 404
        fence.closed = False
        accepted = await http.post("/v1/workflows/executions", json=body)
        assert accepted.status_code == 201, accepted.text


@pytest.mark.anyio
async def test_a_refused_trigger_fire_is_recorded_and_the_registration_stays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    night = datetime(2024, 3, 30, 2, 0, tzinfo=UTC).timestamp()
    clock = Clock(night - 60)
    async with fenced(tmp_path, monkeypatch, clock) as (fence, http):
        fence.closed = False
        body = {"files": {"sync.yaml": CROSSING.format(triggers=CRON)}}
        registered = await http.post("/v1/workflows/registrations", json=body)
        assert registered.status_code == 201, registered.text
        assert registered.json()["reach"]["tenants"] == ["acme", "partner"]
        fence.closed = True  # say, the agreement was revoked after registering
        clock.now = night + 5
        refused = await wait_trigger(http, lambda t: t["refusals"] == 1)
        assert (refused["fires"], refused["last_fire"], refused["last_refused_at"],
                refused["last_refusal"], refused["last_execution"]) == (
            0, night, night, "tenant partner is fenced off", None)
        assert "workflow-trigger-fired" in fence.asked
        # The driver goes on: the spent fire is not proposed again...
        await anyio.sleep(0.3)
        assert (await trigger_view(http))["refusals"] == 1
        # ...and the next night's fire, allowed again, starts an execution.
        fence.closed = False
        clock.now = night + 86400 + 5
        fired = await wait_trigger(http, lambda t: t["fires"] == 1)
        assert fired["refusals"] == 1 and fired["last_execution"] is not None
        execution = await http.get(f"/v1/workflows/executions/{fired['last_execution']}")
        assert execution.status_code == 200
        assert execution.json()["registration"] == "sync"
