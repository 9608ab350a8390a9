"""The agent runtime against the real controller process (ControllerServer, standalone
consensus, in-process on loopback), under asyncio and trio: jobs submitted through the
controller's service run on the agent and complete with the right SHA-256; a cancel aborts
the running attempt; a drain lets the transfer finish before the agent deregisters."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from quorus.core.agent import AgentConfig, AgentRuntime
from quorus.core.agentproto import Backoff
from quorus.core.controller import AgentState, AttemptOutcome, JobOptions, JobState
from quorus.core.controller.server import ControllerServer
from quorus.core.secrets import Secret
from quorus.core.testing.controller import TOKEN, controller_address, running_controller
from quorus.core.testing.fixtures import payload_bytes

pytestmark = pytest.mark.anyio

SMALL_CHUNKS = JobOptions(protocol_options={"file.chunk_size": str(64 * 1024)})


async def eventually(condition: object, within: float = 15.0) -> None:
    """Poll ``condition`` (the server's state has no event to wait on)."""
    assert callable(condition)
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - bounded by fail_after
            await anyio.sleep(0.02)


@asynccontextmanager
async def agent_of(
    server: ControllerServer, tmp_path: Path, **settings: object
) -> AsyncIterator[tuple[AgentRuntime, dict[str, str]]]:
    config = AgentConfig(
        controllers=(controller_address(server),), agent_id="agent-1", token=Secret(TOKEN),
        work_dir=tmp_path, max_concurrent=2, backoff=Backoff(initial=0.05, maximum=0.2),
        **settings,  # type: ignore[arg-type]
    )
    runtime = AgentRuntime(config)
    outcome: dict[str, str] = {}

    async def run() -> None:
        outcome["reason"] = await runtime.run()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await eventually(lambda: runtime.controller_id is not None)
        yield runtime, outcome
        if "reason" not in outcome:
            runtime.stop("test over")
        await eventually(lambda: "reason" in outcome)


def source(tmp_path: Path, size: int) -> tuple[Path, str]:
    data = payload_bytes(size, seed=size)
    path = tmp_path / f"in-{size}.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def test_jobs_from_the_controller_complete_with_the_right_sha256(tmp_path: Path) -> None:
    with anyio.fail_after(40):
        async with running_controller(tmp_path / "c") as server, agent_of(server, tmp_path):
            jobs = []
            for n in range(3):
                src, sha = source(tmp_path, (n + 1) * 128 * 1024)
                job = await server.service.submit_job(
                    str(src), str(tmp_path / "out" / f"{n}.bin"),
                    options=JobOptions(checksum=f"sha256:{sha}"),
                )
                jobs.append((job.id, sha, tmp_path / "out" / f"{n}.bin"))
            await eventually(lambda: all(
                server.state.jobs[j].state is JobState.COMPLETED for j, _, _ in jobs
            ))
            agent = server.state.agents["agent-1"]
            assert "file" in agent.capabilities.protocols
            assert agent.capabilities.max_concurrent == 2
    for job_id, sha, path in jobs:
        record = server.state.jobs[job_id]
        assert record.sha256 == sha
        assert [(a.number, a.outcome) for a in record.attempts] == [(1, AttemptOutcome.COMPLETED)]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.bin", "1.bin", "2.bin"]


async def test_cancel_aborts_the_running_attempt(tmp_path: Path) -> None:
    src, _ = source(tmp_path, 1024 * 1024)
    dst = tmp_path / "out" / "cancelled.bin"
    with anyio.fail_after(40):
        async with (
            running_controller(tmp_path / "c") as server,
            agent_of(server, tmp_path, bandwidth_limit=256 * 1024) as (runtime, _),
        ):
            job = await server.service.submit_job(str(src), str(dst), options=SMALL_CHUNKS)
            await eventually(lambda: runtime.session.running)
            await eventually(lambda: dst.parent.exists() and any(dst.parent.iterdir()))
            await server.service.cancel_job(job.id)
            await eventually(lambda: not runtime.session.running and not any(dst.parent.iterdir()))
            assert server.state.jobs[job.id].state is JobState.CANCELLED
    assert not dst.exists()


async def test_drain_lets_the_transfer_finish_then_the_agent_deregisters(tmp_path: Path) -> None:
    src, sha = source(tmp_path, 384 * 1024)
    dst = tmp_path / "out" / "drained.bin"
    with anyio.fail_after(40):
        async with (
            running_controller(tmp_path / "c") as server,
            agent_of(server, tmp_path, bandwidth_limit=256 * 1024) as (runtime, outcome),
        ):
            job = await server.service.submit_job(str(src), str(dst), options=SMALL_CHUNKS)
            await eventually(lambda: runtime.session.running)
            await server.service.drain_agent("agent-1", 20.0)
            await eventually(lambda: "reason" in outcome)
            assert outcome["reason"].startswith("drained")
            await eventually(
                lambda: server.state.agents["agent-1"].state is AgentState.DEREGISTERED
            )
            assert server.state.jobs[job.id].state is JobState.COMPLETED
    assert server.state.jobs[job.id].sha256 == sha
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha
