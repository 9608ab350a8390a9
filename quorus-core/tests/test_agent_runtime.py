"""The agent runtime against a controller made of the real ControllerSession, ControllerState
and scheduler over loopback TCP (quorus.core.agent.testing), under asyncio and trio:
registration, heartbeats, a verified file transfer with progress, a failing transfer, an
abort, a redirect to the leader, a controller restart mid-transfer, a drain, and bad input
from a controller."""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from quorus.core.agent import AgentConfig, AgentRuntime, parse_controllers
from quorus.core.agent.testing import LoopbackController
from quorus.core.agentproto import (
    AgentDeregistering,
    AgentLocation,
    AttemptCompleted,
    AttemptFailed,
    Backoff,
    ControllerAddress,
    Error,
    ErrorCode,
    HeartbeatReceived,
    ProgressReported,
    RegistrationRequested,
    from_wire,
)
from quorus.core.controller import ExpireAgent, JobOptions, JobState
from quorus.core.secrets import Secret
from quorus.core.testing.fixtures import free_port, payload_bytes
from quorus.core.wire import ConnectionClosedError, FramedStream, Hello
from quorus.core.wire.framing import HEADER

pytestmark = pytest.mark.anyio

TOKEN = "agent-runtime-token"
#: Small reads, so a bandwidth-limited transfer reports progress all along (a per-job
#: protocol option: the agent runs such a job with protocol instances of its own).
SMALL_CHUNKS = JobOptions(protocol_options={"file.chunk_size": str(64 * 1024)})


def midway(controller: LoopbackController) -> bool:
    """Some progress reported, not yet all of it."""
    return any(
        0 < a.progress.bytes_done < (a.progress.total_bytes or 0)
        for a in controller.seen(ProgressReported)
    )


def config_for(tmp_path: Path, *controllers: ControllerAddress, **settings: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "controllers": parse_controllers([c.address for c in controllers]),
        "agent_id": "agent-1",
        "token": Secret(TOKEN),
        "work_dir": tmp_path / "work",
        "max_concurrent": 2,
        "location": AgentLocation("dc1", "z1", "eu", ("rack-7",)),
        "labels": {"tier": "gold"},
        "backoff": Backoff(initial=0.05, maximum=0.2),
        "drain_timeout": 10.0,
    }
    values.update(settings)
    (tmp_path / "work").mkdir(exist_ok=True)
    return AgentConfig(**values)


def source_file(tmp_path: Path, size: int, name: str = "in.bin") -> tuple[Path, str]:
    data = payload_bytes(size, seed=size)
    path = tmp_path / "src" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Staging and partial files an attempt left behind."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@asynccontextmanager
async def running(
    config: AgentConfig, *controllers: LoopbackController
) -> AsyncIterator[tuple[AgentRuntime, anyio.abc.TaskGroup, dict[str, str]]]:
    """The controllers serving and the agent running; the agent is stopped on the way out
    (unless it stopped itself: its reason is in the dict)."""
    outcome: dict[str, str] = {}
    runtime = AgentRuntime(config)

    async def run_agent() -> None:
        outcome["reason"] = await runtime.run()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for controller in controllers:
                await controller.start(tg)
            tg.start_soon(run_agent)
            yield runtime, tg, outcome
            if "reason" not in outcome:
                runtime.stop("test over")
                await _wait(lambda: "reason" in outcome)
            for controller in controllers:
                await controller.stop()


async def _wait(condition: Any, within: float = 10.0) -> None:
    """Poll ``condition`` (file system and runtime state have no event to wait on)."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - bounded by fail_after
            await anyio.sleep(0.01)


def controller(cid: str = "c1", **settings: Any) -> LoopbackController:
    return LoopbackController(cid, TOKEN, free_port(), **settings)


async def test_registers_heartbeats_and_completes_a_verified_transfer(tmp_path: Path) -> None:
    c1 = controller()
    src, sha = source_file(tmp_path, 768 * 1024)
    dst = tmp_path / "out" / "copy.bin"
    async with running(config_for(tmp_path, c1.address), c1) as (runtime, _, _):
        (request,) = await c1.wait_for(lambda: c1.seen(RegistrationRequested))
        register = request.register
        assert register.agent_id == "agent-1"
        assert "file" in register.capabilities.protocols
        assert register.capabilities.max_concurrent_transfers == 2
        assert register.location == AgentLocation("dc1", "z1", "eu", ("rack-7",))
        assert dict(register.labels) == {"tier": "gold"}
        assert register.resources.cpu.cores >= 1
        assert register.resources.storage.total_gb > 0
        await c1.wait_for(lambda: len(c1.seen(HeartbeatReceived)) >= 2)

        job_id = await c1.submit(str(src), str(dst), options=JobOptions(checksum=f"sha256:{sha}"))
        await c1.wait_for(lambda: c1.job(job_id).state is JobState.COMPLETED)
        assert runtime.controller_id == "c1"

    job = c1.job(job_id)
    assert (job.sha256, job.bytes_transferred, job.attempt) == (sha, 768 * 1024, 1)
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha
    assert leftovers(dst.parent) == []
    (completed,) = [a.completed for a in c1.seen(AttemptCompleted)]
    assert (completed.job_id, completed.attempt, completed.sha256) == (job_id, 1, sha)
    assert isinstance(completed.duration, float) and math.isfinite(completed.duration)
    progress = [a.progress for a in c1.seen(ProgressReported)]
    assert progress[-1].bytes_done == progress[-1].total_bytes == 768 * 1024
    beats = [a.heartbeat for a in c1.seen(HeartbeatReceived)]
    assert [b.sequence for b in beats] == list(range(1, len(beats) + 1))
    assert beats[-1].metrics.transfers.completed in (0, 1)
    assert all(b.available_capacity <= 2 for b in beats)


async def test_a_failing_transfer_is_reported_failed(tmp_path: Path) -> None:
    c1 = controller()
    async with running(config_for(tmp_path, c1.address), c1):
        await c1.wait_for(lambda: c1.seen(RegistrationRequested))
        job_id = await c1.submit(str(tmp_path / "missing.bin"), str(tmp_path / "out.bin"))
        await c1.wait_for(lambda: c1.job(job_id).state is JobState.FAILED)
        await c1.wait_for(lambda: any(
            a.heartbeat.metrics.transfers.failed == 1 for a in c1.seen(HeartbeatReceived)
        ))
    (failed,) = [a.failed for a in c1.seen(AttemptFailed)]
    assert failed.error_type == "NotFoundError"
    assert failed.retryable is False
    assert "missing.bin" in failed.message
    assert "NotFoundError" in (c1.job(job_id).error or "")
    assert not (tmp_path / "out.bin").exists()


async def test_abort_stops_a_running_transfer_and_removes_its_files(tmp_path: Path) -> None:
    c1 = controller()
    src, _ = source_file(tmp_path, 1024 * 1024)
    dst = tmp_path / "out" / "slow.bin"
    config = config_for(tmp_path, c1.address, bandwidth_limit=256 * 1024)  # about 4 s
    async with running(config, c1) as (runtime, _, _):
        await c1.wait_for(lambda: c1.seen(RegistrationRequested))
        job_id = await c1.submit(str(src), str(dst), options=SMALL_CHUNKS)
        await c1.wait_for(lambda: midway(c1))
        assert leftovers(dst.parent)  # the attempt's staging partial is being written
        result = await c1.cancel(job_id)
        assert result.ok
        await _wait(lambda: not runtime.session.running and not leftovers(dst.parent))
        # the next heartbeat no longer lists the attempt
        seen = len(c1.seen(HeartbeatReceived))
        await c1.wait_for(lambda: len(c1.seen(HeartbeatReceived)) > seen)
        assert c1.seen(HeartbeatReceived)[-1].heartbeat.current_jobs == ()
    assert c1.job(job_id).state is JobState.CANCELLED
    assert not dst.exists()
    assert c1.seen(AttemptCompleted) == [] and c1.seen(AttemptFailed) == []


async def test_follows_a_redirect_to_the_leader(tmp_path: Path) -> None:
    leader = controller("leader")
    follower = controller("follower", leader=leader.address)
    leader.peers = [follower.address]
    async with running(config_for(tmp_path, follower.address), follower, leader) as (runtime, _, _):
        await leader.wait_for(lambda: leader.seen(HeartbeatReceived))
        assert runtime.controller_id == "leader"
    assert follower.connections >= 1
    assert follower.state.agents == {}  # the follower recorded nothing
    assert "agent-1" in leader.state.agents
    # The quorum the leader named is now known to the agent.
    known = {c.controller_id for c in runtime.session.directory.controllers}
    assert {"leader", "follower"} <= known


async def test_reconnects_after_the_controller_restarts_and_finishes_the_job(
    tmp_path: Path,
) -> None:
    c1 = controller()
    src, sha = source_file(tmp_path, 512 * 1024)
    dst = tmp_path / "out" / "survivor.bin"
    config = config_for(tmp_path, c1.address, bandwidth_limit=256 * 1024)  # about 2 s
    async with running(config, c1) as (_, tg, _):
        await c1.wait_for(lambda: c1.seen(RegistrationRequested))
        job_id = await c1.submit(str(src), str(dst), options=SMALL_CHUNKS)
        await c1.wait_for(lambda: midway(c1))
        await c1.stop()  # crash: connections dropped, state kept (it is durable)
        await anyio.sleep(0.3)
        await c1.start(tg)
        registrations = await c1.wait_for(
            lambda: (r := c1.seen(RegistrationRequested)) and len(r) >= 2 and r
        )
        # It came back still holding the attempt, which the controller let it keep.
        assert [(j.job_id, j.attempt) for j in registrations[1].register.current_jobs] == [
            (job_id, 1)
        ]
        await c1.wait_for(lambda: c1.job(job_id).state is JobState.COMPLETED)
    assert c1.job(job_id).sha256 == sha
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha
    beats = [a.heartbeat.sequence for a in c1.seen(HeartbeatReceived)]
    assert beats == sorted(set(beats))  # sequence numbers keep rising across connections


async def test_a_drain_lets_the_transfer_finish_then_deregisters(tmp_path: Path) -> None:
    c1 = controller()
    src, sha = source_file(tmp_path, 384 * 1024)
    dst = tmp_path / "out" / "drained.bin"
    config = config_for(tmp_path, c1.address, bandwidth_limit=256 * 1024)  # about 1.5 s
    async with running(config, c1) as (runtime, _, outcome):
        await c1.wait_for(lambda: c1.seen(RegistrationRequested))
        job_id = await c1.submit(str(src), str(dst), options=SMALL_CHUNKS)
        await c1.wait_for(lambda: midway(c1))
        await c1.drain("agent-1", 10.0)
        await _wait(lambda: "reason" in outcome)
        # A job submitted during the drain is not taken.
        assert runtime.session.drain_deadline is not None
    assert outcome["reason"].startswith("drained")
    kinds = [type(e).__name__ for e in c1.log if isinstance(e, AttemptCompleted | AgentDeregistering)]
    assert kinds == ["AttemptCompleted", "AgentDeregistering"]
    assert c1.job(job_id).state is JobState.COMPLETED
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha


class BadController:
    """A controller that answers the agent's hello with ``reply`` (raw bytes) and records what
    the agent sends back before the connection closes."""

    def __init__(self, reply: bytes) -> None:
        self.port = free_port()
        self.reply = reply
        self.received: list[Any] = []
        self.closed = anyio.Event()

    @property
    def address(self) -> ControllerAddress:
        return ControllerAddress("bad", f"127.0.0.1:{self.port}")

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        async with listener:
            task_status.started()
            await listener.serve(self._one)

    async def _one(self, stream: anyio.abc.SocketStream) -> None:
        framed = FramedStream(stream)
        async with stream:
            self.received.append(from_wire(await framed.receive()))  # the hello
            await stream.send(self.reply)
            try:
                with anyio.fail_after(5):
                    while True:
                        self.received.append(from_wire(await framed.receive()))
            except ConnectionClosedError:
                self.closed.set()


def _frame(value: Any) -> bytes:
    from quorus.core.wire import encode_frame

    return encode_frame(value)


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (HEADER.pack(3) + b"\xc1\xc1\xc1", ErrorCode.MALFORMED),  # not msgpack
        (HEADER.pack(2**31), ErrorCode.MALFORMED),  # beyond the frame limit
        (_frame({"type": "no-such-message"}), ErrorCode.MALFORMED),
        (_frame(Hello("quorus-agent", (9,), "bad").to_wire()), ErrorCode.VERSION),
        (_frame({"type": "heartbeat-ack", "sequence": 1}), ErrorCode.PROTOCOL),
    ],
    ids=["garbage", "oversized", "unknown-type", "wrong-version", "out-of-order"],
)
async def test_bad_input_from_a_controller_closes_the_connection_and_the_agent_reconnects(
    tmp_path: Path, reply: bytes, code: ErrorCode
) -> None:
    bad = BadController(reply)
    good = controller("good")
    config = config_for(tmp_path, bad.address, good.address)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(bad.serve)
            async with running(config, good) as (runtime, _, _):
                await good.wait_for(lambda: good.seen(HeartbeatReceived))
                with anyio.fail_after(5):
                    await bad.closed.wait()
                assert runtime.controller_id == "good"
            tg.cancel_scope.cancel()
    hello, *rest = bad.received
    assert isinstance(hello, Hello) and hello.node_id == "agent-1"
    assert len(rest) == 1 and isinstance(rest[0], Error)
    assert rest[0].code is code


async def test_a_wrong_token_is_refused_and_the_agent_keeps_trying(tmp_path: Path) -> None:
    c1 = controller()
    config = config_for(tmp_path, c1.address, token=Secret("not-the-token"))
    async with running(config, c1) as (runtime, _, _):
        await c1.wait_for(lambda: sum(isinstance(e, Exception) for e in c1.log) >= 2)
        assert runtime.controller_id is None
    refusals = [e for e in c1.log if isinstance(e, Exception)]
    assert all("credentials refused" in str(e) for e in refusals)
    assert "not-the-token" not in " ".join(str(e) for e in refusals)
    assert c1.state.agents == {}


async def test_an_attempt_that_moved_while_away_is_aborted_and_the_next_one_completes(
    tmp_path: Path,
) -> None:
    """The agent's attempt 1 is taken back while it cannot reach the controller; when it
    comes back it is told to abort attempt 1, gets attempt 2, and only attempt 2 completes."""
    c1 = controller()
    src, sha = source_file(tmp_path, 512 * 1024)
    dst = tmp_path / "out" / "moved.bin"
    config = config_for(tmp_path, c1.address, bandwidth_limit=256 * 1024)
    async with running(config, c1) as (runtime, tg, _):
        await c1.wait_for(lambda: c1.seen(RegistrationRequested))
        job_id = await c1.submit(str(src), str(dst), options=SMALL_CHUNKS)
        await c1.wait_for(lambda: midway(c1))
        await c1.stop()
        result = c1.propose(ExpireAgent("agent-1", anyio.current_time()))
        assert result.ok and c1.job(job_id).attempt == 2
        await c1.start(tg)
        await c1.wait_for(lambda: c1.job(job_id).state is JobState.COMPLETED, within=20)
        # attempt 1 was aborted (neither completed nor failed), attempt 2 completed
        assert (runtime.meter.completed, runtime.meter.failed) == (1, 0)
    completed = [(a.completed.job_id, a.completed.attempt) for a in c1.seen(AttemptCompleted)]
    assert completed == [(job_id, 2)]
    assert c1.job(job_id).sha256 == sha
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha
    assert leftovers(dst.parent) == []


async def test_a_connection_made_as_the_agent_stops_is_closed_not_left_to_the_collector(
    tmp_path: Path,
) -> None:
    """A connect that completes just after a stop was asked queues its connection behind the
    stop: the runtime closes it on the way out (an unclosed socket otherwise warns later)."""
    from quorus.core.agent.runtime import _Connected

    accepted: list[anyio.abc.SocketStream] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    config = config_for(tmp_path, ControllerAddress("c1", f"127.0.0.1:{free_port()}"))
    runtime = AgentRuntime(config)

    async def keep(stream: anyio.abc.SocketStream) -> None:
        accepted.append(stream)

    with anyio.fail_after(10):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, keep)
            late = await anyio.connect_tcp("127.0.0.1", port)
            await _wait(lambda: bool(accepted))
            tg.start_soon(runtime.run)
            runtime.stop("test over")
            runtime._post(_Connected(runtime._generation, FramedStream(late)))
            async with accepted[0]:
                with pytest.raises(anyio.EndOfStream):
                    await accepted[0].receive()
            tg.cancel_scope.cancel()
    assert runtime.stopped == "test over"
