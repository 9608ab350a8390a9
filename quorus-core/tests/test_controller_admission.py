"""The hooks a tenancy package builds on: state modules that admit or refuse built-in commands
(inside the state machine), observe what they changed and restrict placement; extensions that
authenticate principals of their own and authorize every REST endpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from quorus.core.auth import Principal
from quorus.core.controller import (
    AgentCapabilities,
    Applied,
    AssignJob,
    Command,
    ControllerState,
    RegisterAgent,
    Rejected,
    SubmitJob,
)
from quorus.core.controller.model import AgentRecord, JobRecord, JobState
from quorus.core.controller.results import RejectCode
from quorus.core.controller.scheduler import schedule
from quorus.core.controller.service import ControllerService
from quorus.core.testing.controller import TOKEN, running_controller

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True, slots=True)
class Noop(Command):
    NAME: ClassVar[str] = "noop-quota"


class JobQuota:
    """At most ``limit`` unfinished jobs per tenant; tenant ``red`` only on agents labelled
    ``red``."""

    name = "quota"
    command_types: Sequence[type[Command]] = (Noop,)

    def __init__(self, limit: int = 2) -> None:
        self.limit = limit
        self.open: dict[str, set[str]] = {}
        self.ended: list[str] = []

    def apply(self, command: Command, index: int, state: ControllerState) -> Any:
        return None

    def admit(self, command: Command, index: int, state: ControllerState) -> Rejected | None:
        if isinstance(command, SubmitJob) and state.job(command.job_id) is None:
            used = len(self.open.get(command.tenant, ()))
            if used >= self.limit:
                return Rejected(command.NAME, index, RejectCode.QUOTA_EXCEEDED,
                                f"tenant {command.tenant} runs {used} of {self.limit} jobs",
                                {"quota": "maxConcurrentTransfers", "limit": self.limit,
                                 "usage": used})
        return None

    def observe(self, command: Command, result: Applied, index: int,
                state: ControllerState) -> None:
        for job in result.jobs:
            if job.state.terminal:
                if job.id in self.open.get(job.tenant, set()):
                    self.open[job.tenant].discard(job.id)
                    self.ended.append(job.id)
            else:
                self.open.setdefault(job.tenant, set()).add(job.id)

    def may_place(self, job: JobRecord, agent: AgentRecord, state: ControllerState
                  ) -> str | None:
        if job.tenant == "red" and agent.labels.get("tenant") != "red":
            return "tenant red runs only on its dedicated agents"
        return None

    def snapshot(self) -> Any:
        return {t: sorted(ids) for t, ids in self.open.items()}

    def restore(self, data: Any) -> None:
        self.open = {t: set(ids) for t, ids in (data or {}).items()}


def submit(state: ControllerState, index: int, job_id: str, tenant: str) -> Any:
    return state.apply(index, SubmitJob.new("/a", f"/b/{job_id}", job_id=job_id, at=1.0,
                                            tenant=tenant).encode())


def test_admission_refuses_inside_the_state_machine_and_observe_releases() -> None:
    quota = JobQuota(limit=2)
    state = ControllerState([quota])
    assert isinstance(submit(state, 1, "j1", "blue"), Applied)
    assert isinstance(submit(state, 2, "j2", "blue"), Applied)
    refused = submit(state, 3, "j3", "blue")
    assert isinstance(refused, Rejected) and refused.code is RejectCode.QUOTA_EXCEEDED
    assert refused.details == {"quota": "maxConcurrentTransfers", "limit": 2, "usage": 2}
    assert state.job("j3") is None
    assert isinstance(submit(state, 4, "g1", "green"), Applied)  # another tenant's quota
    # Cancelling releases the reservation: the next submission fits.
    from quorus.core.controller import CancelJob

    assert isinstance(state.apply(5, CancelJob("j1", 2.0).encode()), Applied)
    assert quota.ended == ["j1"]
    assert isinstance(submit(state, 6, "j3", "blue"), Applied)
    # A resubmission of an existing job is idempotent and not counted again.
    again = submit(state, 7, "j2", "blue")
    assert isinstance(again, Applied) and again.duplicate


def test_placement_rules_of_modules_bind_the_scheduler_and_assignments() -> None:
    state = ControllerState([JobQuota(limit=10)])
    caps = AgentCapabilities(protocols=("file",), max_concurrent=4)
    state.apply(1, RegisterAgent("shared", 1.0, capabilities=caps).encode())
    state.apply(2, RegisterAgent("dedicated", 1.0, capabilities=caps,
                                 labels={"tenant": "red"}).encode())
    submit(state, 3, "r1", "red")
    submit(state, 4, "b1", "blue")
    placed = {a.job_id: a.agent_id for a in schedule(state).assignments}
    assert placed["r1"] == "dedicated"
    refused = state.apply(5, AssignJob("r1", "shared", 1, 2.0).encode())
    assert isinstance(refused, Rejected) and refused.code is RejectCode.ADMISSION_DENIED
    assert "dedicated agents" in refused.message
    only_shared = ControllerState([JobQuota(limit=10)])
    only_shared.apply(1, RegisterAgent("shared", 1.0, capabilities=caps).encode())
    submit(only_shared, 2, "r1", "red")
    plan = schedule(only_shared)
    assert plan.assignments == ()
    assert plan.waiting["r1"] == ("no agent this job may use: tenant red runs only on its "
                                  "dedicated agents")
    assert only_shared.job("r1").state is JobState.QUEUED  # type: ignore[union-attr]


class Tokens:
    """Principals of their own: ``alice`` may act in tenant ``blue`` only."""

    name = "tenancy"

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str | None]] = []

    def routes(self, service: ControllerService) -> Any:
        return None

    async def lead(self, leadership: Any) -> None:
        return None

    def authenticator(self, service: ControllerService) -> Any:
        class ByToken:
            def authenticate(self, credentials: Mapping[str, Any]) -> Principal | None:
                if credentials.get("token") == "alice-token":
                    return Principal("alice", "api-token")
                return None

        return ByToken()

    def authorize(self, principal: Principal, action: str, tenant: str | None,
                  namespace: str | None) -> str | None:
        self.asked.append((principal.name, action, tenant))
        if principal.name != "alice":
            return None
        if tenant == "blue":
            return None
        return f"alice acts in tenant blue only, not {tenant or 'the whole controller'}"


@pytest.mark.anyio
async def test_extensions_authenticate_and_authorize_every_endpoint(tmp_path: Path) -> None:
    tokens = Tokens()
    alice = {"Authorization": "Bearer alice-token"}
    async with running_controller(tmp_path / "c", extensions=[tokens]) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            admin_job = await client.post("/v1/jobs", headers=AUTH, json={
                "id": "green-1", "source": "/a", "destination": "/b", "tenant": "green"})
            assert admin_job.status_code == 201
            mine = await client.post("/v1/jobs", headers=alice, json={
                "id": "blue-1", "source": "/a", "destination": "/c", "tenant": "blue"})
            assert mine.status_code == 201, mine.text
            assert mine.json()["submitted_by"] == "alice"
            denied = await client.post("/v1/jobs", headers=alice, json={
                "id": "green-2", "source": "/a", "destination": "/d", "tenant": "green"})
            assert denied.status_code == 403
            assert "alice acts in tenant blue only, not green" in denied.json()["message"]
            assert server.state.job("green-2") is None
            listed = (await client.get("/v1/jobs", headers=alice)).json()
            assert [j["id"] for j in listed["jobs"]] == ["blue-1"]
            hidden = await client.get("/v1/jobs/green-1", headers=alice)
            assert hidden.status_code == 404
            cancel = await client.post("/v1/jobs/green-1/cancel", headers=alice)
            assert cancel.status_code == 404
            assert server.state.job("green-1").state is JobState.QUEUED  # type: ignore[union-attr]
            assert (await client.get("/v1/cluster", headers=alice)).status_code == 403
            assert (await client.get("/v1/cluster", headers=AUTH)).status_code == 200
            assert (await client.get("/v1/jobs",
                                     headers={"Authorization": "Bearer nope"})).status_code == 401
    assert ("alice", "jobs.submit", "blue") in tokens.asked


@pytest.mark.anyio
async def test_a_quota_refusal_is_http_429_with_the_details(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from quorus.core.hooks import hookimpl, new_plugin_manager

    class Plugin:
        @hookimpl
        def quorus_controller_state_modules(self) -> Sequence[Any]:
            return [JobQuota(limit=1)]

    pm = new_plugin_manager(load_entry_points=False)
    pm.register(Plugin())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: pm)
    async with running_controller(tmp_path / "c", extensions=[]) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as client:
            first = await client.post("/v1/jobs", json={"source": "/a", "destination": "/b"})
            assert first.status_code == 201
            second = await client.post("/v1/jobs", json={"source": "/a", "destination": "/c"})
            assert second.status_code == 429
            body = second.json()
            assert body["error"] == "quota-exceeded"
            assert body["details"] == {"quota": "maxConcurrentTransfers", "limit": 1,
                                       "usage": 1}
