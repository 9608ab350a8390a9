"""The two sessions over a real loopback TCP connection with quorus.core.wire framing, under
asyncio and trio: a minimal agent and controller loop run a whole life (hello, register,
heartbeats, a job with progress and completion, drain, deregister), and bad input closes
the connection with the error the session chose."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from quorus.core.agentproto import (
    AgentCapabilities,
    AgentDeregistering,
    AgentProtocolError,
    AgentSession,
    Assign,
    AttemptCompleted,
    CloseConnection,
    ControllerAddress,
    ControllerSession,
    Error,
    ErrorCode,
    HeartbeatReceived,
    ProgressReported,
    Reconnect,
    Register,
    RegistrationRequested,
    Shutdown,
    StartJob,
    Step,
    from_wire,
    to_wire,
)
from quorus.core.secrets import Secret
from quorus.core.testing.fixtures import free_port
from quorus.core.wire import ConnectionClosedError, FramedStream, Hello

pytestmark = pytest.mark.anyio

SHA = "c3" * 32
TOKEN = "loopback-token"


class Controller:
    """One controller's agent listener: a session per connection, the runtime's part played
    by accepting every registration, assigning one job and draining once it is done."""

    def __init__(self, address: ControllerAddress) -> None:
        self.address = address
        self.actions: list[Any] = []

    async def serve(self, stream: SocketStream) -> None:
        framed = FramedStream(stream)
        session = ControllerSession(
            self.address.controller_id, lambda h: h.credentials.get("token") == TOKEN,
            now=anyio.current_time(),
        )
        async with framed.stream:
            while True:
                try:
                    raw = await framed.receive()
                except ConnectionClosedError:
                    self.actions += session.connection_lost(anyio.current_time(), "eof").actions
                    return
                try:
                    step = session.receive(from_wire(raw), anyio.current_time())
                except AgentProtocolError as exc:
                    await framed.send(to_wire(exc.reply))
                    return
                while step.send or step.actions:
                    for message in step.send:
                        await framed.send(to_wire(message))
                    self.actions += step.actions
                    step = self.react(session, step.actions)
                if session.phase == "closed":
                    return

    def react(self, session: ControllerSession, actions: Any) -> Step:
        for action in actions:
            if isinstance(action, RegistrationRequested):
                return session.accept(
                    heartbeat_interval=0.05, progress_interval=0.0, controllers=[self.address]
                )
            if isinstance(action, HeartbeatReceived) and action.heartbeat.sequence == 3:
                # a few heartbeats went round: now the job
                return session.assign(Assign("j1", 1, "file:///in.bin", "file:///out.bin"))
            if isinstance(action, AttemptCompleted):
                ack = session.result_recorded("j1", 1, True)
                return Step(ack.send + session.drain(5.0).send)
        return Step()


async def run_agent(controller: ControllerAddress) -> list[Any]:
    """An agent's loop: connect where the session says, feed it frames and timer ticks, run
    assigned jobs by reporting progress and completion at once."""
    agent = AgentSession(
        Register("agent-1", "127.0.0.1", "0.1", AgentCapabilities(("file",), 2)),
        [controller], Secret(TOKEN),
    )
    (reconnect,) = agent.start(anyio.current_time()).actions
    assert isinstance(reconnect, Reconnect)
    host, port = reconnect.to.address.rsplit(":", 1)
    framed = FramedStream(await anyio.connect_tcp(host, int(port)))
    seen: list[Any] = []
    queue = [agent.connected(anyio.current_time())]
    async with framed.stream:
        while True:
            while queue:
                step = queue.pop(0)
                for message in step.send:
                    await framed.send(to_wire(message))
                for action in step.actions:
                    seen.append(action)
                    if isinstance(action, StartJob):
                        job, now = action.assign, anyio.current_time()
                        queue.append(agent.job_progress(job.job_id, job.attempt, 512, 1024, 1e6, now))
                        queue.append(agent.job_completed(job.job_id, job.attempt, 1024, SHA, 0.01, now))
                if any(isinstance(action, Shutdown) for action in step.actions):
                    return seen
            deadline = agent.next_deadline()
            assert deadline is not None
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                message = from_wire(await framed.receive())
                queue.append(agent.receive(message, anyio.current_time()))
                continue
            queue.append(agent.tick(anyio.current_time()))


async def test_a_whole_agent_life_over_loopback_tcp() -> None:
    address = ControllerAddress("c1", f"127.0.0.1:{free_port()}")
    controller = Controller(address)
    port = int(address.address.rsplit(":", 1)[1])
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    with anyio.fail_after(10):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, controller.serve)
            seen = await run_agent(address)
            tg.cancel_scope.cancel()
    kinds = [type(a).__name__ for a in controller.actions]
    assert kinds[0] == "RegistrationRequested"
    heartbeats = [a.heartbeat for a in controller.actions if isinstance(a, HeartbeatReceived)]
    assert [h.sequence for h in heartbeats] == list(range(1, len(heartbeats) + 1))
    assert len(heartbeats) >= 3
    progress = [a.progress for a in controller.actions if isinstance(a, ProgressReported)]
    assert [p.bytes_done for p in progress] == [512, 1024]  # then the final one
    completed = [a.completed for a in controller.actions if isinstance(a, AttemptCompleted)]
    assert [(c.job_id, c.attempt, c.sha256) for c in completed] == [("j1", 1, SHA)]
    assert isinstance(controller.actions[-2], AgentDeregistering)
    assert isinstance(controller.actions[-1], CloseConnection)
    assert [type(a).__name__ for a in seen][-2:] == ["CloseConnection", "Shutdown"]


async def _exchange(port: int, frames: list[Any]) -> list[Any]:
    """Send ``frames`` raw, then read until the controller closes."""
    received: list[Any] = []
    framed = FramedStream(await anyio.connect_tcp("127.0.0.1", port))
    async with framed.stream:
        for frame in frames:
            await framed.send(frame)
        try:
            while True:
                received.append(from_wire(await framed.receive()))
        except ConnectionClosedError:
            return received


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([Hello("quorus-agent", (1,), "a1", "token", {"token": "wrong"}).to_wire()],
         ErrorCode.UNAUTHORIZED),
        ([Hello("quorus-agent", (7,), "a1", "token", {"token": TOKEN}).to_wire()],
         ErrorCode.VERSION),
        ([{"type": "heartbeat"}], ErrorCode.MALFORMED),
        ([[1, 2, 3]], ErrorCode.MALFORMED),
        ([Hello("quorus-agent", (1,), "a1", "token", {"token": TOKEN}).to_wire(),
          {"type": "drain", "timeout": 1.0}], ErrorCode.PROTOCOL),
    ],
)
async def test_bad_input_is_answered_with_an_error_and_the_connection_closed(
    frames: list[Any], code: ErrorCode
) -> None:
    port = free_port()
    controller = Controller(ControllerAddress("c1", f"127.0.0.1:{port}"))
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    with anyio.fail_after(10):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, controller.serve)
            received = await _exchange(port, frames)
            tg.cancel_scope.cancel()
    assert isinstance(received[-1], Error)
    assert received[-1].code is code
    assert controller.actions == []
