"""The agent process's engine room: one task drives the sans-IO
:class:`~quorus.core.agentproto.AgentSession` with everything that happens — frames from the
controller, connections opening and failing, transfers progressing and ending, timers, drain
requests — and carries out what each step asks: send frames, open or close a connection, start
or abort a transfer, stop.

Only the driver task touches the session. Everything else (the connection's reader, the
connect attempts, the transfers) runs in its own task and reports to the driver through one
queue of events; a connection's events carry its generation, so those of a connection that was
replaced are dropped. Transfers run with the :class:`~quorus.core.engine.TransferEngine`
through :func:`~quorus.core.agent.attempt.run_attempt` (attempt-scoped staging names), at most
``max_concurrent`` at once (the session refuses more; the engine's limiter agrees).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import anyio
from anyio.abc import ByteStream, TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from quorus.core.agent.attempt import (
    AttemptFailedWith,
    AttemptOutcome,
    AttemptSucceeded,
    failure,
    protocol_options,
    run_attempt,
)
from quorus.core.agent.config import AgentConfig
from quorus.core.agent.inventory import StatusMeter, loadable_protocols, measure_resources
from quorus.core.agentproto import (
    AbortJob,
    AgentCapabilities,
    AgentPhase,
    AgentProtocolError,
    AgentSession,
    Assign,
    CloseConnection,
    ControllerError,
    DrainRequested,
    ErrorCode,
    JobAttempt,
    Message,
    MessageDecodeError,
    Reconnect,
    Register,
    RegisteredWith,
    RegistrationRejected,
    ResultRejected,
    Shutdown,
    StartJob,
    Step,
    from_wire,
    to_wire,
)
from quorus.core.engine import TransferEngine, TransferProgress
from quorus.core.errors import QuorusError
from quorus.core.netaddr import split_host_port
from quorus.core.plugins import PluginRegistry
from quorus.core.protocol import TransferProtocol
from quorus.core.protocols.file import FileProtocol
from quorus.core.tls import TlsHandshakeError
from quorus.core.tls import connect as tls_connect
from quorus.core.wire import ConnectionClosedError, FramedStream, WireError

log = logging.getLogger(__name__)

#: Sets of storage roots (tenants, in practice) that keep an engine of their own on an agent.
MAX_CONFINED_ENGINES = 64

#: Seconds a frame may take to send before the connection is given up as broken.
SEND_TIMEOUT = 10.0
#: Least seconds between two measurements of the machine for heartbeats.
SAMPLE_INTERVAL = 1.0


# -- what the driver hears ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Connected:
    generation: int
    framed: FramedStream


@dataclass(frozen=True, slots=True)
class _ConnectFailed:
    generation: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Received:
    generation: int
    message: Message


@dataclass(frozen=True, slots=True)
class _BadInput:
    generation: int
    error: AgentProtocolError


@dataclass(frozen=True, slots=True)
class _Lost:
    generation: int
    reason: str


@dataclass(frozen=True, slots=True)
class _JobProgress:
    key: JobAttempt
    progress: TransferProgress


@dataclass(frozen=True, slots=True)
class _JobEnded:
    key: JobAttempt
    outcome: AttemptOutcome | None  # None: aborted


@dataclass(frozen=True, slots=True)
class _DrainAsked:
    seconds: float


@dataclass(frozen=True, slots=True)
class _StopAsked:
    reason: str


_Event = (
    _Connected | _ConnectFailed | _Received | _BadInput | _Lost | _JobProgress | _JobEnded
    | _DrainAsked | _StopAsked
)


def agent_version() -> str:
    try:
        return metadata.version("quorus-core")
    except metadata.PackageNotFoundError:
        return "0"


def registration(config: AgentConfig, plugins: PluginRegistry | None = None) -> Register:
    """The agent's ``Register``: capabilities, resources, location and labels."""
    protocols = config.protocols if config.protocols is not None else loadable_protocols(plugins)
    bandwidth = config.bandwidth_limit * 8 / 1_000_000 if config.bandwidth_limit else None
    return Register(
        agent_id=config.agent_id,
        hostname=socket.gethostname(),
        version=agent_version(),
        capabilities=AgentCapabilities(
            tuple(protocols), config.max_concurrent, bandwidth, tuple(config.features)
        ),
        resources=measure_resources(config.work_dir),
        location=config.location,
        labels=dict(config.labels),
        tenant=config.tenant,
        namespace=config.namespace,
    )


class AgentRuntime:
    """Runs one agent until it is drained or stopped (see the module docstring).

    ``run`` returns why the agent stopped. ``drain`` and ``stop`` may be called from any task
    of the same event loop (the process's signal handler, a test).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        engine: TransferEngine | None = None,
        plugins: PluginRegistry | None = None,
    ) -> None:
        self.config = config
        self.session = AgentSession(
            registration(config, plugins), config.controllers, config.token,
            auth_method=config.auth_method, backoff=config.backoff,
        )
        self._plugins = plugins
        self._tls = config.tls_context()  # bad certificate files are refused here, at once
        self._engine = engine
        self._own_engine = engine is None
        # Engines whose file protocol is confined to a tenant's storage, one per set of
        # roots, so jobs of one tenant still share connections (see _confined_engine).
        self._confined: dict[tuple[str, ...], tuple[TransferEngine, FileProtocol]] = {}
        self.meter = StatusMeter(config.work_dir, bandwidth_limit=config.bandwidth_limit)
        send, receive = anyio.create_memory_object_stream[_Event](math.inf)
        self._events: MemoryObjectSendStream[_Event] = send
        self._inbox: MemoryObjectReceiveStream[_Event] = receive
        self._tg: TaskGroup | None = None
        #: The generation of the newest connect attempt; of the open connection.
        self._generation = 0
        self._conn: FramedStream | None = None
        self._conn_generation: int | None = None
        self._jobs: dict[JobAttempt, anyio.CancelScope] = {}
        self._moved: dict[JobAttempt, int] = {}
        self._next_sample = -math.inf
        self.stopped: str | None = None
        #: The controller this agent is registered with, if any.
        self.controller_id: str | None = None
        # Whether the log has said what follows a refusal of its credentials (once in a row).
        self._refusal_explained = False

    # -- control from outside ---------------------------------------------------------------------

    def drain(self, timeout: float | None = None) -> None:
        """Take no new work, let running transfers finish (``timeout`` seconds at most, the
        configured drain timeout by default), then deregister and stop."""
        self._post(_DrainAsked(self.config.drain_timeout if timeout is None else timeout))

    def stop(self, reason: str = "stopped") -> None:
        """Stop now: abort running transfers, close the connection (the controller reassigns
        the jobs once the agent's heartbeats stop)."""
        self._post(_StopAsked(reason))

    def _post(self, event: _Event) -> None:
        # Once the runtime has stopped nothing listens: the event is moot.
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._events.send_nowait(event)

    # -- the driver ---------------------------------------------------------------------------------

    async def run(self) -> str:
        """Run until the agent stops; returns the reason."""
        if self._engine is None:
            self._engine = TransferEngine(
                max_concurrent=self.config.max_concurrent, plugin_registry=self._plugins
            )
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self._apply(self.session.start(anyio.current_time()))
                while self.stopped is None:
                    await self._next()
                tg.cancel_scope.cancel()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await self._close_connection()
                if self._own_engine and self._engine is not None:
                    await self._engine.aclose()
                for confined, file_protocol in self._confined.values():
                    await confined.aclose()
                    await file_protocol.aclose()  # given to the engine, so not closed by it
                self._confined.clear()
                self._events.close()
                await self._discard_pending()
            self._inbox.close()
        reason = self.stopped or "cancelled"
        log.info("agent %s stopped: %s", self.config.agent_id, reason)
        return reason

    async def _discard_pending(self) -> None:
        """Close the connections of events the driver never got to (one made just as the agent
        stopped), so that no socket is left for the garbage collector."""
        while True:
            try:
                event = self._inbox.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return
            if isinstance(event, _Connected):
                await event.framed.aclose()

    async def _next(self) -> None:
        """Wait for one event or the session's next deadline, and handle it."""
        now = anyio.current_time()
        deadline = self.session.next_deadline()
        delay = math.inf if deadline is None else max(0.0, deadline - now)
        event: _Event | None = None
        with anyio.move_on_after(delay):
            event = await self._inbox.receive()
        if event is None:
            self._sample(anyio.current_time())
            await self._apply(self.session.tick(anyio.current_time()))
        else:
            await self._handle(event)

    def _sample(self, now: float) -> None:
        if now < self._next_sample:
            return
        self._next_sample = now + SAMPLE_INTERVAL
        metrics, health, unhealthy = self.meter.sample(
            now, connected=self.session.phase is AgentPhase.ACTIVE
        )
        self.session.update_status(metrics=metrics, health=health, unhealthy=unhealthy)

    async def _handle(self, event: _Event) -> None:
        now = anyio.current_time()
        session = self.session
        if isinstance(event, _Received):
            if event.generation != self._conn_generation:
                return
            try:
                step = session.receive(event.message, now)
            except AgentProtocolError as exc:
                await self._refuse(exc)
                return
            await self._apply(step)
        elif isinstance(event, _BadInput):
            if event.generation == self._conn_generation:
                await self._refuse(event.error)
        elif isinstance(event, _Lost):
            if event.generation == self._conn_generation:
                log.warning("connection to %s lost: %s", self._controller_name(), event.reason)
                await self._close_connection()
                await self._apply(session.connection_lost(now, event.reason))
        elif isinstance(event, _Connected):
            await self._connected(event, now)
        elif isinstance(event, _ConnectFailed):
            if event.generation == self._generation and session.phase is AgentPhase.DISCONNECTED:
                log.info("%s", event.reason)
                await self._apply(session.connection_failed(now, event.reason))
        elif isinstance(event, _JobProgress):
            await self._progress(event, now)
        elif isinstance(event, _JobEnded):
            await self._job_ended(event, now)
        elif isinstance(event, _DrainAsked):
            await self._drain(event.seconds, now)
        else:
            await self._stop_now(event.reason)

    async def _connected(self, event: _Connected, now: float) -> None:
        if event.generation != self._generation or self.session.phase is not AgentPhase.DISCONNECTED:
            with anyio.CancelScope(shield=True):
                await event.framed.aclose()
            return
        self._conn, self._conn_generation = event.framed, event.generation
        # Resources change (disk fills, memory moves): each registration measures them anew.
        self.session.registration = dataclasses.replace(
            self.session.registration, resources=measure_resources(self.config.work_dir)
        )
        assert self._tg is not None
        self._tg.start_soon(self._read, event.generation, event.framed)
        await self._apply(self.session.connected(now))

    async def _refuse(self, error: AgentProtocolError) -> None:
        """The controller broke the protocol: tell it why, close, and reconnect."""
        log.warning("closing the connection to %s: %s", self._controller_name(), error)
        await self._send(error.reply)
        await self._close_connection()
        await self._apply(self.session.connection_lost(anyio.current_time(), str(error)))

    async def _progress(self, event: _JobProgress, now: float) -> None:
        key, progress = event.key, event.progress
        moved = progress.bytes_done - self._moved.get(key, 0)
        self._moved[key] = progress.bytes_done
        self.meter.bytes_moved(moved)
        await self._apply(self.session.job_progress(
            key.job_id, key.attempt, progress.bytes_done, progress.total, progress.rate, now
        ))

    async def _job_ended(self, event: _JobEnded, now: float) -> None:
        key, outcome = event.key, event.outcome
        self._moved.pop(key, None)
        if isinstance(outcome, AttemptSucceeded):
            self.meter.transfer_ended(ok=True)
            log.info("job %s attempt %d completed: %d bytes, sha256 %s", key.job_id,
                     key.attempt, outcome.size, outcome.sha256)
            await self._apply(self.session.job_completed(
                key.job_id, key.attempt, outcome.size, outcome.sha256, outcome.duration, now
            ))
        elif isinstance(outcome, AttemptFailedWith):
            self.meter.transfer_ended(ok=False)
            log.warning("job %s attempt %d failed: %s: %s", key.job_id, key.attempt,
                        outcome.error_type, outcome.message)
            await self._apply(self.session.job_failed(
                key.job_id, key.attempt, outcome.error_type, outcome.message, outcome.retryable,
                now,
            ))
        else:
            self.meter.transfer_ended(ok=None)

    async def _drain(self, seconds: float, now: float) -> None:
        session = self.session
        log.info("draining: no new work; running transfers have %g s to finish", seconds)
        if (session.phase is AgentPhase.DISCONNECTED and not session.running
                and not session.unacknowledged):
            # Nothing runs and nothing is owed to a controller: no reason to wait for one.
            self.stopped = "drained while disconnected: nothing was running"
            return
        await self._apply(session.drain(now, seconds))

    async def _stop_now(self, reason: str) -> None:
        for scope in self._jobs.values():
            scope.cancel()
        self.stopped = reason

    # -- carrying out a step ----------------------------------------------------------------------

    async def _apply(self, step: Step) -> None:
        for message in step.send:
            await self._send(message)
        for action in step.actions:
            await self._act(action)

    async def _act(self, action: object) -> None:
        if isinstance(action, CloseConnection):
            log.debug("closing the connection: %s", action.reason)
            await self._close_connection()
        elif isinstance(action, Reconnect):
            self._generation += 1
            assert self._tg is not None
            self._tg.start_soon(self._connect, self._generation, action)
        elif isinstance(action, StartJob):
            self._start_job(action.assign)
        elif isinstance(action, AbortJob):
            log.info("aborting job %s attempt %d: %s", action.job_id, action.attempt, action.reason)
            scope = self._jobs.get(JobAttempt(action.job_id, action.attempt))
            if scope is not None:
                scope.cancel()
        elif isinstance(action, RegisteredWith):
            self.controller_id = action.controller_id
            self._refusal_explained = False
            log.info("registered with controller %s (heartbeat every %g s)",
                     action.controller_id, action.heartbeat_interval)
        elif isinstance(action, DrainRequested):
            log.info("drain requested: no new work")
        elif isinstance(action, RegistrationRejected):
            log.error("registration rejected: %s", action.reason)
        elif isinstance(action, ControllerError):
            log.error("the controller closed the connection: %s: %s", action.code, action.message)
            if action.code == ErrorCode.UNAUTHORIZED and not self._refusal_explained:
                self._refusal_explained = True  # once until it registers again
                log.error("agent %s: its credentials are refused: running transfers are "
                          "aborted; it retries with backoff (at most %g s apart) until they are "
                          "accepted again (a new token or certificate, a role bound again) or "
                          "it is stopped", self.config.agent_id,
                          self.session.directory.backoff.maximum)
        elif isinstance(action, ResultRejected):
            log.warning("the controller refused the result of job %s attempt %d: %s",
                        action.job_id, action.attempt, action.reason)
        elif isinstance(action, Shutdown):
            self.stopped = action.reason

    async def _send(self, message: Message) -> None:
        conn, generation = self._conn, self._conn_generation
        if conn is None or generation is None:
            return
        try:
            with anyio.fail_after(SEND_TIMEOUT):
                await conn.send(to_wire(message))
        except (OSError, TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError,
                WireError) as exc:
            self._post(_Lost(generation, f"sending failed: {type(exc).__name__}: {exc}"))

    async def _close_connection(self) -> None:
        conn, self._conn, self._conn_generation = self._conn, None, None
        if conn is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await conn.aclose()

    def _controller_name(self) -> str:
        return self.session.controller_id or self.session.directory.current.address

    # -- the tasks beside the driver --------------------------------------------------------------

    async def _connect(self, generation: int, reconnect: Reconnect) -> None:
        await anyio.sleep(max(0.0, reconnect.at - anyio.current_time()))
        address = reconnect.to.address
        host, port = split_host_port(address)
        try:
            with anyio.fail_after(self.config.connect_timeout):
                stream: ByteStream = await anyio.connect_tcp(host, port)
            if self._tls is not None:
                stream = await tls_connect(stream, self._tls, host, peer="the controller")
        except (OSError, TimeoutError, TlsHandshakeError) as exc:
            self._post(_ConnectFailed(generation, f"cannot connect to {address}: {exc}"))
            return
        log.info("connected to %s%s (%s)", address, " over TLS" if self._tls else "",
                 reconnect.reason)
        self._post(_Connected(generation, FramedStream(stream, peer="the controller")))

    async def _read(self, generation: int, framed: FramedStream) -> None:
        while True:
            try:
                raw = await framed.receive()
            except ConnectionClosedError as exc:
                self._post(_Lost(generation, str(exc)))
                return
            except WireError as exc:  # oversized or undecodable frame
                self._post(_BadInput(generation, MessageDecodeError(str(exc))))
                return
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                self._post(_Lost(generation, f"{type(exc).__name__}: {exc}"))
                return
            try:
                message = from_wire(raw)
            except AgentProtocolError as exc:
                self._post(_BadInput(generation, exc))
                return
            self._post(_Received(generation, message))

    def _start_job(self, assign: Assign) -> None:
        key = JobAttempt(assign.job_id, assign.attempt)
        log.info("starting job %s attempt %d", assign.job_id, assign.attempt)
        limit = self.config.bandwidth_limit
        if limit is not None:
            job_limit = assign.options.bandwidth_limit
            assign = dataclasses.replace(assign, options=dataclasses.replace(
                assign.options, bandwidth_limit=min(limit, job_limit or limit)
            ))
        scope = anyio.CancelScope()
        self._jobs[key] = scope
        self.meter.transfer_started()
        assert self._tg is not None
        self._tg.start_soon(self._run_job, key, assign, scope)

    async def _run_job(self, key: JobAttempt, assign: Assign, scope: anyio.CancelScope) -> None:
        outcome: AttemptOutcome | None = None

        def progressed(progress: TransferProgress) -> None:
            self._post(_JobProgress(key, progress))

        try:
            with scope:
                outcome = await self._attempt(assign, progressed)
        finally:
            self._jobs.pop(key, None)
            self._post(_JobEnded(key, outcome))

    async def _attempt(
        self, assign: Assign, progressed: Callable[[TransferProgress], None]
    ) -> AttemptOutcome:
        assert self._engine is not None
        roots = assign.options.storage_roots
        try:
            if not assign.options.protocol_options:
                engine = self._engine if roots is None else self._confined_engine(roots)
                if engine is not None:
                    return await run_attempt(engine, assign, progressed)
            # Per-job protocol options need protocol instances of their own.
            options = protocol_options(assign.options.protocol_options)
            async with contextlib.AsyncExitStack() as stack:
                given: dict[str, TransferProtocol] = {}
                if roots is not None:
                    given["file"] = await stack.enter_async_context(
                        FileProtocol({**options.get("file", {}), "confine": list(roots)}))
                engine = await stack.enter_async_context(TransferEngine(
                    protocol_options=options, protocols=given, max_concurrent=1,
                    plugin_registry=self._plugins))
                return await run_attempt(engine, assign, progressed)
        except QuorusError as exc:  # e.g. a malformed protocol option
            return failure(exc)
        except Exception as exc:  # a bug or an unexpected plugin error fails this job only
            log.exception("job %s attempt %d raised", assign.job_id, assign.attempt)
            return AttemptFailedWith(type(exc).__name__, f"unexpected error: {exc}", True)


    def _confined_engine(self, roots: tuple[str, ...]) -> TransferEngine | None:
        """The shared engine for jobs confined to ``roots`` (``None`` past
        :data:`MAX_CONFINED_ENGINES` sets of roots: the job then gets an engine of its own)."""
        found = self._confined.get(roots)
        if found is None:
            if len(self._confined) >= MAX_CONFINED_ENGINES:
                return None
            confined = FileProtocol({"confine": list(roots)})
            found = (TransferEngine(protocols={"file": confined},
                                    max_concurrent=self.config.max_concurrent,
                                    plugin_registry=self._plugins), confined)
            self._confined[roots] = found
        return found[0]


__all__ = ["SAMPLE_INTERVAL", "SEND_TIMEOUT", "AgentRuntime", "agent_version", "registration"]
