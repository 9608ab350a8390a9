"""Quotas on a three-controller Raft quorum: submissions stormed at every controller at once
(followers forward them to the leader) never get past a quota, because admission happens
inside the replicated state machine; every controller ends with the same jobs and usage."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from quorus.core.controller.server import ControllerServer
from quorus.core.testing.controller import (
    TOKEN,
    eventually,
    loopback_peers,
    request_until_served,
    running_quorum,
)
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant.routes import TenantExtension
from quorus.tenant.state import TenantStateModule

pytest.importorskip("quorus.raft")
__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}
TENANTS = """apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {name: company}
spec:
  hierarchy: {parent: null}
  resources:
    quotas: {maxConcurrentTransfers: 9, maxDailyTransfers: 40}
---
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {name: team}
spec:
  hierarchy: {parent: company}
  resources:
    quotas: {maxConcurrentTransfers: 6}
"""


@pytest.fixture
async def quorum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[list[ControllerServer]]:
    from quorus.core.hooks import new_plugin_manager
    from quorus.tenant import plugin

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    async with running_quorum(tmp_path, loopback_peers(("c1", "c2", "c3")),
                              extensions=lambda: [TenantExtension()]) as servers:
        yield servers


def ledger(server: ControllerServer) -> Any:
    module = server.state.modules["tenant"]
    assert isinstance(module, TenantStateModule)
    return module.ledger


async def test_a_storm_at_every_controller_never_gets_past_a_quota(
    quorum: list[ControllerServer],
) -> None:
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
        applied = await client.put(
            f"http://{next(s for s in quorum if s.leading).settings.listen_http}/v1/tenants",
            json={"yaml": TENANTS})
        assert applied.status_code == 200, applied.text
        outcomes: dict[tuple[str, int], int] = {}
        admitted: set[str] = set()

        async def storm(server: ControllerServer, tenant: str, task: int) -> None:
            for n in range(10):
                # An id per submission: one sent again after a lost answer is the same job.
                job_id = f"{server.settings.node_id}-{task}-{n}"
                answer = await request_until_served(
                    client, "POST", f"http://{server.settings.listen_http}/v1/jobs",
                    {"id": job_id, "source": f"/data/tenants/{tenant}/a",
                     "destination": f"/data/tenants/{tenant}/b", "tenant": tenant})
                if answer.status_code == 201:
                    admitted.add(job_id)
                key = (tenant, answer.status_code)
                outcomes[key] = outcomes.get(key, 0) + 1

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for server in quorum:
                    for task, tenant in enumerate(("team", "company", "team")):
                        tg.start_soon(storm, server, tenant, task)
    # 90 submissions, 60 for team and 30 for company itself, from three controllers at once.
    assert sum(outcomes.values()) == 90
    assert set(outcomes) <= {("team", 201), ("team", 429), ("company", 201), ("company", 429)}
    leader = next(s for s in quorum if s.leading)
    # What the replicated state holds is the truth: the company's 9 concurrent transfers,
    # of which at most the team's own 6, whoever sent them and wherever.
    running = ledger(leader).running
    assert running["company"] == 9 and running.get("team", 0) <= 6
    assert set(running) <= {"company", "team"}
    assert sorted(leader.state.jobs) == sorted(admitted) and len(admitted) == 9
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert ledger(leader).usage("company", day).submitted == 9
    # Every controller applied the same log: the same jobs and the same usage.
    await eventually(lambda: all(s.state.applied_index == leader.state.applied_index
                                 for s in quorum), within=10.0)
    for server in quorum:
        assert sorted(server.state.jobs) == sorted(leader.state.jobs)
        assert ledger(server).snapshot() == ledger(leader).snapshot()
