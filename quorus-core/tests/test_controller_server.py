"""The controller process in-process on loopback (standalone consensus) with scripted agents
speaking the real agent protocol over TCP, under asyncio and trio: a job runs and completes
with the right SHA-256, a silent agent's job moves to another agent, cancel and drain reach
the agent, waiting jobs say why, heartbeats are no consensus writes, state survives a
restart, and bad input on the agent port is refused with nothing recorded."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

import anyio
import msgpack
import pytest
from quorus.core.agentproto import Abort, Drain, Error, ErrorCode, from_wire
from quorus.core.controller import AgentState, AttemptOutcome, JobState
from quorus.core.controller.commands import CompleteAttempt
from quorus.core.controller.results import RejectCode
from quorus.core.controller.server import ControllerServer
from quorus.core.controller.service import CommandRefused, ResourceNotFound
from quorus.core.testing.controller import (
    TOKEN,
    ScriptedAgent,
    controller_address,
    running_controller,
)
from quorus.core.testing.fixtures import payload_bytes
from quorus.core.wire import ConnectionClosedError, FramedStream, Hello

pytestmark = pytest.mark.anyio


async def eventually(condition: Any, seconds: float = 10) -> None:
    """Wait until ``condition()`` holds, polling at most ``seconds``."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"still false after {seconds} s: {condition}")


async def wait_job(server: ControllerServer, job_id: str, *states: JobState) -> Any:
    def reached() -> bool:
        job = server.state.job(job_id)
        return job is not None and job.state in states

    await eventually(reached)
    return server.state.jobs[job_id]


def source_file(tmp_path: Path, name: str = "in.bin", size: int = 256 * 1024) -> Path:
    path = tmp_path / name
    path.write_bytes(payload_bytes(size, seed=len(name)))
    return path


async def test_an_agent_runs_a_job_to_completion_with_the_right_sha256(tmp_path: Path) -> None:
    source = source_file(tmp_path)
    target = tmp_path / "out.bin"
    async with running_controller(tmp_path / "c") as server, anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-1", [controller_address(server)])
        tg.start_soon(agent.run)
        with anyio.fail_after(10):
            await agent.registered.wait()
        job = await server.service.submit_job(str(source), str(target))
        done = await wait_job(server, job.id, JobState.COMPLETED)
        assert done.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert done.bytes_transferred == source.stat().st_size
        assert target.read_bytes() == source.read_bytes()
        assert [(a.number, a.agent_id, a.outcome) for a in done.attempts] == [
            (1, "agent-1", AttemptOutcome.COMPLETED)
        ]
        await agent.wait_for(lambda: any(a.accepted for a in agent.acks))
        view = server.service.agent_view(server.state.agents["agent-1"])
        assert view["connected"] is True
        assert view["last_heartbeat"] is not None
        agent.kill()


async def test_heartbeats_are_soft_state_not_consensus_writes(tmp_path: Path) -> None:
    # Core alone: an installed audit extension records the registration's authorization in
    # a batch up to 0.5 s later, a write that is not the heartbeats'.
    async with running_controller(tmp_path / "c", extensions=[]) as server, \
            anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-1", [controller_address(server)])
        tg.start_soon(agent.run)
        with anyio.fail_after(10):
            await agent.registered.wait()
        await anyio.sleep(0.1)
        index = server.state.applied_index
        first = server.soft.reports.get("agent-1")
        await anyio.sleep(0.7)  # three heartbeat intervals or more
        report = server.soft.reports["agent-1"]
        assert first is None or report.sequence > first.sequence
        assert report.sequence >= 3
        assert server.state.applied_index == index
        agent.kill()


async def test_a_silent_agents_job_is_reassigned_with_the_next_attempt(tmp_path: Path) -> None:
    source = source_file(tmp_path)
    target = tmp_path / "out.bin"
    async with running_controller(tmp_path / "c") as server, anyio.create_task_group() as tg:
        holder = ScriptedAgent("agent-a", [controller_address(server)], mode="hold")
        tg.start_soon(holder.run)
        with anyio.fail_after(10):
            await holder.registered.wait()
        job = await server.service.submit_job(str(source), str(target))
        await wait_job(server, job.id, JobState.RUNNING)
        holder.kill()
        worker = ScriptedAgent("agent-b", [controller_address(server)])
        tg.start_soon(worker.run)
        done = await wait_job(server, job.id, JobState.COMPLETED)
        assert [(a.number, a.agent_id, a.outcome) for a in done.attempts] == [
            (1, "agent-a", AttemptOutcome.LOST), (2, "agent-b", AttemptOutcome.COMPLETED)
        ]
        assert server.state.agents["agent-a"].state is AgentState.UNHEALTHY
        assert done.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        worker.kill()


async def test_a_stale_attempts_late_completion_is_refused(tmp_path: Path) -> None:
    source = source_file(tmp_path)
    async with running_controller(tmp_path / "c") as server, anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-1", [controller_address(server)], mode="hold")
        tg.start_soon(agent.run)
        with anyio.fail_after(10):
            await agent.registered.wait()
        job = await server.service.submit_job(str(source), str(tmp_path / "out.bin"))
        await wait_job(server, job.id, JobState.RUNNING)
        await server.service.cancel_job(job.id, "changed my mind")
        await agent.wait_for(lambda: any(isinstance(f, Abort) for f in agent.frames))
        assert agent.aborted == [(job.id, 1)]
        assert server.state.jobs[job.id].state is JobState.CANCELLED
        before = server.state.jobs[job.id]
        with pytest.raises(CommandRefused) as refused:
            await server.propose(CompleteAttempt(job.id, "agent-1", 1, 0.0, 1, "0" * 64))
        assert refused.value.rejected.code is RejectCode.STALE_ATTEMPT
        assert server.state.jobs[job.id] == before
        agent.kill()


async def test_drain_reaches_the_agent_which_deregisters(tmp_path: Path) -> None:
    async with running_controller(tmp_path / "c") as server, anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-1", [controller_address(server)])
        tg.start_soon(agent.run)
        with anyio.fail_after(10):
            await agent.registered.wait()
        record = await server.service.drain_agent("agent-1", 5.0)
        assert record.state in (AgentState.DRAINING, AgentState.DEREGISTERED)
        with anyio.fail_after(10):
            await agent.stopped.wait()
        assert any(isinstance(f, Drain) for f in agent.frames)
        assert server.state.agents["agent-1"].state is AgentState.DEREGISTERED
        with pytest.raises(ResourceNotFound):
            await server.service.drain_agent("nobody")


async def test_jobs_no_agent_can_run_wait_with_a_reason(tmp_path: Path) -> None:
    async with running_controller(tmp_path / "c") as server, anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-1", [controller_address(server)])
        tg.start_soon(agent.run)
        with anyio.fail_after(10):
            await agent.registered.wait()
        job = await server.service.submit_job("sftp://host/a", str(tmp_path / "b"))
        await eventually(lambda: server.soft.waiting.get(job.id) is not None)
        view = server.service.job_view(server.state.jobs[job.id])
        assert view["waiting_reason"] == "no agent supports sftp"
        assert view["state"] == "queued"
        assert agent.assigns() == []
        agent.kill()


async def test_rounds_plan_nothing_while_the_queue_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every result, start and registration wakes the scheduler; planning looks at every
    # connected agent, so on a large fleet a round with nothing queued must cost nothing.
    import quorus.core.controller.server as server_module

    planned: list[int] = []
    real_schedule = server_module.schedule

    def counting_schedule(state: Any, *args: Any, **kwargs: Any) -> Any:
        planned.append(state.queue_length)
        return real_schedule(state, *args, **kwargs)

    monkeypatch.setattr(server_module, "schedule", counting_schedule)
    source = source_file(tmp_path)
    async with running_controller(tmp_path / "c") as server, anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-1", [controller_address(server)])
        tg.start_soon(agent.run)
        with anyio.fail_after(10):
            await agent.registered.wait()
        for _ in range(5):
            server.wake_scheduler()
            await anyio.sleep(0.02)
        assert await server.schedule_round() == 0
        assert planned == []
        job = await server.service.submit_job(str(source), str(tmp_path / "out.bin"))
        await wait_job(server, job.id, JobState.COMPLETED)
        assert planned and all(queued > 0 for queued in planned)
        assert server.soft.waiting == {}
        agent.kill()


async def test_listing_filters_and_pages_with_a_cursor(tmp_path: Path) -> None:
    async with running_controller(tmp_path / "c") as server:
        service = server.service
        ids = [(await service.submit_job(f"/data/{i}", f"/out/{i}", namespace="a" if i % 2
                                         else "b")).id for i in range(7)]
        page = await service.list_jobs(limit=3)
        seen = [j.id for j in page.jobs]
        while page.next_cursor:
            page = await service.list_jobs(limit=3, cursor=page.next_cursor)
            seen += [j.id for j in page.jobs]
        assert seen == ids
        odd = await service.list_jobs(namespace="a")
        assert [j.id for j in odd.jobs] == ids[1::2]
        assert (await service.list_jobs(state=JobState.COMPLETED)).jobs == ()


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    async with running_controller(tmp_path / "c") as server:
        job = await server.service.submit_job("/data/x", "/out/x", job_id="keep-me")
    async with running_controller(tmp_path / "c") as again:
        kept = await again.service.get_job("keep-me")
        assert kept.source_display == "/data/x"
        assert kept.sequence == job.sequence


async def _raw_exchange(server: ControllerServer, frames: list[bytes]) -> list[Any]:
    host, port = server.settings.listen_agents.rsplit(":", 1)
    stream = await anyio.connect_tcp(host, int(port))
    framed = FramedStream(stream)
    received: list[Any] = []
    async with stream:
        for frame in frames:
            await stream.send(frame)
        with anyio.fail_after(5):
            try:
                while True:
                    received.append(from_wire(await framed.receive()))
            except ConnectionClosedError:
                pass
    return received


def frame(value: Any) -> bytes:
    body: bytes = msgpack.packb(value, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def hello(token: str = TOKEN, versions: tuple[int, ...] = (1,)) -> bytes:
    return frame(Hello("quorus-agent", versions, "intruder", "token", {"token": token}).to_wire())


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param([hello("wrong-token")], ErrorCode.UNAUTHORIZED, id="bad-token"),
        pytest.param([hello(versions=(9,))], ErrorCode.VERSION, id="wrong-version"),
        pytest.param([struct.pack(">I", 3) + b"\xc1\xc1\xc1"], ErrorCode.MALFORMED,
                     id="not-msgpack"),
        pytest.param([struct.pack(">I", 50 << 20)], ErrorCode.MALFORMED, id="oversized"),
        pytest.param([frame({"type": "register"})], ErrorCode.MALFORMED, id="bad-message"),
        pytest.param([hello(), frame({"type": "heartbeat-ack", "sequence": 1})],
                     ErrorCode.PROTOCOL, id="out-of-order"),
    ],
)
async def test_bad_input_on_the_agent_port_is_refused_and_nothing_recorded(
    tmp_path: Path, frames: list[bytes], code: ErrorCode
) -> None:
    async with running_controller(tmp_path / "c") as server:
        before = server.state.applied_index
        received = await _raw_exchange(server, frames)
        assert isinstance(received[-1], Error)
        assert received[-1].code is code
        assert server.state.applied_index == before
        assert dict(server.state.agents) == {}


async def test_a_round_is_planned_while_an_earlier_rounds_assignments_are_being_committed(
        tmp_path: Path) -> None:
    # The first round's consensus write is held back; a job submitted meanwhile is planned,
    # committed and pushed by the next round without waiting for it, on the slot left free,
    # and no job is assigned twice.
    from quorus.core.controller.commands import AssignJob

    async with running_controller(tmp_path / "c") as server, anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-1", [controller_address(server)], mode="hold",
                              max_concurrent=3)
        tg.start_soon(agent.run)
        with anyio.fail_after(10):
            await agent.registered.wait()
        real = server.propose_all
        release = anyio.Event()
        rounds: list[list[str]] = []

        async def held_first_round(commands: Any) -> Any:
            assignments = [c.job_id for c in commands if isinstance(c, AssignJob)]
            if assignments:
                rounds.append(assignments)
                if len(rounds) == 1:
                    await release.wait()
            return await real(commands)

        server.propose_all = held_first_round  # type: ignore[method-assign]
        sources = [source_file(tmp_path, f"in{i}.bin", 1024) for i in range(4)]
        first = [await server.service.submit_job(str(sources[i]), str(tmp_path / f"o{i}"))
                 for i in range(2)]
        await eventually(lambda: rounds)
        # A round may have taken one job or both before the second was submitted.
        late = [await server.service.submit_job(str(sources[i]), str(tmp_path / f"o{i}"))
                for i in range(2, 4)]
        jobs = [j.id for j in first + late]
        held = set(rounds[0])
        # The agent has 3 slots, the held round holds len(held) of them: the next round
        # places exactly the rest while the first is still uncommitted.
        await eventually(lambda: sum(1 for j in jobs if server.state.jobs[j].state
                                     in (JobState.ASSIGNED, JobState.RUNNING)) == 3 - len(held))
        assert all(server.state.jobs[j].state is JobState.QUEUED for j in held)
        release.set()
        await eventually(lambda: sum(1 for j in jobs if server.state.jobs[j].state
                                     in (JobState.ASSIGNED, JobState.RUNNING)) == 3)
        placed = [j for r in rounds for j in r]
        assert len(placed) == len(set(placed))  # no job proposed for assignment twice
        waiting = next(j for j in jobs if server.state.jobs[j].state is JobState.QUEUED)
        await eventually(lambda: waiting in server.soft.waiting)
        assert server.soft.waiting[waiting] == "the one agent that supports file is full"
        await eventually(lambda: len(agent.assigns()) >= 3)
        assert sorted(a.job_id for a in agent.assigns()) == sorted(set(jobs) - {waiting})
        agent.kill()
