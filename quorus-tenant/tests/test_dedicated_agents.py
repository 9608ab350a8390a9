"""Agents dedicated to a tenant, end to end on a real in-process controller with tenancy and
access control: an agent started with ``tenant`` registers for it only if its principal may
register agents there (``agents.register``: transfer-admin); the dedicated tenant's jobs run
on it, another tenant's never do."""

from __future__ import annotations

import functools
import logging
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import httpx
import pytest
from quorus.core.agent import AgentConfig, AgentRuntime
from quorus.core.agentproto import Backoff
from quorus.core.controller import JobState
from quorus.core.controller.server import ControllerServer
from quorus.core.hooks import new_plugin_manager
from quorus.core.secrets import Secret
from quorus.core.testing.controller import (
    TOKEN,
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


def tenants(storage: Path) -> str:
    def doc(name: str, strategy: str) -> str:
        return (f"apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata: {{name: {name}}}\n"
                f"spec:\n  hierarchy: {{parent: null}}\n  resources:\n"
                f"    allocation: {{strategy: {strategy}}}\n  security:\n    networking:\n"
                f"      allowedDestinations: [\"{storage}/{name}\"]\n")
    return "---\n".join([doc("hr", "dedicated"), doc("sales", "shared")])


async def issue(admin: httpx.AsyncClient, name: str, tenant: str, role: str) -> str:
    assert (await admin.post("/v1/principals", json={"name": name, "tenant": tenant})
            ).status_code == 201
    assert (await admin.post(f"/v1/principals/{name}/roles",
                             json={"role": role, "tenant": tenant})).status_code == 200
    issued = await admin.post(f"/v1/principals/{name}/tokens", json={})
    assert issued.status_code == 201
    return str(issued.json()["token"])


def agent(server: ControllerServer, work: Path, agent_id: str, token: str,
          tenant: str) -> AbstractAsyncContextManager[AgentRuntime]:
    return running_agent(AgentConfig(
        controllers=(controller_address(server),), agent_id=agent_id, token=Secret(token),
        work_dir=work / agent_id, backoff=Backoff(initial=0.05, maximum=0.2), tenant=tenant))


async def test_a_dedicated_agent_registers_with_the_right_and_serves_only_its_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    storage = tmp_path / "tenants"
    for name in ("hr", "sales"):
        (storage / name / "in").mkdir(parents=True)
        (storage / name / "in" / "data.csv").write_bytes(name.encode() * 1000)
    extensions = [TenantExtension(), AccessExtension()]
    with anyio.fail_after(60):
        async with running_controller(tmp_path / "c", extensions=extensions) as server:
            base = f"http://{server.settings.listen_http}"
            async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=30) as admin:
                assert (await admin.put("/v1/tenants", json={"yaml": tenants(storage)})
                        ).status_code == 200
                hr_admin = await issue(admin, "hr-admin", "hr", "transfer-admin")
                hr_user = await issue(admin, "hr-user", "hr", "transfer-user")
            caplog.set_level(logging.WARNING, "quorus.core.controller.agentlink")
            async with agent(server, tmp_path, "hr-1", hr_admin, "hr"), \
                    agent(server, tmp_path, "rogue-1", hr_user, "hr"), \
                    agent(server, tmp_path, "stray-1", hr_admin, "sales"):
                await wait(lambda: "hr-1" in server.state.agents)
                await wait(lambda: sum(
                    "may not register agents" in r.getMessage() for r in caplog.records) >= 2)
                assert server.state.agents["hr-1"].tenant == "hr"
                assert "rogue-1" not in server.state.agents  # transfer-user may not
                assert "stray-1" not in server.state.agents  # no right in sales
                hr_job = await server.service.submit_job(
                    str(storage / "hr" / "in" / "data.csv"), str(storage / "hr" / "out.csv"),
                    tenant="hr")
                sales_job = await server.service.submit_job(
                    str(storage / "sales" / "in" / "data.csv"),
                    str(storage / "sales" / "out.csv"), tenant="sales")
                await wait(lambda: server.state.jobs[hr_job.id].state.terminal)
                done = server.state.jobs[hr_job.id]
                assert done.state is JobState.COMPLETED
                assert [a.agent_id for a in done.attempts] == ["hr-1"]
                waiting = server.state.jobs[sales_job.id]
                # The only agent is hr's: sales (shared allocation) may not use it.
                assert waiting.state is JobState.QUEUED
                reason = server.service.job_view(waiting).get("waiting_reason", "")
                assert "dedicated to tenant hr" in str(reason)


async def test_another_tenants_principal_cannot_take_over_a_registered_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # sales-admin may register agents in sales, and registers one under hr's agent id: were
    # it accepted, hr's agent would become sales's, its hr jobs taken back or reported by it.
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    storage = tmp_path / "tenants"
    (storage / "hr" / "in").mkdir(parents=True)
    (storage / "hr" / "in" / "data.csv").write_bytes(b"hr" * 1000)
    extensions = [TenantExtension(), AccessExtension()]
    with anyio.fail_after(60):
        async with running_controller(tmp_path / "c", extensions=extensions) as server:
            base = f"http://{server.settings.listen_http}"
            async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=30) as admin:
                assert (await admin.put("/v1/tenants", json={"yaml": tenants(storage)})
                        ).status_code == 200
                hr_admin = await issue(admin, "hr-admin", "hr", "transfer-admin")
                sales_admin = await issue(admin, "sales-admin", "sales", "transfer-admin")
            caplog.set_level(logging.ERROR, "quorus.core.agent.runtime")
            async with agent(server, tmp_path, "hr-1", hr_admin, "hr"):
                await wait(lambda: "hr-1" in server.state.agents)
                registered = server.state.agents["hr-1"].registrations
                async with agent(server, tmp_path / "other", "hr-1", sales_admin, "sales"):
                    await wait(lambda: any(
                        "registration rejected" in r.getMessage()
                        and "is registered with tenant hr" in r.getMessage()
                        for r in caplog.records))
                    hr = server.state.agents["hr-1"]
                    assert (hr.tenant, hr.registrations) == ("hr", registered)
                    job = await server.service.submit_job(
                        str(storage / "hr" / "in" / "data.csv"),
                        str(storage / "hr" / "out.csv"), tenant="hr")
                    await wait(lambda: server.state.jobs[job.id].state.terminal)
                done = server.state.jobs[job.id]
    assert done.state is JobState.COMPLETED
    assert [a.agent_id for a in done.attempts] == ["hr-1"]
    assert (storage / "hr" / "out.csv").read_bytes() == b"hr" * 1000
