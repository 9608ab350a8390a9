"""The whole controller quorum killed at once and started again while agents keep working
(three controllers on Raft, two agents, all OS processes): every job and every agent is back
from the controllers' data directories, finished jobs are unchanged, and the unfinished ones
complete exactly once with the right bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from quorus.core.testing.fixtures import payload_bytes

from tests.fleet_cluster import FleetCluster, completed_attempts, sha256_of, wait_for

pytest.importorskip("quorus.raft")
pytestmark = pytest.mark.anyio

JOBS = 6
SIZE = 512 * 1024
JOB_OPTIONS = {"bandwidth_mbps": 4, "protocol_options": {"file.chunk_size": "65536"}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_whole_quorum_restarts_with_its_jobs_and_agents(tmp_path: Path) -> None:
    cluster = FleetCluster(tmp_path)
    sources = {}
    for number in range(JOBS):
        path = tmp_path / "in" / f"f{number}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(payload_bytes(SIZE, seed=200 + number))
        sources[f"job-{number}"] = path
    try:
        cluster.start_all()
        await cluster.leader()
        cluster.start_agent("a1", max_concurrent=1)
        cluster.start_agent("a2", max_concurrent=1)
        await cluster.wait_agents("a1", "a2")
        for job_id, source in sources.items():
            await cluster.submit({"id": job_id, "source": str(source),
                                  "destination": str(tmp_path / "out" / source.name),
                                  **JOB_OPTIONS})

        async def some_done() -> dict[str, dict[str, Any]] | None:
            jobs = await cluster.jobs()
            done = [j for j in jobs.values() if j["state"] == "completed"]
            return jobs if len(done) >= 2 else None

        await wait_for(some_done, 30, "two jobs completed")
        # Nothing is proposed while no controller runs, so this is the state they must
        # come back with (a job may have been assigned since the answer, never finished).
        before = await cluster.jobs()
        agents_before = {a["id"]: a for a in (await cluster.get("/v1/agents"))["agents"]}
        cluster.kill_all()
        unfinished = [j for j, job in before.items() if job["state"] != "completed"]
        assert unfinished, "every job finished before the quorum went down: nothing to test"
        await anyio.sleep(1.0)  # agents lose their controller and keep transferring
        cluster.start_all()
        await cluster.leader()

        after = await cluster.jobs()
        assert sorted(after) == sorted(before)
        for job_id, job in before.items():
            if job["state"] == "completed":
                assert after[job_id] == job, f"finished job {job_id} changed over the restart"
            assert after[job_id]["sequence"] == job["sequence"]
            assert after[job_id]["submitted_at"] == job["submitted_at"]
        agents_after = {a["id"]: a for a in (await cluster.get("/v1/agents"))["agents"]}
        assert sorted(agents_after) == ["a1", "a2"]
        for agent_id, agent in agents_before.items():
            assert agents_after[agent_id]["registered_at"] == agent["registered_at"]
            assert agents_after[agent_id]["capabilities"] == agent["capabilities"]
        await cluster.wait_agents("a1", "a2", within=30)

        async def all_done() -> dict[str, dict[str, Any]] | None:
            jobs = await cluster.jobs()
            return jobs if all(j["state"] == "completed" for j in jobs.values()) else None

        final = await wait_for(all_done, 40, "every job completed after the restart",
                               interval=0.3)
        for job_id, job in final.items():
            assert len(completed_attempts(job)) == 1, f"{job_id}: {job['attempts']}"
            assert job["sha256"] == sha256_of(sources[job_id])
            assert sha256_of(tmp_path / "out" / sources[job_id].name) == job["sha256"]
        status = await cluster.get("/v1/cluster")
        assert sorted(status["members"]) == ["c1", "c2", "c3"]
    finally:
        cluster.stop_everything()
