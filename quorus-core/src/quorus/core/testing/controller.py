"""Test helpers for the controller: a real controller on loopback and a small scripted agent.

:func:`running_controller` starts a :class:`~quorus.core.controller.server.ControllerServer`
in the current event loop (standalone consensus, free ports, data under a given directory).
:class:`ScriptedAgent` is an agent reduced to its protocol: the real
:class:`~quorus.core.agentproto.AgentSession` over real TCP, which registers, heartbeats and
runs each assigned ``file`` job by copying the bytes itself and reporting the SHA-256 (or
holds it, or fails it, as the test says).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from quorus.core.agentproto import (
    AbortJob,
    AgentCapabilities,
    AgentLocation,
    AgentSession,
    Assign,
    CloseConnection,
    ControllerAddress,
    Reconnect,
    Register,
    RegisteredWith,
    ResultAck,
    Shutdown,
    StartJob,
    Step,
    from_wire,
    to_wire,
)
from quorus.core.controller.extension import ControllerExtension
from quorus.core.controller.server import ControllerServer
from quorus.core.controller.settings import ControllerSettings, PeerAddresses
from quorus.core.secrets import Secret
from quorus.core.testing.fixtures import free_port
from quorus.core.wire import ConnectionClosedError, FramedStream, WireError

if TYPE_CHECKING:
    from quorus.core.agent import AgentConfig, AgentRuntime

TOKEN = "controller-test-token"


@asynccontextmanager
async def running_agent(agent: AgentConfig | AgentRuntime) -> AsyncIterator[AgentRuntime]:
    """A real agent runtime (built from ``agent`` when it is a config) running in the current
    event loop until the block ends, when it is stopped."""
    from quorus.core.agent import AgentRuntime

    runtime = agent if isinstance(agent, AgentRuntime) else AgentRuntime(agent)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        try:
            yield runtime
        finally:
            runtime.stop("test over")


async def eventually(condition: Callable[[], object], within: float = 15.0) -> None:
    """Poll ``condition`` every 20 ms until it is true; ``TimeoutError`` after ``within`` s."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - bounded by fail_after
            await anyio.sleep(0.02)


@asynccontextmanager
async def running_controller(
    data_dir: Path, *, extensions: Sequence[ControllerExtension] | None = None, **settings: Any
) -> AsyncIterator[ControllerServer]:
    """A controller serving on free loopback ports until the block ends (with ``extensions``
    instead of the installed ones when given)."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "listen_agents": f"127.0.0.1:{free_port()}",
        "listen_http": f"127.0.0.1:{free_port()}",
        "token": TOKEN,
        "heartbeat_interval": 0.2,
        "progress_interval": 0.0,
        "schedule_interval": 0.1,
    }
    values.update(settings)
    server = ControllerServer(ControllerSettings(**values), extensions=extensions)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        try:
            yield server
        finally:
            server.stop()


def loopback_peers(names: Iterable[str]) -> dict[str, PeerAddresses]:
    """Raft, agent and HTTP addresses on free loopback ports for each of ``names``."""
    return {name: PeerAddresses(raft=f"127.0.0.1:{free_port()}",
                                agents=f"127.0.0.1:{free_port()}",
                                http=f"127.0.0.1:{free_port()}") for name in names}


def leader_known(servers: Sequence[ControllerServer]) -> bool:
    """One of ``servers`` leads and every one knows it (a member that has not yet heard from
    a new leader answers 503 "no leader is known")."""
    leaders = [s for s in servers if s.leading]
    return len(leaders) == 1 and all(
        s.backend.leader_id == leaders[0].settings.node_id for s in servers)


@asynccontextmanager
async def running_quorum(
    data_dir: Path, peers: Mapping[str, PeerAddresses], *, within: float = 20.0,
    extensions: Callable[[], Sequence[ControllerExtension]] | None = None, **settings: Any,
) -> AsyncIterator[list[ControllerServer]]:
    """Every controller of ``peers`` over the ``raft`` backend, each in ``data_dir / name``
    with the extensions ``extensions()`` makes for it (the installed ones without it) and 20
    ms Raft ticks unless ``raft_options`` says otherwise, once one leads and every one knows
    it (``TimeoutError`` after ``within`` s)."""
    settings.setdefault("raft_options", {"tick_ms": 20})
    async with contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(running_controller(
                data_dir / name, extensions=extensions() if extensions else None,
                node_id=name, consensus="raft", peers=peers, listen_agents=peer.agents,
                listen_http=peer.http, **settings))
            for name, peer in peers.items()
        ]
        await eventually(lambda: leader_known(servers), within=within)
        yield servers


async def request_until_served(client: httpx.AsyncClient, method: str, url: str,
                               body: object = None) -> httpx.Response:
    """``method url`` with ``body`` as JSON, again while the answer is 503: a busy machine may
    move leadership at any moment, and a controller answers 503 until it knows the new
    leader, as the command line tries again (at most 100 times, 0.1 s apart)."""
    answer = await client.request(method, url, json=body)
    for _ in range(100):
        if answer.status_code != 503:
            break
        await anyio.sleep(0.1)
        answer = await client.request(method, url, json=body)
    return answer


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ScriptedAgent:
    """An agent that speaks the protocol for real and runs ``file`` jobs by copying bytes.

    ``mode`` says what it does with an assignment: ``complete`` (copy, report progress and
    completion), ``hold`` (report progress, never finish: for cancel and expiry tests) or
    ``fail`` (report a retryable failure). ``frames`` records every message received.
    """

    def __init__(
        self,
        agent_id: str,
        controllers: list[ControllerAddress],
        *,
        token: str = TOKEN,
        protocols: tuple[str, ...] = ("file",),
        max_concurrent: int = 2,
        mode: str = "complete",
        location: AgentLocation | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.session = AgentSession(
            Register(agent_id, "localhost", "test", AgentCapabilities(protocols, max_concurrent),
                     location=location or AgentLocation(), labels=labels or {}),
            controllers, Secret(token),
        )
        self.mode = mode
        self.frames: list[Any] = []
        self.actions: list[Any] = []
        self.completed: list[tuple[str, int, str]] = []
        self.aborted: list[tuple[str, int]] = []
        self.acks: list[ResultAck] = []
        self.registered = anyio.Event()
        self.stopped = anyio.Event()
        self._changed = anyio.Event()
        self._framed: FramedStream | None = None
        self._queue: list[Step] = []
        self._cancel: anyio.CancelScope | None = None

    async def run(self) -> None:
        """Live until the session shuts down or :meth:`kill` is called."""
        with anyio.CancelScope() as scope:
            self._cancel = scope
            try:
                await self._live()
            finally:
                self.stopped.set()
                if self._framed is not None:
                    with anyio.CancelScope(shield=True):
                        await self._framed.aclose()

    def kill(self) -> None:
        """Vanish without a word, as a killed process would."""
        if self._cancel is not None:
            self._cancel.cancel()

    async def wait_for(self, condition: Callable[[], bool], seconds: float = 10) -> None:
        with anyio.fail_after(seconds):
            while not condition():
                self._changed = anyio.Event()
                await self._changed.wait()

    def _note(self) -> None:
        self._changed.set()

    async def _live(self) -> None:
        now = anyio.current_time
        self._queue.append(self.session.start(now()))
        while True:
            while self._queue:
                step = self._queue.pop(0)
                await self._carry_out(step)
                if any(isinstance(a, Shutdown) for a in step.actions):
                    return
            deadline = self.session.next_deadline()
            if self._framed is None:
                await anyio.sleep(0.01 if deadline is None else max(0.0, deadline - now()))
                self._queue.append(self.session.tick(now()))
                continue
            delay = 1.0 if deadline is None else max(0.0, deadline - now())
            with anyio.move_on_after(delay):
                try:
                    raw = await self._framed.receive()
                except (ConnectionClosedError, WireError, OSError) as exc:
                    await self._framed.aclose()
                    self._framed = None
                    self._queue.append(self.session.connection_lost(now(), str(exc)))
                    continue
                message = from_wire(raw)
                self.frames.append(message)
                if isinstance(message, ResultAck):
                    self.acks.append(message)
                self._queue.append(self.session.receive(message, now()))
                self._note()
                continue
            self._queue.append(self.session.tick(now()))

    async def _carry_out(self, step: Step) -> None:
        now = anyio.current_time
        for message in step.send:
            if self._framed is not None:
                with contextlib.suppress(OSError, anyio.BrokenResourceError,
                                         anyio.ClosedResourceError):
                    await self._framed.send(to_wire(message))
        for action in step.actions:
            self.actions.append(action)
            if isinstance(action, Reconnect):
                await anyio.sleep(max(0.0, action.at - now()))
                host, port = action.to.address.rsplit(":", 1)
                try:
                    self._framed = FramedStream(await anyio.connect_tcp(host, int(port)))
                except OSError as exc:
                    self._queue.append(self.session.connection_failed(now(), str(exc)))
                else:
                    self._queue.append(self.session.connected(now()))
            elif isinstance(action, CloseConnection) and self._framed is not None:
                await self._framed.aclose()
                self._framed = None
            elif isinstance(action, RegisteredWith):
                self.registered.set()
            elif isinstance(action, StartJob):
                self._queue.append(self._run_job(action.assign))
            elif isinstance(action, AbortJob):
                self.aborted.append((action.job_id, action.attempt))
        self._note()

    def _run_job(self, assign: Assign) -> Step:
        now = anyio.current_time()
        source = Path(assign.source)
        if self.mode == "fail":
            return self.session.job_failed(assign.job_id, assign.attempt, "TransientError",
                                           "scripted failure", True, now)
        size = source.stat().st_size
        if self.mode == "hold":
            return self.session.job_progress(assign.job_id, assign.attempt, size // 2, size, 1e6,
                                             now)
        target = Path(assign.destination)
        partial = target.with_name(f".{target.name}.{assign.job_id}.{assign.attempt}.part")
        shutil.copyfile(source, partial)
        digest = sha256_of(partial)
        os.replace(partial, target)
        self.completed.append((assign.job_id, assign.attempt, digest))
        progress = self.session.job_progress(assign.job_id, assign.attempt, size, size, 1e6, now)
        done = self.session.job_completed(assign.job_id, assign.attempt, size, digest, 0.01, now)
        return Step(progress.send + done.send, progress.actions + done.actions)

    def finish_held(self, assign: Assign) -> None:
        """Complete a held attempt now (copying its file)."""
        self.mode = "complete"
        self._queue.append(self._run_job(assign))

    def assigns(self) -> list[Assign]:
        return [f for f in self.frames if isinstance(f, Assign)]


def controller_address(server: ControllerServer) -> ControllerAddress:
    return ControllerAddress(server.settings.node_id, server.settings.listen_agents)


def with_settings(server: ControllerServer, **changes: Any) -> ControllerSettings:
    return replace(server.settings, **changes)


__all__ = [
    "TOKEN",
    "ScriptedAgent",
    "controller_address",
    "eventually",
    "leader_known",
    "loopback_peers",
    "request_until_served",
    "running_agent",
    "running_controller",
    "running_quorum",
    "sha256_of",
    "with_settings",
]
