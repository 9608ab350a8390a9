"""Storage isolation and bandwidth caps on the agent, through the real controller (with the
tenant module) and a real agent runtime on loopback: a job the controller admits (its path
is inside the tenant's root as text) but whose directory is a symbolic link planted to
another tenant's storage fails on the agent before a byte is written; the tenant's
``maxBandwidthMbps`` reaches the agent as the job's cap."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from quorus.core.agent import AgentConfig, AgentRuntime
from quorus.core.agentproto import Assign, Backoff
from quorus.core.controller import JobState
from quorus.core.controller.server import ControllerServer
from quorus.core.secrets import Secret
from quorus.core.testing.controller import (
    TOKEN,
    controller_address,
    eventually,
    running_agent,
    running_controller,
)
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant.commands import ApplyTenants

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

#: These tests' waits are bounded at 20 s.
wait = functools.partial(eventually, within=20.0)


def tenants(root: Path) -> str:
    return f"""apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {{name: acme}}
spec:
  hierarchy: {{parent: null}}
  resources:
    quotas: {{maxBandwidthMbps: 80}}
  security:
    networking:
      allowedDestinations: ["{root}/acme"]
"""


@asynccontextmanager
async def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> AsyncIterator[tuple[ControllerServer, list[Assign]]]:
    from quorus.core.hooks import new_plugin_manager
    from quorus.tenant import plugin

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    async with running_controller(tmp_path / "c") as server:
        config = AgentConfig(
            controllers=(controller_address(server),), agent_id="agent-1",
            token=Secret(TOKEN), work_dir=tmp_path / "agent", max_concurrent=2,
            backoff=Backoff(initial=0.05, maximum=0.2))
        runtime = AgentRuntime(config)
        seen: list[Assign] = []
        attempt = runtime._attempt  # what the agent was told, kept for the assertions

        async def recording(assign: Assign, progressed: object) -> object:
            seen.append(assign)
            return await attempt(assign, progressed)  # type: ignore[arg-type]

        runtime._attempt = recording  # type: ignore[method-assign]
        async with running_agent(runtime):
            await wait(lambda: runtime.controller_id is not None)
            yield server, seen


async def test_a_planted_link_is_refused_on_the_agent_and_the_cap_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = tmp_path / "tenants"
    acme, globex = storage / "acme", storage / "globex"
    (acme / "in").mkdir(parents=True)
    globex.mkdir()
    data = b"quarterly numbers\n" * 1000
    (acme / "in" / "report.csv").write_bytes(data)
    (acme / "out").symlink_to(globex)  # planted: acme/out leads into globex's storage
    with anyio.fail_after(60):
        async with fleet(tmp_path, monkeypatch) as (server, seen):
            await server.service.propose(ApplyTenants(1.0, tenants(storage)))
            escaped = await server.service.submit_job(
                str(acme / "in" / "report.csv"), str(acme / "out" / "report.csv"),
                tenant="acme")
            fine = await server.service.submit_job(
                str(acme / "in" / "report.csv"), str(acme / "copies" / "report.csv"),
                tenant="acme")
            await wait(lambda: server.state.jobs[escaped.id].state.terminal
                             and server.state.jobs[fine.id].state.terminal)
            failed = server.state.jobs[escaped.id]
            done = server.state.jobs[fine.id]
    assert failed.state is JobState.FAILED
    assert failed.attempt == 1  # an escape is not retried
    assert "PathOutsideRootsError" in (failed.error or "")
    assert "symbolic link" in (failed.error or "")
    assert list(globex.iterdir()) == []  # nothing written in the other tenant's storage
    assert done.state is JobState.COMPLETED
    assert hashlib.sha256((acme / "copies" / "report.csv").read_bytes()).hexdigest() == \
        hashlib.sha256(data).hexdigest()
    assert {a.options.bandwidth_limit for a in seen} == {80 * 125_000}
    assert {a.options.storage_roots for a in seen} == {(f"{storage}/acme",)}
