"""A one-node controller on loopback TCP for testing agents against the real thing.

:class:`LoopbackController` is the controller side of the agent protocol assembled from the
real parts — a :class:`~quorus.core.agentproto.ControllerSession` per connection over wire
frames, a :class:`~quorus.core.controller.ControllerState` to which every registration, assignment
and result is applied as an encoded command, and the real scheduler — without consensus or a
REST API. Tests submit, cancel and drain through it, make it a follower that redirects to
another controller, stop it and start it again on the same port with the same state (a
restart), and read everything the agents said in :attr:`LoopbackController.log`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import SocketStream, TaskGroup
from quorus.core import controller as ctl
from quorus.core.agentproto import (
    AgentDeregistering,
    AgentDisconnected,
    AgentProtocolError,
    Assign,
    AttemptCompleted,
    AttemptFailed,
    CloseConnection,
    ControllerAddress,
    ControllerSession,
    HeartbeatReceived,
    JobAttempt,
    ProgressReported,
    RegistrationRequested,
    Step,
    from_wire,
    to_wire,
)
from quorus.core.controller.agentlink import register_command
from quorus.core.controller.scheduler import AgentCapacity, schedule
from quorus.core.controller.server import transfer_options
from quorus.core.controller.state import JobConstraints
from quorus.core.wire import ConnectionClosedError, FramedStream, Hello, WireError

log = logging.getLogger(__name__)


def assign_message(job: ctl.JobRecord, constraints: JobConstraints | None = None) -> Assign:
    """The ``Assign`` for a job's current attempt, as the controller sends it but with no
    retries inside the attempt (tests see every failure)."""
    options = dataclasses.replace(transfer_options(job, constraints), retries=0)
    return Assign(job.id, job.attempt, job.source, job.destination, options,
                  job.tenant, job.namespace)


@dataclass
class _Agent:
    session: ControllerSession
    framed: FramedStream
    free_slots: int | None = None


@dataclass
class LoopbackController:
    """See the module docstring. ``leader``: another controller this one redirects agents
    to (``None``: this one leads)."""

    controller_id: str
    token: str
    port: int
    heartbeat_interval: float = 0.2
    progress_interval: float = 0.1
    leader: ControllerAddress | None = None
    peers: Sequence[ControllerAddress] = ()
    state: ctl.ControllerState = field(default_factory=ctl.ControllerState)
    #: Every action the sessions reported, and every command result, in order.
    log: list[Any] = field(default_factory=list)
    connections: int = 0
    _index: int = 0
    _agents: dict[str, _Agent] = field(default_factory=dict)
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _scope: anyio.CancelScope | None = None
    _stopped: anyio.Event = field(default_factory=anyio.Event)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    #: A registration or a result freed capacity: schedule once the frame is answered.
    _reschedule: bool = False

    @property
    def address(self) -> ControllerAddress:
        return ControllerAddress(self.controller_id, f"127.0.0.1:{self.port}")

    @property
    def quorum(self) -> list[ControllerAddress]:
        return [self.address, *self.peers]

    # -- running -------------------------------------------------------------------------------

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1:``port`` until :meth:`stop`."""
        self._stopped = anyio.Event()
        try:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
            with anyio.CancelScope() as scope:
                self._scope = scope
                async with listener, anyio.create_task_group() as tg:
                    task_status.started()
                    await listener.serve(self._connection, task_group=tg)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Stop listening and drop every connection at once, as a crash would; returns once
        the port is closed."""
        if self._scope is not None:
            self._scope.cancel()
            await self._stopped.wait()
            self._scope = None
        self._agents.clear()

    async def start(self, tg: TaskGroup) -> None:
        await tg.start(self.serve)

    # -- what tests do -------------------------------------------------------------------------

    def propose(self, command: ctl.Command) -> Any:
        """Apply ``command`` as its encoded bytes, as consensus would."""
        self._index += 1
        result = self.state.apply(self._index, command.encode())
        self.log.append(result)
        self._notify()
        return result

    async def submit(self, source: str, destination: str, **settings: Any) -> str:
        job_id = f"job-{next(self._ids)}"
        result = self.propose(ctl.SubmitJob.new(
            source, destination, job_id=job_id, at=anyio.current_time(), **settings
        ))
        assert result.ok, result
        await self.schedule()
        return job_id

    async def schedule(self) -> None:
        """One scheduling round: assign what fits, push the ``Assign`` frames."""
        capacity = {
            agent_id: AgentCapacity(True, agent.free_slots)
            for agent_id, agent in self._agents.items() if agent.session.active
        }
        plan = schedule(self.state, capacity)
        for assignment in plan.assignments:
            result = self.propose(assignment.command(anyio.current_time()))
            if not result.ok:
                continue
            job = self.state.job(assignment.job_id)
            agent = self._agents.get(assignment.agent_id)
            if job is not None and agent is not None:
                await self._send(agent, agent.session.assign(
                    assign_message(job, self.state.job_constraints(job))))

    async def cancel(self, job_id: str) -> Any:
        result = self.propose(ctl.CancelJob(job_id, anyio.current_time()))
        await self._abort_orders(result)
        return result

    async def drain(self, agent_id: str, seconds: float) -> None:
        now = anyio.current_time()
        self.propose(ctl.DrainAgent(agent_id, now, now + seconds))
        agent = self._agents[agent_id]
        await self._send(agent, agent.session.drain(seconds))

    def job(self, job_id: str) -> ctl.JobRecord:
        job = self.state.job(job_id)
        assert job is not None, f"no job {job_id}"
        return job

    def seen(self, kind: type[Any]) -> list[Any]:
        return [entry for entry in self.log if isinstance(entry, kind)]

    async def wait_for(self, condition: Callable[[], Any], within: float = 10.0) -> Any:
        """Wait until ``condition()`` is true (checked after every change); its value."""
        with anyio.fail_after(within):
            while not (value := condition()):
                await self._changed.wait()
        return value

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- one agent connection ------------------------------------------------------------------

    def _authenticate(self, hello: Hello) -> bool:
        return hello.credentials.get("token") == self.token

    async def _connection(self, stream: SocketStream) -> None:
        self.connections += 1
        framed = FramedStream(stream)
        session = ControllerSession(self.controller_id, self._authenticate,
                                    now=anyio.current_time())
        entry = _Agent(session, framed)
        async with framed.stream:
            while True:
                try:
                    raw = await framed.receive()
                    step = session.receive(from_wire(raw), anyio.current_time())
                except ConnectionClosedError as exc:
                    self._record(session.connection_lost(anyio.current_time(), str(exc)).actions)
                    return
                except AgentProtocolError as exc:
                    self.log.append(exc)
                    self._notify()
                    await framed.send(to_wire(exc.reply))
                    self._record(session.connection_lost(anyio.current_time(), str(exc)).actions)
                    return
                except WireError as exc:
                    self.log.append(exc)
                    self._notify()
                    return
                if session.agent_id is not None:
                    self._agents[session.agent_id] = entry
                if not await self._send(entry, step):
                    return
                if self._reschedule:
                    self._reschedule = False
                    await self.schedule()

    async def _send(self, agent: _Agent, step: Step) -> bool:
        """Send ``step``'s frames and act on its actions; ``False`` once the connection is
        to close."""
        open_ = True
        pending = [step]
        while pending:
            step = pending.pop(0)
            for message in step.send:
                try:
                    await agent.framed.send(to_wire(message))
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return False
            self._record(step.actions)
            for action in step.actions:
                follow = await self._react(agent, action)
                if follow is not None:
                    pending.append(follow)
                if isinstance(action, CloseConnection):
                    open_ = False
                    await agent.framed.aclose()
        return open_

    def _record(self, actions: Sequence[Any]) -> None:
        for action in actions:
            self.log.append(action)
            if isinstance(action, AgentDisconnected | AgentDeregistering):
                self._agents.pop(action.agent_id, None)
        if actions:
            self._notify()

    async def _react(self, agent: _Agent, action: Any) -> Step | None:
        session, now = agent.session, anyio.current_time()
        if isinstance(action, RegistrationRequested):
            if self.leader is not None:
                return session.redirect(self.leader, self.quorum)
            result = self.propose(register_command(action.register, now))
            abort = [JobAttempt(o.job_id, o.attempt) for o in getattr(result, "abort", ())]
            step = session.accept(
                heartbeat_interval=self.heartbeat_interval,
                progress_interval=self.progress_interval, controllers=self.quorum, abort=abort,
            )
            self._reschedule = True  # queued jobs may fit on it
            return step
        if isinstance(action, HeartbeatReceived):
            agent.free_slots = action.heartbeat.available_capacity
        elif isinstance(action, ProgressReported):
            progress = action.progress
            job = self.state.job(progress.job_id)
            if job is not None and job.state is ctl.JobState.ASSIGNED:
                self.propose(ctl.JobStarted(progress.job_id, action.agent_id, progress.attempt, now))
        elif isinstance(action, AttemptCompleted):
            done = action.completed
            result = self.propose(ctl.CompleteAttempt(
                done.job_id, action.agent_id, done.attempt, now, done.bytes_transferred,
                done.sha256,
            ))
            self._reschedule = True
            return session.result_recorded(done.job_id, done.attempt, result.ok,
                                           "" if result.ok else str(result))
        elif isinstance(action, AttemptFailed):
            failed = action.failed
            result = self.propose(ctl.FailAttempt(
                failed.job_id, action.agent_id, failed.attempt, now,
                f"{failed.error_type}: {failed.message}", failed.retryable,
            ))
            self._reschedule = True
            return session.result_recorded(failed.job_id, failed.attempt, result.ok,
                                           "" if result.ok else str(result))
        elif isinstance(action, AgentDeregistering):
            self.propose(ctl.DeregisterAgent(action.agent_id, now, action.reason))
        return None

    async def _abort_orders(self, result: Any) -> None:
        for order in getattr(result, "abort", ()):
            agent = self._agents.get(order.agent_id)
            if agent is not None and agent.session.active:
                await self._send(agent, agent.session.abort(order.job_id, order.attempt,
                                                            "cancelled"))



__all__ = ["LoopbackController", "assign_message", "register_command"]
