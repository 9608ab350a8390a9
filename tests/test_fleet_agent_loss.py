"""An agent killed with ``kill -9`` in the middle of a transfer (three controllers on Raft, two
agents, all separate OS processes): the leader notices the missed heartbeats, reassigns the
job with the next attempt number to the other agent, and the job completes exactly once with
the source's SHA-256 at the destination."""

from __future__ import annotations

from pathlib import Path

import pytest
from quorus.core.testing.fixtures import payload_bytes

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

#: 2 MiB at 4 Mbit/s: about four seconds per attempt, read in 64 KiB chunks so progress
#: (and so the kill) lands while bytes are still moving.
SIZE = 2 * 1024 * 1024
JOB_OPTIONS = {"bandwidth_mbps": 4, "protocol_options": {"file.chunk_size": "65536"}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_killed_agents_job_is_reassigned_and_completes_once(tmp_path: Path) -> None:
    cluster = FleetCluster(tmp_path)
    source = tmp_path / "source.bin"
    source.write_bytes(payload_bytes(SIZE, seed=1))
    destination = tmp_path / "out" / "copy.bin"
    try:
        cluster.start_all()
        await cluster.leader()
        cluster.start_agent("a1", max_concurrent=1)
        cluster.start_agent("a2", max_concurrent=1)
        await cluster.wait_agents("a1", "a2")

        await cluster.submit({"id": "moving", "source": str(source),
                              "destination": str(destination), **JOB_OPTIONS})

        async def moving() -> dict[str, object] | None:
            job = await cluster.job("moving")
            progress = job["progress"]
            return job if progress and 0 < progress["bytes_done"] < SIZE else None

        running = await wait_for(moving, 20, "the job's bytes to be moving")
        victim = str(running["agent_id"])
        survivor = "a2" if victim == "a1" else "a1"
        cluster.kill_agent(victim)
        assert not destination.exists()

        # Declared dead after MISSED heartbeats, then a whole second attempt.
        job = await cluster.wait_job("moving", ["completed"], within=HEARTBEAT * MISSED + 30)

        assert job["attempt"] == 2
        assert [(a["number"], a["agent_id"], a["outcome"]) for a in job["attempts"]] == [
            (1, victim, "lost"), (2, survivor, "completed"),
        ]
        assert len(completed_attempts(job)) == 1
        assert job["bytes_transferred"] == SIZE
        assert job["sha256"] == sha256_of(source)
        assert sha256_of(destination) == sha256_of(source)
        agent = await cluster.agent(victim)
        assert agent is not None and agent["state"] == "unhealthy" and not agent["connected"]
        # The survivor did the work; nothing else ran anywhere.
        jobs = await cluster.jobs()
        assert list(jobs) == ["moving"]
    finally:
        cluster.stop_everything()
