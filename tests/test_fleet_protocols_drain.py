"""Agents with different protocol plugins only receive the jobs they can run, and a drained
agent finishes its job, takes no new one and deregisters (three controllers on Raft, agents
as OS processes, a real nginx serving the HTTP sources).

``files`` advertises only ``file``; ``web`` advertises ``file`` and ``http``. Every job
reading over HTTP runs on ``web`` even while it is busy and ``files`` is idle; a job reading
over ``sftp`` (no agent advertises it) waits, and says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from quorus.core.testing.fixtures import missing_server, payload_bytes

from tests.fleet_cluster import FleetCluster, completed_attempts, sha256_of, wait_for

pytest.importorskip("quorus.raft")
http_testing = pytest.importorskip("quorus.protocols.http.testing")
pytestmark = pytest.mark.anyio

WEB_JOBS = 3
SIZE = 256 * 1024
SLOW = {"bandwidth_mbps": 2, "protocol_options": {"file.chunk_size": "65536"}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def nginx(tmp_path: Path) -> Any:
    if (why := http_testing.nginx_available()) is not None:
        missing_server(why)
    with http_testing.running_nginx(tmp_path / "nginx") as server:
        yield server


async def test_jobs_go_only_to_agents_that_speak_their_protocols(
    tmp_path: Path, nginx: Any
) -> None:
    cluster = FleetCluster(tmp_path)
    expected = {}
    for number in range(WEB_JOBS):
        data = payload_bytes(SIZE, seed=300 + number)
        (nginx.www / "public" / f"h{number}.bin").write_bytes(data)
        expected[f"web-{number}"] = sha256_of(nginx.www / "public" / f"h{number}.bin")
    try:
        cluster.start_all()
        await cluster.leader()
        cluster.start_agent("files", protocols=["file"], max_concurrent=2)
        cluster.start_agent("web", protocols=["file", "http"], max_concurrent=1)
        await cluster.wait_agents("files", "web")
        for number in range(WEB_JOBS):
            await cluster.submit({
                "id": f"web-{number}", "source": nginx.url(f"/public/h{number}.bin"),
                "destination": str(tmp_path / "out" / f"h{number}.bin"),
                "bandwidth_mbps": 2,
            })
        await cluster.submit({"id": "nowhere", "source": "sftp://127.0.0.1:9/srv/x.bin",
                              "destination": str(tmp_path / "out" / "x.bin")})

        async def web_done() -> dict[str, dict[str, Any]] | None:
            jobs = await cluster.jobs()
            web = {j: v for j, v in jobs.items() if j.startswith("web-")}
            return jobs if all(v["state"] == "completed" for v in web.values()) else None

        jobs = await wait_for(web_done, 40, "every HTTP job completed", interval=0.2)
        for job_id, sha in expected.items():
            job = jobs[job_id]
            assert [a["agent_id"] for a in job["attempts"]] == ["web"], job["attempts"]
            assert len(completed_attempts(job)) == 1
            assert job["sha256"] == sha
            assert sha256_of(tmp_path / "out" / f"h{job_id[-1]}.bin") == sha

        waiting = await cluster.job("nowhere")
        assert waiting["state"] == "queued" and waiting["attempts"] == []
        assert waiting["waiting_reason"] and "sftp" in waiting["waiting_reason"]
        files = await cluster.agent("files")
        assert files is not None and files["running_jobs"] == []
        listed = await cluster.get("/v1/jobs", agent="files")
        assert listed["jobs"] == [], "the file-only agent was given a job"
    finally:
        cluster.stop_everything()


async def test_a_drained_agent_finishes_its_job_takes_no_new_one_and_deregisters(
    tmp_path: Path,
) -> None:
    cluster = FleetCluster(tmp_path)
    sources = {}
    for name in ("long", "after"):
        sources[name] = tmp_path / "in" / f"{name}.bin"
        sources[name].parent.mkdir(exist_ok=True)
        sources[name].write_bytes(payload_bytes(1024 * 1024, seed=len(name)))

    def job(name: str) -> dict[str, Any]:
        return {"id": name, "source": str(sources[name]),
                "destination": str(tmp_path / "out" / f"{name}.bin"),
                "affinity": ["role=mover"], **SLOW}

    try:
        cluster.start_all()
        await cluster.leader()
        cluster.start_agent("mover-1", extra=["--label", "role=mover"])
        await cluster.wait_agents("mover-1")
        await cluster.submit(job("long"))

        async def moving() -> dict[str, Any] | None:
            current = await cluster.job("long")
            progress = current["progress"]
            return current if progress and progress["bytes_done"] > 0 else None

        await wait_for(moving, 20, "the long job moving")
        drained = await cluster.request("POST", "/v1/agents/mover-1/drain",
                                        json={"timeout": 30})
        assert drained is not None and drained.status_code == 200, drained
        assert drained.json()["state"] == "draining"
        await cluster.submit(job("after"))

        async def deregistered() -> dict[str, Any] | None:
            agent = await cluster.agent("mover-1")
            return agent if agent and agent["state"] == "deregistered" else None

        await wait_for(deregistered, 30, "mover-1 deregistered")
        long = await cluster.job("long")
        assert long["state"] == "completed"
        assert [(a["number"], a["agent_id"], a["outcome"]) for a in long["attempts"]] == [
            (1, "mover-1", "completed")]
        assert sha256_of(tmp_path / "out" / "long.bin") == sha256_of(sources["long"])
        after = await cluster.job("after")
        assert after["state"] == "queued" and after["attempts"] == [], after
        assert after["waiting_reason"]
        exit_code = await wait_for(
            lambda: _returned(cluster.agent_exit("mover-1")), 15, "mover-1 to exit")
        assert exit_code == 0, cluster.agent_log("mover-1")[-2000:]

        # The queued job was not lost: a new agent with the label runs it.
        cluster.start_agent("mover-2", extra=["--label", "role=mover"])
        done = await cluster.wait_job("after", ["completed"], within=30)
        assert [a["agent_id"] for a in done["attempts"]] == ["mover-2"]
        assert sha256_of(tmp_path / "out" / "after.bin") == sha256_of(sources["after"])
    finally:
        cluster.stop_everything()


async def _returned(code: int | None) -> int | None:
    return code
