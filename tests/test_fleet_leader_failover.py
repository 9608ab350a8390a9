"""The leader controller killed with ``kill -9`` twice while a client submits jobs and agents
run them (three controllers on Raft, two agents, all OS processes). The client submits every job
under its own id and, on any error, retries the same submission on the next controller, as a
client that knows the quorum does. Every acknowledged submission completes, none is lost and
none completes twice; each destination holds its source's bytes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from quorus.core.testing.fixtures import payload_bytes

from tests.fleet_cluster import AUTH, FleetCluster, completed_attempts, sha256_of, wait_for

pytest.importorskip("quorus.raft")
pytestmark = pytest.mark.anyio

JOBS = 14
SIZE = 512 * 1024
#: About a second per job at 4 Mbit/s, so transfers are running when the leader dies.
JOB_OPTIONS = {"bandwidth_mbps": 4, "protocol_options": {"file.chunk_size": "65536"}}
#: The leader is killed right after these submissions; the first one killed is back
#: before the second kill.
KILL_AT = (4, 9)
RESTART_AT = 6


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def submit_until_acknowledged(cluster: FleetCluster, body: dict[str, Any],
                                    retries: list[str]) -> dict[str, Any]:
    """POST the job to each running controller in turn until one answers 201 (at most 30 s);
    every failed try is noted in ``retries``."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(headers=AUTH, timeout=5.0) as client:
        while time.monotonic() < deadline:
            for node_id in list(cluster.controllers):
                try:
                    answer = await client.post(f"http://{cluster.http[node_id]}/v1/jobs",
                                               json=body)
                except httpx.HTTPError as exc:
                    retries.append(f"{body['id']} on {node_id}: {type(exc).__name__}")
                    continue
                if answer.status_code == 201:
                    return dict(answer.json())
                assert answer.status_code >= 500, f"{body['id']}: {answer.status_code} {answer.text}"
                retries.append(f"{body['id']} on {node_id}: {answer.status_code}")
            await anyio.sleep(0.1)
    raise AssertionError(f"submission {body['id']} never acknowledged: {retries[-5:]}")


async def test_killing_the_leader_while_submitting_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    cluster = FleetCluster(tmp_path)
    sources = {}
    for number in range(JOBS):
        path = tmp_path / "in" / f"f{number:02}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(payload_bytes(SIZE, seed=100 + number))
        sources[f"job-{number:02}"] = path
    acknowledged: dict[str, dict[str, Any]] = {}
    retries: list[str] = []
    try:
        cluster.start_all()
        await cluster.leader()
        cluster.start_agent("a1")
        cluster.start_agent("a2")
        await cluster.wait_agents("a1", "a2")

        killed: list[str] = []

        async def on_agents() -> list[str] | None:
            jobs_now = await cluster.jobs()
            return [j for j, v in jobs_now.items()
                    if v["state"] in ("assigned", "running")] or None

        for number, (job_id, source) in enumerate(sources.items()):
            if number == RESTART_AT:
                cluster.start(killed[0])  # back as a follower; it catches up from the log
            leader = await cluster.leader() if number in KILL_AT else None
            body = {"id": job_id, "source": str(source),
                    "destination": str(tmp_path / "out" / source.name), **JOB_OPTIONS}
            acknowledged[job_id] = await submit_until_acknowledged(cluster, body, retries)
            if leader is not None:
                # Killed while transfers run, not between them.
                await wait_for(on_agents, 10, "a transfer running on an agent")
                cluster.kill(leader)
                killed.append(leader)
            await anyio.sleep(0.15)
        cluster.start(killed[1])

        seen: dict[str, dict[str, Any]] = {}

        async def all_finished() -> dict[str, dict[str, Any]] | None:
            seen.update(await cluster.jobs())
            return seen if all(j["state"] == "completed" for j in seen.values()) else None

        try:
            jobs = await wait_for(all_finished, 60, "every job completed", interval=0.3)
        except AssertionError:
            unfinished = {j: (v["state"], v["attempts"]) for j, v in seen.items()
                          if v["state"] != "completed"}
            raise AssertionError(f"jobs not completed: {unfinished}") from None
        assert sorted(jobs) == sorted(acknowledged), "a job was lost or one appeared twice"
        for job_id, job in jobs.items():
            done = completed_attempts(job)
            assert len(done) == 1, f"{job_id} completed {len(done)} times: {job['attempts']}"
            assert done[0]["number"] == job["attempt"]
            assert job["sha256"] == sha256_of(sources[job_id]), job_id
            assert sha256_of(tmp_path / "out" / sources[job_id].name) == job["sha256"]
        # The restarted controllers have the same jobs in their replicas.
        await cluster.leader()
        for node_id in killed:

            async def replica_caught_up(node_id: str = node_id) -> bool:
                answer = await cluster.request("GET", "/v1/jobs", only=[node_id],
                                               params={"consistent": "false", "limit": 1000})
                assert answer is not None and answer.status_code == 200
                states = {j["id"]: j["state"] for j in answer.json()["jobs"]}
                return states == {j: "completed" for j in acknowledged}

            await wait_for(replica_caught_up, 20, f"the replica of {node_id}")
    finally:
        cluster.stop_everything()
