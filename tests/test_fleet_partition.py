"""An agent cut off from every controller mid-transfer by a fault-injecting TCP proxy, then
healed (three controllers on Raft, two agents, all OS processes).

The controllers listen for agents on private ports and advertise the proxy's ports instead,
so every agent connection, including the ones an agent opens after learning the quorum,
passes through :class:`PartitionProxy`. The proxy reads each connection's hello to learn which
agent it carries; cutting an agent drops its connections and closes any new one it opens
until the partition heals. While cut off, the agent's job is reassigned elsewhere; when it
returns it is told to abort its attempt; the job completes exactly once. The test's own side
(proxy, REST client) is anyio code and runs under both asyncio and trio."""

from __future__ import annotations

from collections import defaultdict
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream, TaskStatus
from quorus.core.testing.fixtures import anyio_backend, free_port, payload_bytes  # noqa: F401
from quorus.core.wire import FrameDecoder, Hello, WireError

from tests.fleet_cluster import (
    HEARTBEAT,
    MISSED,
    FleetCluster,
    completed_attempts,
    sha256_of,
    wait_for,
)

pytest.importorskip("quorus.raft")
pytestmark = pytest.mark.anyio

#: 1 MiB: about five seconds at the job's 1.6 Mbit/s, and sixteen on the agent that will be
#: cut off (its own --bwlimit), so that agent is still transferring when it comes back.
SIZE = 1024 * 1024
JOB_OPTIONS = {"bandwidth_mbps": 1.6, "protocol_options": {"file.chunk_size": "65536"}}
SLOW_AGENT = ["--bwlimit", "64KiB/s"]
PARTITION = HEARTBEAT * MISSED + 1.5


class PartitionProxy:
    """TCP forwarding from each listen port to its upstream address, with per-agent cuts."""

    def __init__(self, routes: dict[int, str]) -> None:
        self.routes = routes
        self.blocked: set[str] = set()
        self.refused: dict[str, int] = defaultdict(int)
        self.carried: dict[str, int] = defaultdict(int)
        self._live: dict[str, set[anyio.CancelScope]] = defaultdict(set)

    def cut(self, agent_id: str) -> None:
        """Drop the agent's connections and refuse new ones until :meth:`heal`."""
        self.blocked.add(agent_id)
        for scope in self._live[agent_id]:
            scope.cancel()

    def heal(self, agent_id: str) -> None:
        self.blocked.discard(agent_id)

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
            for port, upstream in self.routes.items():
                listener = await stack.enter_async_context(await anyio.create_tcp_listener(
                    local_host="127.0.0.1", local_port=port))
                tg.start_soon(listener.serve, self._carrier(upstream))
            task_status.started()

    def _carrier(self, upstream: str) -> Any:
        async def carry(client: SocketStream) -> None:
            async with client:
                first, agent_id = await self._read_hello(client)
                if agent_id is None or agent_id in self.blocked:
                    if agent_id is not None:
                        self.refused[agent_id] += 1
                    return
                host, _, port = upstream.rpartition(":")
                try:
                    server = await anyio.connect_tcp(host, int(port))
                except OSError:
                    return
                self.carried[agent_id] += 1
                async with server:
                    await server.send(first)
                    with anyio.CancelScope() as scope:
                        self._live[agent_id].add(scope)
                        try:
                            async with anyio.create_task_group() as tg:
                                tg.start_soon(_pipe, client, server, tg.cancel_scope)
                                tg.start_soon(_pipe, server, client, tg.cancel_scope)
                        finally:
                            self._live[agent_id].discard(scope)

        return carry

    @staticmethod
    async def _read_hello(client: SocketStream) -> tuple[bytes, str | None]:
        """The bytes up to the end of the first frame, and the node id that hello names."""
        decoder, received = FrameDecoder(), b""
        with anyio.move_on_after(5):
            while True:
                try:
                    data = await client.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return received, None
                received += data
                try:
                    frames = decoder.feed(data)
                    if frames:
                        return received, Hello.from_wire(frames[0]).node_id
                except WireError:
                    return received, None
        return received, None


async def _pipe(source: SocketStream, sink: SocketStream, scope: anyio.CancelScope) -> None:
    try:
        while True:
            await sink.send(await source.receive())
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        scope.cancel()  # one side ended: end both, as a TCP proxy does


async def test_a_partitioned_agent_recovers_without_double_completion(tmp_path: Path) -> None:
    proxy_ports = {c: free_port() for c in ("c1", "c2", "c3")}
    cluster = FleetCluster(tmp_path, advertise={c: f"127.0.0.1:{p}" for c, p in
                                                proxy_ports.items()})
    proxy = PartitionProxy({proxy_ports[c]: cluster.agents[c] for c in cluster.ids})
    through_proxy = [cluster.advertised[c] for c in cluster.ids]
    source = tmp_path / "source.bin"
    source.write_bytes(payload_bytes(SIZE, seed=5))
    destination = tmp_path / "out" / "copy.bin"
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        try:
            cluster.start_all()
            await cluster.leader()
            # The job starts on a1, the only agent; a2 joins while it runs.
            victim, other = "a1", "a2"
            cluster.start_agent(victim, controllers=through_proxy, max_concurrent=1,
                                extra=SLOW_AGENT)
            await cluster.wait_agents(victim)
            await cluster.submit({"id": "cut", "source": str(source),
                                  "destination": str(destination), **JOB_OPTIONS})

            async def moving() -> dict[str, Any] | None:
                job = await cluster.job("cut")
                progress = job["progress"]
                return job if progress and progress["bytes_done"] > 0 else None

            assert (await wait_for(moving, 20, "the job moving"))["agent_id"] == victim
            cluster.start_agent(other, controllers=through_proxy, max_concurrent=1)
            await cluster.wait_agents(other)
            proxy.cut(victim)

            async def reassigned() -> dict[str, Any] | None:
                job = await cluster.job("cut")
                return job if job["attempt"] == 2 and job["agent_id"] == other else None

            await wait_for(reassigned, PARTITION + 10, "the job reassigned to the other agent")
            lost = await cluster.agent(victim)
            assert lost is not None and lost["state"] == "unhealthy"
            await anyio.sleep(max(0.0, PARTITION - HEARTBEAT * MISSED))
            assert proxy.refused[victim] > 0, "the cut-off agent never tried to come back"
            proxy.heal(victim)

            async def returned() -> dict[str, Any] | None:
                agent = await cluster.agent(victim)
                return agent if agent and agent["connected"] and agent["state"] != "unhealthy" \
                    else None

            await wait_for(returned, 20, f"{victim} back and healthy")
            abort = "aborting job cut attempt 1: the controller moved this attempt elsewhere"
            await wait_for(lambda: _true(abort in cluster.agent_log(victim)), 10,
                           f"{victim} told to abort attempt 1")

            job = await cluster.wait_job("cut", ["completed"], within=30)
            assert [(a["number"], a["agent_id"], a["outcome"]) for a in job["attempts"]] == [
                (1, victim, "lost"), (2, other, "completed")]
            assert len(completed_attempts(job)) == 1
            assert job["sha256"] == sha256_of(source) == sha256_of(destination)
            assert not [p.name for p in destination.parent.iterdir() if p.name != "copy.bin"]
            assert "completed: " not in _job_lines(cluster.agent_log(victim), "cut attempt 1")
        finally:
            cluster.stop_everything()
            tg.cancel_scope.cancel()


async def _true(value: bool) -> bool:
    return value


def _job_lines(log: str, needle: str) -> str:
    return "\n".join(line for line in log.splitlines() if needle in line)
