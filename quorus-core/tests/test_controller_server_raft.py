"""Three controllers over the ``raft`` backend (quorus-raft) in one process on loopback: one
leads and schedules; a REST write sent to a follower is forwarded to the leader and
succeeds there; a follower's stale read is its replica; an agent that connects to a follower
is redirected to the leader, registers and runs a job."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from quorus.core.controller import JobState
from quorus.core.controller.server import ControllerServer
from quorus.core.testing.controller import (
    TOKEN,
    ScriptedAgent,
    eventually,
    loopback_peers,
    request_until_served,
    running_quorum,
)
from quorus.core.testing.fixtures import payload_bytes

pytest.importorskip("quorus.raft")
pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def quorum(tmp_path: Path) -> AsyncIterator[list[ControllerServer]]:
    async with running_quorum(tmp_path, loopback_peers(("c1", "c2", "c3")), within=10) as servers:
        yield servers


async def test_a_follower_redirects_writes_and_agents_to_the_leader(
    quorum: list[ControllerServer], tmp_path: Path
) -> None:
    leader = next(s for s in quorum if s.leading)
    follower = next(s for s in quorum if not s.leading)
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        url = f"http://{follower.settings.listen_http}/v1/jobs"
        source = tmp_path / "in.bin"
        source.write_bytes(payload_bytes(32 * 1024))
        body = {"source": str(source), "destination": str(tmp_path / "out.bin"), "id": "r1"}
        created = await client.post(url, json=body)
        assert created.status_code == 201, created.text
        assert leader.state.jobs["r1"].source_display == str(source)
        refused = await client.post(url, json={"source": "rel", "destination": "/b"})
        assert refused.status_code == 400  # the leader's own answer, passed back
        unauthorized = await client.post(url, json=body, headers={"Authorization": "Bearer x"})
        assert unauthorized.status_code == 401
        stale = await client.get(f"http://{follower.settings.listen_http}/v1/jobs/r1",
                                 params={"consistent": "false"})
        for _ in range(100):
            if stale.status_code == 200:
                break
            await anyio.sleep(0.02)
            stale = await client.get(f"http://{follower.settings.listen_http}/v1/jobs/r1",
                                     params={"consistent": "false"})
        assert stale.status_code == 200
        cluster = (await client.get(f"http://{follower.settings.listen_http}/v1/cluster")).json()
        assert cluster["leader"] == leader.settings.node_id
        assert sorted(cluster["members"]) == ["c1", "c2", "c3"]

    async with anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-1", follower.controller_addresses())
        tg.start_soon(agent.run)
        for _ in range(500):
            job = leader.state.job("r1")
            if job is not None and job.state is JobState.COMPLETED:
                break
            await anyio.sleep(0.02)
        job = leader.state.jobs["r1"]
        assert job.state is JobState.COMPLETED
        assert job.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert "agent-1" in leader.links and "agent-1" not in follower.links
        agent.kill()


async def test_a_follower_forwards_reads_so_the_leaders_view_of_agents_is_shown(
    quorum: list[ControllerServer],
) -> None:
    leader = next(s for s in quorum if s.leading)
    follower = next(s for s in quorum if not s.leading)
    url = f"http://{follower.settings.listen_http}/v1/agents/agent-2"
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client, \
            anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-2", leader.controller_addresses())
        tg.start_soon(agent.run)
        for _ in range(500):
            if "agent-2" in leader.links and follower.state.agents.get("agent-2") is not None:
                break
            await anyio.sleep(0.02)
        # Connected is the leader's soft state: the follower's own replica does not have it.
        local = await client.get(url, params={"consistent": "false"})
        assert local.status_code == 200 and local.json()["connected"] is False
        # A busy machine may move leadership at any moment: the follower answers 503 until it
        # knows the new leader, and the new leader shows the agent connected once the agent
        # has followed it (both bounded).
        forwarded = listing = None
        for _ in range(100):
            forwarded = await client.get(url)
            listing = await client.get(f"http://{follower.settings.listen_http}/v1/agents")
            if forwarded.status_code == listing.status_code == 200 and \
                    forwarded.json()["connected"] and \
                    [a["connected"] for a in listing.json()["agents"]] == [True]:
                break
            await anyio.sleep(0.1)
        assert forwarded is not None and listing is not None
        assert forwarded.status_code == 200, forwarded.text
        assert forwarded.json()["connected"] is True
        assert listing.status_code == 200, listing.text
        assert [a["connected"] for a in listing.json()["agents"]] == [True]
        agent.kill()


async def test_a_follower_forwards_a_batch_and_the_leader_answers_each_job(
    quorum: list[ControllerServer],
) -> None:
    follower = next(s for s in quorum if not s.leading)
    jobs = [{"id": f"fb-{n}", "source": f"/in/{n}", "destination": f"/out/{n}"}
            for n in range(30)]
    jobs[3] = {"id": "fb-3", "source": "rel", "destination": "/b"}
    expected = sorted(j["id"] for i, j in enumerate(jobs) if i != 3)

    def everywhere() -> bool:
        return all(sorted(s.state.jobs) == expected for s in quorum)

    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        url = f"http://{follower.settings.listen_http}/v1/jobs/batch"
        answer = await request_until_served(client, "POST", url, {"jobs": jobs})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["submitted"] == 29 and body["refused"] == 1
        assert body["results"][3]["status"] == 400
        assert body["results"][3]["error"] == "invalid-request"
        await eventually(everywhere)
        # The same batch again, through the follower: the same jobs, none queued twice.
        again = await request_until_served(client, "POST", url, {"jobs": jobs})
        assert again.status_code == 200, again.text
        assert [r["status"] for r in again.json()["results"]] == \
            [r["status"] for r in body["results"]]
        await eventually(everywhere)
        unauthorized = await client.post(url, json={"jobs": jobs},
                                         headers={"Authorization": "Bearer x"})
        assert unauthorized.status_code == 401


async def test_membership_requests_the_quorum_refuses_are_told_why_and_change_nothing(
    quorum: list[ControllerServer],
) -> None:
    follower = next(s for s in quorum if not s.leading)
    base = f"http://{follower.settings.listen_http}/v1/cluster"
    members = {n: a for n, a in follower.backend.status()["members"].items()}
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        for method, url, body, why in (
            ("POST", f"{base}/leader", {"node_id": "c9"}, "cannot transfer leadership to 'c9'"),
            ("DELETE", f"{base}/members/c9", None, "'c9' is not a member"),
            ("POST", f"{base}/members", {"node_id": "c1", "address": "127.0.0.1:9"},
             "'c1' is already a member"),
        ):
            answer = await request_until_served(client, method, url, body)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"] == "invalid-request"
            assert why in answer.json()["message"]
    # c1 keeps its address everywhere (nothing was proposed), and the members are as before.
    await anyio.sleep(0.2)
    for server in quorum:
        assert server.backend.status()["members"] == members
