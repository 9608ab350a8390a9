"""Connected agents lose their session when their access goes, on a real in-process controller
with tenancy and access control (asyncio and trio): the leader judges every link again after a
command that may withdraw access (a token revoked, a principal deleted, a role binding taken
back, a tenant deleted) and on a timer (a token that merely expires), and ends the sessions no
longer allowed with an ``unauthorized`` error. The agent aborts what it ran and retries with
backoff; the jobs it held move to other agents through the usual path and complete once. An
agent whose access still holds is left alone."""

from __future__ import annotations

import dataclasses
import functools
import logging
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import httpx
import pytest
from quorus.core.agent import AgentConfig, AgentRuntime
from quorus.core.agentproto import AgentPhase, Backoff, Error, ErrorCode
from quorus.core.controller import JobState
from quorus.core.controller.model import AttemptOutcome
from quorus.core.controller.server import ControllerServer
from quorus.core.hooks import new_plugin_manager
from quorus.core.secrets import Secret
from quorus.core.testing.controller import (
    TOKEN,
    ScriptedAgent,
    controller_address,
    eventually,
    running_agent,
    running_controller,
)
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant import plugin
from quorus.tenant.access.extension import AccessExtension
from quorus.tenant.routes import TenantExtension

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

#: These tests' waits are bounded at 20 s.
wait = functools.partial(eventually, within=20.0)

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CONTROLLER_LOG = "quorus.core.controller.agentlink"
AGENT_LOG = "quorus.core.agent.runtime"


@pytest.fixture(autouse=True)
def tenancy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller's state gets the tenant package's modules."""
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)


def tenants(storage: Path) -> str:
    def doc(name: str) -> str:
        return (f"apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata: {{name: {name}}}\n"
                f"spec:\n  hierarchy: {{parent: null}}\n  resources:\n"
                f"    allocation: {{strategy: dedicated}}\n  security:\n    networking:\n"
                f"      allowedDestinations: [\"{storage}/{name}\"]\n")
    return "---\n".join([doc("hr"), doc("sales")])


def controller(tmp_path: Path) -> AbstractAsyncContextManager[ControllerServer]:
    return running_controller(tmp_path / "c", extensions=[TenantExtension(), AccessExtension()])


def admin_client(server: ControllerServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://{server.settings.listen_http}", headers=ADMIN,
                             timeout=30)


async def configure(admin: httpx.AsyncClient, storage: Path) -> None:
    for name in ("hr", "sales"):
        (storage / name / "in").mkdir(parents=True, exist_ok=True)
        (storage / name / "in" / "data.csv").write_bytes(name.encode() * 50_000)
    assert (await admin.put("/v1/tenants", json={"yaml": tenants(storage)})).status_code == 200


async def principal(admin: httpx.AsyncClient, name: str, tenant: str,
                    role: str = "transfer-admin") -> None:
    assert (await admin.post("/v1/principals", json={"name": name, "tenant": tenant})
            ).status_code == 201
    assert (await admin.post(f"/v1/principals/{name}/roles",
                             json={"role": role, "tenant": tenant})).status_code == 200


async def token(admin: httpx.AsyncClient, name: str, ttl: float | None = None
                ) -> tuple[str, str]:
    """A new token of ``name``: its text and its id."""
    issued = await admin.post(f"/v1/principals/{name}/tokens", json={"ttl_seconds": ttl})
    assert issued.status_code == 201
    return str(issued.json()["token"]), str(issued.json()["token_id"])


def agent(server: ControllerServer, work: Path, agent_id: str, text: str, tenant: str, *,
          backoff: Backoff | None = None) -> AbstractAsyncContextManager[AgentRuntime]:
    return running_agent(AgentConfig(
        controllers=(controller_address(server),), agent_id=agent_id, token=Secret(text),
        work_dir=work / agent_id, backoff=backoff or Backoff(initial=0.05, maximum=0.2),
        tenant=tenant))


def holder(server: ControllerServer, agent_id: str, text: str, tenant: str) -> ScriptedAgent:
    """An agent that runs its assignments forever (reporting progress), serving ``tenant``."""
    scripted = ScriptedAgent(agent_id, [controller_address(server)], token=text, mode="hold")
    scripted.session.registration = dataclasses.replace(scripted.session.registration,
                                                         tenant=tenant)
    return scripted


def ended(caplog: pytest.LogCaptureFixture, agent_id: str, *words: str) -> bool:
    return any(r.name == CONTROLLER_LOG and f"agent {agent_id}: session ended" in r.getMessage()
               and all(w in r.getMessage() for w in words) for r in caplog.records)


async def test_a_revoked_token_ends_the_session_and_the_held_job_completes_once_elsewhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    storage = tmp_path / "tenants"
    source = storage / "hr" / "in" / "data.csv"
    with anyio.fail_after(60):
        async with controller(tmp_path) as server, anyio.create_task_group() as tg:
            async with admin_client(server) as admin:
                await configure(admin, storage)
                await principal(admin, "hr-admin", "hr")
                revoked, revoked_id = await token(admin, "hr-admin")
                kept, _ = await token(admin, "hr-admin")  # the same principal's other token
                doomed = holder(server, "hr-1", revoked, "hr")
                tg.start_soon(doomed.run)
                await wait(lambda: doomed.registered.is_set())
                job = await server.service.submit_job(
                    str(source), str(storage / "hr" / "out.csv"), tenant="hr")
                await wait(lambda: server.state.jobs[job.id].state is JobState.RUNNING)
                async with agent(server, tmp_path, "hr-2", kept, "hr"):
                    await wait(lambda: "hr-2" in server.links)
                    untouched = server.links["hr-2"]
                    assert (await admin.delete(f"/v1/principals/hr-admin/tokens/{revoked_id}")
                            ).status_code == 200
                    await wait(lambda: ended(caplog, "hr-1", "was revoked"))
                    await wait(lambda: any(isinstance(f, Error) for f in doomed.frames))
                    error = next(f for f in doomed.frames if isinstance(f, Error))
                    assert error.code is ErrorCode.UNAUTHORIZED
                    assert "hr-admin" in error.message and "was revoked" in error.message
                    # The agent stops running it at once; the leader moves it once hr-1's
                    # heartbeat timeout passes.
                    assert doomed.aborted == [(job.id, 1)]
                    assert "hr-1" not in server.links
                    await wait(lambda: server.state.jobs[job.id].state is JobState.COMPLETED)
                    done = server.state.jobs[job.id]
                    assert [(a.number, a.agent_id, a.outcome) for a in done.attempts] == [
                        (1, "hr-1", AttemptOutcome.LOST), (2, "hr-2", AttemptOutcome.COMPLETED)]
                    # No new work for hr-1: the next job of its tenant goes to hr-2.
                    later = await server.service.submit_job(
                        str(source), str(storage / "hr" / "later.csv"), tenant="hr")
                    await wait(lambda: server.state.jobs[later.id].state is JobState.COMPLETED)
                    assert [a.agent_id for a in server.state.jobs[later.id].attempts] == ["hr-2"]
                    assert [a.job_id for a in doomed.assigns()] == [job.id]
                    # hr-1 keeps being refused at its hello (with the reason), and hr-2 kept
                    # its session throughout.
                    await wait(lambda: any(
                        r.name == CONTROLLER_LOG and "'hr-1': credentials refused" in
                        r.getMessage() and "was revoked" in r.getMessage()
                        for r in caplog.records))
                    assert server.links["hr-2"] is untouched and untouched.session.active
                    assert "hr-1" not in server.links
            doomed.kill()
    assert (storage / "hr" / "out.csv").read_bytes() == source.read_bytes()
    assert sum(1 for r in caplog.records if "session ended" in r.getMessage()) == 1


async def test_a_token_that_expires_ends_the_session_by_itself_and_the_agent_backs_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    storage = tmp_path / "tenants"
    with anyio.fail_after(60):
        async with controller(tmp_path) as server:
            async with admin_client(server) as admin:
                await configure(admin, storage)
                await principal(admin, "hr-admin", "hr")
                brief, _ = await token(admin, "hr-admin", ttl=3.0)
                lasting, _ = await token(admin, "hr-admin")
            backoff = Backoff(initial=0.2, maximum=1.0)
            async with agent(server, tmp_path, "hr-1", brief, "hr", backoff=backoff) as expiring, \
                    agent(server, tmp_path, "hr-2", lasting, "hr"):
                await wait(lambda: {"hr-1", "hr-2"} <= set(server.links))
                untouched = server.links["hr-2"]
                assert expiring.session.phase is AgentPhase.ACTIVE
                # No command is applied: the leader's timer finds the token expired.
                await wait(lambda: ended(caplog, "hr-1", "expired"))
                await wait(lambda: expiring.session.phase is not AgentPhase.ACTIVE)
                assert "hr-1" not in server.links
                assert any(r.name == AGENT_LOG and "the controller closed the connection: "
                           "unauthorized" in r.getMessage() and "expired" in r.getMessage()
                           for r in caplog.records)
                assert any(r.name == AGENT_LOG and "its credentials are refused" in
                           r.getMessage() for r in caplog.records)
                # It retries, with growing pauses: a handful of hellos in 2.5 s, not a storm.
                before = len(refusals(caplog, "hr-1"))
                await anyio.sleep(2.5)
                retries = len(refusals(caplog, "hr-1")) - before
                assert 1 <= retries <= 8, retries
                assert expiring.session.phase is not AgentPhase.ACTIVE
                assert server.links["hr-2"] is untouched and untouched.session.active
                job = await server.service.submit_job(
                    str(storage / "hr" / "in" / "data.csv"), str(storage / "hr" / "out.csv"),
                    tenant="hr")
                await wait(lambda: server.state.jobs[job.id].state is JobState.COMPLETED)
                assert [a.agent_id for a in server.state.jobs[job.id].attempts] == ["hr-2"]


def refusals(caplog: pytest.LogCaptureFixture, agent_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CONTROLLER_LOG
            and f"'{agent_id}': credentials refused" in r.getMessage()]


async def test_a_role_binding_taken_back_or_a_principal_deleted_ends_only_those_sessions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with anyio.fail_after(60):
        async with controller(tmp_path) as server, admin_client(server) as admin:
            await configure(admin, tmp_path / "tenants")
            texts = {}
            for name in ("unbound", "deleted", "kept"):
                await principal(admin, name, "hr")
                texts[name], _ = await token(admin, name)
            async with agent(server, tmp_path, "a-unbound", texts["unbound"], "hr"), \
                    agent(server, tmp_path, "a-deleted", texts["deleted"], "hr"), \
                    agent(server, tmp_path, "a-kept", texts["kept"], "hr"):
                await wait(lambda: {"a-unbound", "a-deleted", "a-kept"} <= set(server.links))
                kept = server.links["a-kept"]
                # A role that still allows viewing does not allow registering agents.
                assert (await admin.post("/v1/principals/unbound/roles", json={
                    "role": "viewer", "tenant": "hr"})).status_code == 200
                assert (await admin.request("DELETE", "/v1/principals/unbound/roles", json={
                    "role": "transfer-admin", "tenant": "hr"})).status_code == 200
                await wait(lambda: ended(caplog, "a-unbound", "unbound may no longer "
                                         "register agents in tenant hr", "viewer"))
                assert "a-unbound" not in server.links and "a-deleted" in server.links
                assert (await admin.delete("/v1/principals/deleted")).status_code == 200
                await wait(lambda: ended(caplog, "a-deleted", "its principal was deleted"))
                assert "a-deleted" not in server.links
                assert server.links["a-kept"] is kept and kept.session.active
    assert sum(1 for r in caplog.records if "session ended" in r.getMessage()) == 2


async def test_deleting_a_tenant_ends_its_agents_sessions_suspending_it_does_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with anyio.fail_after(60):
        async with controller(tmp_path) as server, admin_client(server) as admin:
            await configure(admin, tmp_path / "tenants")
            # The controller's own token is all-powerful, but a deleted tenant is no place
            # to serve for anyone.
            async with agent(server, tmp_path, "hr-1", TOKEN, "hr"), \
                    agent(server, tmp_path, "sales-1", TOKEN, "sales"):
                await wait(lambda: {"hr-1", "sales-1"} <= set(server.links))
                hr, sales = server.links["hr-1"], server.links["sales-1"]
                # Suspended: its running jobs still need its agents.
                assert (await admin.post("/v1/tenants/hr/suspend", json={})
                        ).status_code == 200
                assert await server.review_agents() == 0
                assert server.links["hr-1"] is hr and hr.session.active
                assert (await admin.delete("/v1/tenants/hr")).status_code == 200
                await wait(lambda: ended(caplog, "hr-1", "there is no tenant hr"))
                assert "hr-1" not in server.links
                # Nor may it register again while the tenant does not exist.
                await wait(lambda: any(
                    r.name == CONTROLLER_LOG and "agent hr-1 refused" in r.getMessage()
                    and "there is no tenant hr" in r.getMessage() for r in caplog.records))
                assert "hr-1" not in server.links
                assert server.links["sales-1"] is sales and sales.session.active
