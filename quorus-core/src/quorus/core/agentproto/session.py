"""The two ends of an agent connection as sans-IO state machines: :class:`AgentSession` (the
agent's side, across all its connections) and :class:`ControllerSession` (a controller's side
of one connection).

Neither opens sockets, sleeps or reads a clock: the runtime passes each decoded message and
the current time in, and gets a :class:`~quorus.core.agentproto.actions.Step` back (messages
to send, actions to take). Timers are the runtime calling ``tick(now)`` at ``next_deadline()``.
A peer that breaks the protocol makes ``receive`` raise an
:class:`~quorus.core.agentproto.errors.AgentProtocolError`: send its ``reply``, close the
connection, and tell the session (``connection_lost``).
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Callable, Sequence

from quorus.core.agentproto.actions import (
    AbortJob,
    AgentDeregistering,
    AgentDisconnected,
    AttemptCompleted,
    AttemptFailed,
    CloseConnection,
    ControllerError,
    DrainRequested,
    HeartbeatReceived,
    ProgressReported,
    RegisteredWith,
    RegistrationRejected,
    RegistrationRequested,
    ResultRejected,
    Shutdown,
    StartJob,
    Step,
    StepBuilder,
)
from quorus.core.agentproto.errors import (
    AuthenticationRefused,
    ErrorCode,
    ProtocolError,
    SessionStateError,
    VersionMismatch,
)
from quorus.core.agentproto.messages import (
    PROTOCOL,
    TAGS,
    VERSIONS,
    Abort,
    Assign,
    Completed,
    Deregister,
    Drain,
    Error,
    Failed,
    Heartbeat,
    HeartbeatAck,
    Message,
    Progress,
    Redirect,
    Register,
    Registered,
    ResultAck,
)
from quorus.core.agentproto.progress import ProgressCoalescer
from quorus.core.agentproto.reconnect import Backoff, ControllerDirectory
from quorus.core.agentproto.records import (
    AgentHealth,
    AgentMetrics,
    AgentStatus,
    ControllerAddress,
    JobAttempt,
)
from quorus.core.secrets import Secret
from quorus.core.wire import Hello, ProtocolVersionError, negotiate_version

#: Defaults: the least time between two progress reports of one attempt before the controller
#: says otherwise, the time allowed for hello and registration, and how many heartbeat
#: intervals of silence make the agent give up on a controller.
PROGRESS_INTERVAL = 2.0
HANDSHAKE_TIMEOUT = 10.0
MISSED_HEARTBEATS = 3


def _name(message: Message) -> str:
    return "hello" if isinstance(message, Hello) else TAGS[type(message)]


class AgentPhase(enum.StrEnum):
    #: No connection; the last Step said where and when to reconnect.
    DISCONNECTED = "disconnected"
    #: Connected, hello sent, waiting for the controller's hello.
    HELLO_SENT = "hello-sent"
    #: Register sent, waiting for Registered.
    REGISTERING = "registering"
    #: Registered: heartbeats, assignments and results flow.
    ACTIVE = "active"
    #: Deregistered or out of drain time; the agent stops.
    STOPPED = "stopped"


class AgentSession:
    """The agent's side of the protocol, across reconnects.

    It remembers the attempts the agent runs (``running``) and the results not yet
    acknowledged (``unacknowledged``, resent after each registration), numbers heartbeats,
    coalesces progress, and picks the controller to connect to next.
    """

    def __init__(
        self,
        registration: Register,
        controllers: Sequence[ControllerAddress],
        token: Secret | None,
        *,
        auth_method: str = "token",
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        missed_heartbeats: int = MISSED_HEARTBEATS,
    ) -> None:
        self.registration = registration
        self.agent_id = registration.agent_id
        self.max_concurrent = registration.capabilities.max_concurrent_transfers
        self.directory = ControllerDirectory(controllers, backoff, rng)
        self._token = token
        self.auth_method = auth_method
        self.handshake_timeout = handshake_timeout
        self.missed_heartbeats = missed_heartbeats
        self.phase = AgentPhase.DISCONNECTED
        self.controller_id: str | None = None
        self.version: int | None = None
        self.running: dict[str, Assign] = {}
        self.unacknowledged: dict[JobAttempt, Completed | Failed] = {}
        self.sequence = 0
        self.heartbeat_interval: float | None = None
        self.drain_deadline: float | None = None
        self.metrics = AgentMetrics()
        self.health = AgentHealth()
        self.unhealthy = False
        self.next_maintenance_window: float | None = None
        self.last_job_completion: float | None = None
        self._progress = ProgressCoalescer(PROGRESS_INTERVAL)
        self._connected_at = 0.0
        self._last_heard = 0.0
        self._next_heartbeat = 0.0
        self._started = False

    # -- connection lifecycle ----------------------------------------------------------------

    def start(self, now: float) -> Step:
        """The first connection: a :class:`Reconnect` to the first controller, now."""
        if self._started:
            raise SessionStateError("the agent session is already started")
        self._started = True
        return Step(actions=(self.directory.start(now),))

    def connected(self, now: float) -> Step:
        """The connection the last ``Reconnect`` asked for is open: send the hello."""
        if self.phase is not AgentPhase.DISCONNECTED or not self._started:
            raise SessionStateError(f"connected() while {self.phase}")
        self.phase = AgentPhase.HELLO_SENT
        self._connected_at = self._last_heard = now
        if self._token is None:  # the agent proves who it is by its TLS certificate alone
            hello = Hello(PROTOCOL, VERSIONS, self.agent_id)
        else:
            # The token goes to the controller's auth method of that name: ``token`` by
            # default, or an installed one that judges token-shaped credentials.
            hello = Hello(PROTOCOL, VERSIONS, self.agent_id, self.auth_method,
                          {"token": self._token.reveal()})
        return Step(send=(hello,))

    def connection_failed(self, now: float, reason: str) -> Step:
        """Opening the connection a ``Reconnect`` asked for failed: where and when to try next."""
        if self.phase is AgentPhase.STOPPED:
            return Step()
        out = StepBuilder()
        self._disconnect(now, reason, out)
        return out.build()

    def connection_lost(self, now: float, reason: str) -> Step:
        """An open connection ended: where and when to try next. Nothing when the session
        itself closed it (that step already carried the ``Reconnect``)."""
        if self.phase in (AgentPhase.DISCONNECTED, AgentPhase.STOPPED):
            return Step()
        return self.connection_failed(now, reason)

    def _disconnect(self, now: float, reason: str, out: StepBuilder) -> None:
        self.phase = AgentPhase.DISCONNECTED
        self.controller_id = None
        self._progress.release_all_as_unsent()
        out.actions.append(self.directory.failed(now, reason))

    def _close(self, reason: str, out: StepBuilder) -> None:
        out.actions.append(CloseConnection(reason))

    # -- messages from the controller --------------------------------------------------------

    def receive(self, message: Message, now: float) -> Step:
        """Handle one message from the controller."""
        if self.phase in (AgentPhase.DISCONNECTED, AgentPhase.STOPPED):
            raise ProtocolError(f"{_name(message)} received with no registered connection")
        self._last_heard = now
        out = StepBuilder()
        if isinstance(message, Error):
            out.actions.append(ControllerError(message.code, message.message))
            if message.code == ErrorCode.UNAUTHORIZED:
                # Its credentials no longer hold (revoked, expired, a right withdrawn): what
                # it runs is no longer its to finish; the controller moves those attempts to
                # other agents once this one's heartbeats stop.
                for assign in list(self.running.values()):
                    self._abort(JobAttempt(assign.job_id, assign.attempt),
                                f"the controller withdrew this agent's access: {message.message}",
                                out)
            self._close(f"the controller refused: {message.message}", out)
            self._disconnect(now, f"controller error {message.code}", out)
        elif isinstance(message, Redirect):
            self._redirected(message, now, out)
        elif self.phase is AgentPhase.HELLO_SENT:
            self._on_hello(message, out)
        elif self.phase is AgentPhase.REGISTERING:
            self._on_registered(message, now, out)
        elif isinstance(message, HeartbeatAck):
            if message.sequence > self.sequence:
                raise ProtocolError(
                    f"heartbeat-ack for heartbeat {message.sequence}; the last sent is {self.sequence}"
                )
        elif isinstance(message, Assign):
            self._on_assign(message, out)
        elif isinstance(message, Abort):
            self._abort(JobAttempt(message.job_id, message.attempt), message.reason, out)
        elif isinstance(message, ResultAck):
            self.unacknowledged.pop(JobAttempt(message.job_id, message.attempt), None)
            if not message.accepted:
                out.actions.append(ResultRejected(message.job_id, message.attempt, message.reason))
        elif isinstance(message, Drain):
            self._drain(now + message.timeout, out)
        else:
            raise ProtocolError(f"unexpected {_name(message)} from the controller")
        self._check_drained(now, out)
        return out.build()

    def _on_hello(self, message: Message, out: StepBuilder) -> None:
        if not isinstance(message, Hello):
            raise ProtocolError(f"expected the controller's hello, got {_name(message)}")
        try:
            self.version = negotiate_version(PROTOCOL, VERSIONS, message)
        except ProtocolVersionError as exc:
            raise VersionMismatch(str(exc)) from None
        self.controller_id = message.node_id
        self.phase = AgentPhase.REGISTERING
        # An attempt whose result is not yet acknowledged is still held: listing it keeps it
        # current on the controller, so the result resent after registering is accepted
        # rather than the attempt taken back and run again over the finished destination.
        held = {JobAttempt(a.job_id, a.attempt) for a in self.running.values()}
        jobs = tuple(sorted(held | set(self.unacknowledged)))
        register = self.registration
        out.send.append(dataclasses.replace(register, current_jobs=jobs))

    def _on_registered(self, message: Message, now: float, out: StepBuilder) -> None:
        if not isinstance(message, Registered):
            raise ProtocolError(f"expected registered, got {_name(message)}")
        if not message.accepted:
            out.actions.append(RegistrationRejected(message.reason))
            self._close(f"registration rejected: {message.reason}", out)
            self._disconnect(now, f"registration rejected: {message.reason}", out)
            return
        self.phase = AgentPhase.ACTIVE
        self.heartbeat_interval = message.heartbeat_interval
        self._next_heartbeat = now + message.heartbeat_interval
        self._progress.interval = message.progress_interval
        self.directory.registered(message.controllers)
        out.actions.append(
            RegisteredWith(self.controller_id or "", message.heartbeat_interval, message.controllers)
        )
        for attempt in message.abort:
            self._abort(attempt, "the controller moved this attempt elsewhere", out)
        out.send.extend(self.unacknowledged.values())
        out.send.extend(self._progress.due(now))  # what was held while away

    def _redirected(self, message: Redirect, now: float, out: StepBuilder) -> None:
        leader = None
        if message.leader_id is not None and message.leader_address is not None:
            leader = ControllerAddress(message.leader_id, message.leader_address)
        self._close("redirected", out)
        self.phase = AgentPhase.DISCONNECTED
        self.controller_id = None
        self._progress.release_all_as_unsent()
        out.actions.append(self.directory.redirected(now, leader, message.controllers))

    def _on_assign(self, assign: Assign, out: StepBuilder) -> None:
        key = JobAttempt(assign.job_id, assign.attempt)
        current = self.running.get(assign.job_id)
        if (current is not None and current.attempt >= assign.attempt) or key in self.unacknowledged:
            return  # a repeat (e.g. from a new leader) or an older attempt: nothing new to run
        if self.drain_deadline is not None:
            out.send.append(self._refusal(assign, "AgentDraining", "is draining"))
            return
        if current is not None:
            self._abort(JobAttempt(current.job_id, current.attempt), "superseded by a newer attempt", out)
        if len(self.running) >= self.max_concurrent:
            out.send.append(self._refusal(assign, "AgentFull", "runs its maximum of transfers"))
            return
        self.running[assign.job_id] = assign
        out.actions.append(StartJob(assign))

    def _refusal(self, assign: Assign, error_type: str, why: str) -> Failed:
        return Failed(
            assign.job_id, assign.attempt, error_type,
            f"agent {self.agent_id!r} {why}; assign this job elsewhere", True,
        )

    def _abort(self, attempt: JobAttempt, reason: str, out: StepBuilder) -> None:
        self.unacknowledged.pop(attempt, None)
        current = self.running.get(attempt.job_id)
        if current is None or current.attempt != attempt.attempt:
            return
        del self.running[attempt.job_id]
        self._progress.forget(attempt)
        out.actions.append(AbortJob(attempt.job_id, attempt.attempt, reason))

    # -- the agent's own events ----------------------------------------------------------------

    def _running(self, job_id: str, attempt: int) -> bool:
        current = self.running.get(job_id)
        return current is not None and current.attempt == attempt

    def job_progress(
        self, job_id: str, attempt: int, bytes_done: int, total_bytes: int | None, rate: float,
        now: float,
    ) -> Step:
        """A running attempt progressed: a ``Progress`` now, or later from ``tick``."""
        if not self._running(job_id, attempt):
            return Step()
        progress = Progress(job_id, attempt, bytes_done, total_bytes, rate)
        if self.phase is not AgentPhase.ACTIVE:
            self._progress.hold(progress)
            return Step()
        ready = self._progress.offer(progress, now)
        return Step(send=(ready,)) if ready is not None else Step()

    def job_completed(
        self, job_id: str, attempt: int, bytes_transferred: int, sha256: str, duration: float,
        now: float,
    ) -> Step:
        """An attempt finished and verified: a final ``Progress``, then ``Completed`` (kept
        and resent until the controller acknowledges it). Ignored for an aborted attempt."""
        if not self._running(job_id, attempt):
            return Step()
        del self.running[job_id]
        completed = Completed(job_id, attempt, bytes_transferred, sha256, duration)
        final = self._progress.final(completed)
        self.unacknowledged[JobAttempt(job_id, attempt)] = completed
        self.last_job_completion = now
        out = StepBuilder()
        if self.phase is AgentPhase.ACTIVE:
            out.send.extend((final, completed))
        self._check_drained(now, out)
        return out.build()

    def job_failed(
        self, job_id: str, attempt: int, error_type: str, message: str, retryable: bool,
        now: float,
    ) -> Step:
        """An attempt failed: ``Failed`` (kept and resent until acknowledged)."""
        if not self._running(job_id, attempt):
            return Step()
        del self.running[job_id]
        key = JobAttempt(job_id, attempt)
        self._progress.forget(key)
        failed = Failed(job_id, attempt, error_type, message, retryable)
        self.unacknowledged[key] = failed
        out = StepBuilder()
        if self.phase is AgentPhase.ACTIVE:
            out.send.append(failed)
        self._check_drained(now, out)
        return out.build()

    def drain(self, now: float, timeout: float) -> Step:
        """Drain on the agent's own initiative (SIGTERM): as if the controller sent ``Drain``."""
        out = StepBuilder()
        if self.phase is not AgentPhase.STOPPED:
            self._drain(now + timeout, out)
            self._check_drained(now, out)
        return out.build()

    def update_status(
        self,
        *,
        metrics: AgentMetrics | None = None,
        health: AgentHealth | None = None,
        unhealthy: bool | None = None,
        next_maintenance_window: float | None = None,
    ) -> None:
        """What the next heartbeats report (the runtime measures; the session carries)."""
        if metrics is not None:
            self.metrics = metrics
        if health is not None:
            self.health = health
        if unhealthy is not None:
            self.unhealthy = unhealthy
        if next_maintenance_window is not None:
            self.next_maintenance_window = next_maintenance_window

    def _drain(self, deadline: float, out: StepBuilder) -> None:
        if self.drain_deadline is not None and self.drain_deadline <= deadline:
            return
        self.drain_deadline = deadline
        out.actions.append(DrainRequested(deadline))

    def _check_drained(self, now: float, out: StepBuilder) -> None:
        """Deregister once draining, idle, every result acknowledged and connected; at the
        deadline, abort what still runs and stop, connected or not."""
        if self.drain_deadline is None or self.phase is AgentPhase.STOPPED:
            return
        idle = not self.running and not self.unacknowledged
        if idle and self.phase is AgentPhase.ACTIVE:
            self._stop("drained: every transfer finished", out)
        elif now >= self.drain_deadline:
            for assign in list(self.running.values()):
                key = JobAttempt(assign.job_id, assign.attempt)
                self._abort(key, "the drain deadline passed", out)
                failed = self._refusal(assign, "DrainTimeout", "stopped at its drain deadline")
                if self.phase is AgentPhase.ACTIVE:
                    out.send.append(failed)
            self._stop("the drain deadline passed", out)

    def _stop(self, reason: str, out: StepBuilder) -> None:
        if self.phase is AgentPhase.ACTIVE:
            out.send.append(Deregister(self.agent_id, reason))
            self._close("deregistered", out)
        self.phase = AgentPhase.STOPPED
        out.actions.append(Shutdown(reason))

    # -- timers ----------------------------------------------------------------------------------

    def tick(self, now: float) -> Step:
        """Time passed: heartbeats, held progress, handshake and silence timeouts, drain."""
        out = StepBuilder()
        if self.phase in (AgentPhase.HELLO_SENT, AgentPhase.REGISTERING):
            if now - self._connected_at >= self.handshake_timeout:
                self._close("the controller did not finish the handshake in time", out)
                self._disconnect(now, "handshake timed out", out)
        elif self.phase is AgentPhase.ACTIVE:
            assert self.heartbeat_interval is not None
            silence = self.missed_heartbeats * self.heartbeat_interval
            if now - self._last_heard >= silence:
                self._close(f"no word from the controller for {silence:g} s", out)
                self._disconnect(now, "the controller went silent", out)
            else:
                if now >= self._next_heartbeat:
                    out.send.append(self._heartbeat(now))
                    self._next_heartbeat = now + self.heartbeat_interval
                out.send.extend(self._progress.due(now))
        self._check_drained(now, out)
        return out.build()

    def next_deadline(self) -> float | None:
        """When ``tick`` has something to do next (``None``: only events will tell)."""
        times: list[float] = []
        if self.drain_deadline is not None and self.phase is not AgentPhase.STOPPED:
            times.append(self.drain_deadline)
        if self.phase in (AgentPhase.HELLO_SENT, AgentPhase.REGISTERING):
            times.append(self._connected_at + self.handshake_timeout)
        elif self.phase is AgentPhase.ACTIVE:
            assert self.heartbeat_interval is not None
            times.append(self._next_heartbeat)
            times.append(self._last_heard + self.missed_heartbeats * self.heartbeat_interval)
            held = self._progress.next_due()
            if held is not None:
                times.append(held)
        return min(times) if times else None

    def _heartbeat(self, now: float) -> Heartbeat:
        self.sequence += 1
        if self.drain_deadline is not None:
            status = AgentStatus.DRAINING
        elif self.unhealthy:
            status = AgentStatus.UNHEALTHY
        elif len(self.running) >= self.max_concurrent:
            status = AgentStatus.BUSY
        else:
            status = AgentStatus.ACTIVE
        free = 0 if self.drain_deadline is not None else self.max_concurrent - len(self.running)
        return Heartbeat(
            self.agent_id, now, self.sequence, status,
            tuple(sorted(JobAttempt(a.job_id, a.attempt) for a in self.running.values())),
            max(free, 0), self.metrics, self.health, self.last_job_completion,
            self.next_maintenance_window,
        )


class ControllerPhase(enum.StrEnum):
    AWAITING_HELLO = "awaiting-hello"
    AWAITING_REGISTER = "awaiting-register"
    #: Register received; the runtime records it and answers with accept/reject/redirect.
    REGISTERING = "registering"
    ACTIVE = "active"
    CLOSED = "closed"


class ControllerSession:
    """A controller's side of one agent connection.

    ``authenticate`` judges the agent's hello (its ``token`` credentials, or the certificate
    its TLS connection verified); it returns whether to accept, or raises
    :class:`AuthenticationRefused` saying why it refuses. Registration and results are
    decided by the runtime (a consensus write), so the session reports them as actions and
    the runtime answers through :meth:`accept`, :meth:`reject`, :meth:`redirect` and
    :meth:`result_recorded`.
    """

    def __init__(
        self,
        controller_id: str,
        authenticate: Callable[[Hello], bool],
        *,
        now: float,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.controller_id = controller_id
        self._authenticate = authenticate
        self.handshake_timeout = handshake_timeout
        self.phase = ControllerPhase.AWAITING_HELLO
        self.agent_id: str | None = None
        self.version: int | None = None
        self.last_sequence = 0
        self._opened_at = now

    @property
    def active(self) -> bool:
        """Registered: assignments may be sent."""
        return self.phase is ControllerPhase.ACTIVE

    def receive(self, message: Message, now: float) -> Step:
        """Handle one message from the agent."""
        phase = self.phase
        if phase is ControllerPhase.CLOSED:
            raise ProtocolError(f"{_name(message)} received on a closed session")
        out = StepBuilder()
        if isinstance(message, Error):
            self._closed(f"the agent closed with {message.code}: {message.message}", now, out)
            out.actions.append(CloseConnection(f"agent error {message.code}"))
        elif phase is ControllerPhase.AWAITING_HELLO:
            self._on_hello(message, out)
        elif phase is ControllerPhase.AWAITING_REGISTER:
            if not isinstance(message, Register):
                raise ProtocolError(f"expected register after the hello, got {_name(message)}")
            if message.agent_id != self.agent_id:
                raise ProtocolError(
                    f"register names agent {message.agent_id!r}, the hello {self.agent_id!r}"
                )
            assert self.version is not None  # set by the hello
            self.phase = ControllerPhase.REGISTERING
            out.actions.append(RegistrationRequested(message, self.version, now))
        elif phase is ControllerPhase.REGISTERING:
            raise ProtocolError(f"{_name(message)} sent before the registration was answered")
        else:
            self._on_active(message, now, out)
        return out.build()

    def _on_hello(self, message: Message, out: StepBuilder) -> None:
        if not isinstance(message, Hello):
            raise ProtocolError(f"expected a hello as the first message, got {_name(message)}")
        try:
            self.version = negotiate_version(PROTOCOL, VERSIONS, message)
        except ProtocolVersionError as exc:
            raise VersionMismatch(str(exc)) from None
        if not self._authenticate(message):
            raise AuthenticationRefused(
                f"agent {message.node_id!r}: credentials refused; check the agent's token"
            )
        self.agent_id = message.node_id
        self.phase = ControllerPhase.AWAITING_REGISTER
        out.send.append(Hello(PROTOCOL, VERSIONS, self.controller_id))

    def _on_active(self, message: Message, now: float, out: StepBuilder) -> None:
        agent = self.agent_id or ""
        if isinstance(message, Heartbeat):
            if message.agent_id != agent:
                raise ProtocolError(f"heartbeat from {message.agent_id!r} on {agent!r}'s connection")
            if message.sequence <= self.last_sequence:
                raise ProtocolError(
                    f"heartbeat {message.sequence} after heartbeat {self.last_sequence}: "
                    "sequence numbers must rise"
                )
            self.last_sequence = message.sequence
            out.send.append(HeartbeatAck(message.sequence))
            out.actions.append(HeartbeatReceived(agent, message, now))
        elif isinstance(message, Progress):
            out.actions.append(ProgressReported(agent, message, now))
        elif isinstance(message, Completed):
            out.actions.append(AttemptCompleted(agent, message, now))
        elif isinstance(message, Failed):
            out.actions.append(AttemptFailed(agent, message, now))
        elif isinstance(message, Deregister):
            self.phase = ControllerPhase.CLOSED
            out.actions.append(AgentDeregistering(agent, message.reason, now))
            out.actions.append(CloseConnection("the agent deregistered"))
        else:
            raise ProtocolError(f"unexpected {_name(message)} from a registered agent")

    # -- the controller's answers and commands -------------------------------------------------

    def _require(self, *phases: ControllerPhase, what: str) -> None:
        if self.phase not in phases:
            raise SessionStateError(f"cannot {what} while the session is {self.phase}")

    def accept(
        self,
        *,
        heartbeat_interval: float,
        progress_interval: float,
        controllers: Sequence[ControllerAddress],
        abort: Sequence[JobAttempt] = (),
    ) -> Step:
        """The registration is recorded: tell the agent, with the attempts it must abort."""
        self._require(ControllerPhase.REGISTERING, what="accept a registration")
        self.phase = ControllerPhase.ACTIVE
        registered = Registered(
            True, heartbeat_interval, progress_interval, tuple(abort), tuple(controllers)
        )
        return Step(send=(registered,))

    def reject(self, reason: str) -> Step:
        """The registration is refused (e.g. the agent id is in use): tell it and close."""
        self._require(ControllerPhase.REGISTERING, what="reject a registration")
        self.phase = ControllerPhase.CLOSED
        return Step(
            send=(Registered(False, 0.0, 0.0, (), (), reason),),
            actions=(CloseConnection(f"registration rejected: {reason}"),),
        )

    def redirect(
        self, leader: ControllerAddress | None, controllers: Sequence[ControllerAddress]
    ) -> Step:
        """This controller is not (or no longer) the leader: name it, and close."""
        if self.phase is ControllerPhase.CLOSED:
            return Step()
        self.phase = ControllerPhase.CLOSED
        redirect = Redirect(
            leader.controller_id if leader else None, leader.address if leader else None,
            tuple(controllers),
        )
        return Step(send=(redirect,), actions=(CloseConnection("not the leader"),))

    def end(self, code: ErrorCode, message: str, now: float) -> Step:
        """End the session from the controller's side (the agent's access was withdrawn, say):
        an ``error`` saying why, then close; a registered agent is reported disconnected, so
        its attempts follow the usual path of an agent that went away. Nothing once closed."""
        if self.phase is ControllerPhase.CLOSED:
            return Step()
        out = StepBuilder()
        out.send.append(Error(code, message))
        self._closed(message, now, out)
        out.actions.append(CloseConnection(message))
        return out.build()

    def assign(self, assign: Assign) -> Step:
        self._require(ControllerPhase.ACTIVE, what="assign a job")
        return Step(send=(assign,))

    def abort(self, job_id: str, attempt: int, reason: str) -> Step:
        self._require(ControllerPhase.ACTIVE, what="abort an attempt")
        return Step(send=(Abort(job_id, attempt, reason),))

    def drain(self, timeout: float) -> Step:
        self._require(ControllerPhase.ACTIVE, what="drain the agent")
        return Step(send=(Drain(timeout),))

    def result_recorded(self, job_id: str, attempt: int, accepted: bool, reason: str = "") -> Step:
        """The runtime recorded (or refused) an attempt's result; nothing to send once the
        connection is gone (the agent resends the result after it re-registers)."""
        if self.phase is not ControllerPhase.ACTIVE:
            return Step()
        return Step(send=(ResultAck(job_id, attempt, accepted, reason),))

    # -- time and the connection -------------------------------------------------------------

    def tick(self, now: float) -> Step:
        """Close a connection whose agent has not said hello and register in time."""
        waiting = self.phase in (ControllerPhase.AWAITING_HELLO, ControllerPhase.AWAITING_REGISTER)
        if not waiting or now - self._opened_at < self.handshake_timeout:
            return Step()
        self.phase = ControllerPhase.CLOSED
        message = f"hello and register must arrive within {self.handshake_timeout:g} s"
        return Step(
            send=(Error(ErrorCode.TIMEOUT, message),), actions=(CloseConnection(message),)
        )

    def next_deadline(self) -> float | None:
        if self.phase in (ControllerPhase.AWAITING_HELLO, ControllerPhase.AWAITING_REGISTER):
            return self._opened_at + self.handshake_timeout
        return None

    def connection_lost(self, now: float, reason: str) -> Step:
        """The connection ended (or the runtime closed it)."""
        out = StepBuilder()
        self._closed(reason, now, out)
        return out.build()

    def _closed(self, reason: str, now: float, out: StepBuilder) -> None:
        registered = self.phase in (ControllerPhase.REGISTERING, ControllerPhase.ACTIVE)
        self.phase = ControllerPhase.CLOSED
        if registered and self.agent_id is not None:
            out.actions.append(AgentDisconnected(self.agent_id, reason, now))


__all__ = [
    "HANDSHAKE_TIMEOUT",
    "MISSED_HEARTBEATS",
    "PROGRESS_INTERVAL",
    "AgentPhase",
    "AgentSession",
    "ControllerPhase",
    "ControllerSession",
]
