"""A controller added to a running quorum while it serves: its agent and HTTP addresses are
replicated with the controller state, so the old members — whose settings do not name it —
forward writes and redirect agents to it once it leads, and forget it once it is removed.
Four controllers over the ``raft`` backend (quorus-raft) in one process on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import httpx
import pytest
from quorus.core.agentproto import ControllerAddress
from quorus.core.controller.server import ControllerServer
from quorus.core.controller.settings import PeerAddresses
from quorus.core.controller.state import ControllerEndpoints
from quorus.core.testing.controller import (
    TOKEN,
    ScriptedAgent,
    eventually,
    loopback_peers,
    request_until_served,
    running_controller,
    running_quorum,
)
from quorus.core.testing.fixtures import payload_bytes

pytest.importorskip("quorus.raft")
pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def quorum(tmp_path: Path) -> AsyncIterator[list[ControllerServer]]:
    """c1, c2 and c3 serving (none of them knows c4), and c4 started to join: its own
    settings name all four."""
    old = loopback_peers(("c1", "c2", "c3"))
    every = {**old, **loopback_peers(("c4",))}
    async with AsyncExitStack() as stack:
        servers = await stack.enter_async_context(running_quorum(tmp_path, old, within=10))
        joining = every["c4"]
        servers.append(await stack.enter_async_context(running_controller(
            tmp_path / "c4", node_id="c4", consensus="raft", peers=every,
            listen_agents=joining.agents, listen_http=joining.http,
            raft_options={"tick_ms": 20, "join": True},
        )))
        yield servers


async def lead(client: httpx.AsyncClient, via: ControllerServer, node: ControllerServer,
               everyone: list[ControllerServer]) -> None:
    """Hand leadership to ``node`` (through ``via``'s REST API) and wait until every
    controller knows it leads."""
    node_id = node.settings.node_id

    def led() -> bool:
        return node.leading and all(s.backend.leader_id == node_id for s in everyone)

    for _ in range(5):  # a busy machine may move leadership again: ask again (bounded)
        answer = await request_until_served(client, "POST",
                                 f"http://{via.settings.listen_http}/v1/cluster/leader",
                                 {"node_id": node_id})
        assert answer.status_code in (202, 400), answer.text
        try:
            await eventually(led, within=5)
            return
        except TimeoutError:
            continue
    assert led(), f"{node_id} does not lead"


async def test_a_controller_added_while_serving_is_reached_by_the_old_members(
    quorum: list[ControllerServer], tmp_path: Path
) -> None:
    c1, c2, c3, c4 = quorum
    old = [c1, c2, c3]
    assert all(s.peer("c4").http is None for s in old)
    follower = next(s for s in old if not s.leading)
    c4_agents, c4_http = c4.settings.listen_agents, c4.settings.listen_http
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
        added = await request_until_served(client, "POST",
                                f"http://{follower.settings.listen_http}/v1/cluster/members",
                                {"node_id": "c4", "address": c4.settings.peer("c4").raft,
                                 "agents": c4_agents, "http": c4_http})
        assert added.status_code == 202, added.text
        assert added.json() == {"added": "c4", "address": c4.settings.peer("c4").raft,
                                "agents": c4_agents, "http": c4_http}
        recorded = ControllerEndpoints(c4_agents, c4_http)
        await eventually(lambda: all(s.state.controllers.get("c4") == recorded
                                     and "c4" in s.backend.status()["voters"]
                                     for s in quorum))
        for server in old:
            assert server.peer("c4") == PeerAddresses(raft=None, agents=c4_agents, http=c4_http)
            assert server.leader_url("c4") == f"http://{c4_http}"
            assert ControllerAddress("c4", c4_agents) in server.controller_addresses()
        # c4's own settings win over the record.
        assert c4.peer("c4") == c4.settings.peer("c4")

        await lead(client, c1, c4, quorum)
        # A write sent to an old member is forwarded to c4, which leads, and succeeds there.
        for server in old:
            assert server.leader_address() == ControllerAddress("c4", c4_agents)
        source = tmp_path / "in.bin"
        source.write_bytes(payload_bytes(16 * 1024))
        job = {"source": str(source), "destination": str(tmp_path / "out.bin"), "id": "join-1"}
        created = await request_until_served(client, "POST",
                                  f"http://{c2.settings.listen_http}/v1/jobs", job)
        assert created.status_code == 201, created.text
        assert c4.state.job("join-1") is not None
        await eventually(lambda: all(s.state.job("join-1") is not None for s in quorum))

        # An agent that knows only c1 is redirected to c4 and registers there.
        async with anyio.create_task_group() as tg:
            agent = ScriptedAgent("agent-j", [ControllerAddress("c1", c1.settings.listen_agents)])
            tg.start_soon(agent.run)
            await eventually(lambda: "agent-j" in c4.links and agent.registered.is_set())
            assert "agent-j" not in c1.links
            assert c4.state.agent("agent-j") is not None
            # It runs the job written through c2.
            await eventually(lambda: str(c4.state.jobs["join-1"].state) == "completed")
            assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
            agent.kill()

        # Leadership back to an old member, then c4 removed: its record is forgotten.
        await lead(client, c1, c1, quorum)
        removed = await request_until_served(client, "DELETE",
                                  f"http://{c2.settings.listen_http}/v1/cluster/members/c4")
        assert removed.status_code == 202, removed.text
        await eventually(lambda: all("c4" not in s.state.controllers
                                     and "c4" not in s.backend.status()["members"]
                                     for s in old))
        for server in old:
            assert server.peer("c4").http is None
            assert [a.controller_id for a in server.controller_addresses()] == \
                [server.settings.node_id, *sorted({"c1", "c2", "c3"} - {server.settings.node_id})]


async def test_an_added_controller_with_a_bad_address_is_refused_and_nothing_changes(
    quorum: list[ControllerServer],
) -> None:
    c1, _, _, c4 = quorum
    members = c1.backend.status()["members"]
    url = f"http://{c1.settings.listen_http}/v1/cluster/members"
    raft = c4.settings.peer("c4").raft
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        for extra, why in (
            ({"agents": "no-port"}, "agents"),
            ({"http": "host name:80"}, "http"),
            ({"agents": "127.0.0.1:0"}, "invalid agents address '127.0.0.1:0'"),
            ({"http": "127.0.0.1:70000"}, "invalid http address '127.0.0.1:70000'"),
            ({"agents": "127.0.0.1:7070", "http": "[::1]:80"}, "http"),
        ):
            answer = await request_until_served(client, "POST", url,
                                     {"node_id": "c4", "address": raft, **extra})
            assert answer.status_code == 400, answer.text
            assert why in answer.text
    await anyio.sleep(0.2)
    for server in quorum[:3]:
        assert server.backend.status()["members"] == members
        assert not server.state.controllers
