"""The controller's agent listener: one :class:`AgentLink` per TCP connection, speaking the
``quorus-agent`` protocol through the sans-IO
:class:`~quorus.core.agentproto.ControllerSession`.

The link feeds frames and timer ticks to the session and carries out what it asks: messages
to send, and actions the controller records (registration, results and deregistration go
through consensus; heartbeats and progress are soft state). A frame that is not a message,
a message out of order, wrong credentials or a wrong version is answered with the session's
``error`` and the connection closed, with nothing recorded. On a node that does not lead,
registration is answered with a ``redirect`` to the leader.

:func:`serve_agent` accepts a connection: on a TLS agent port it runs the handshake first
(a plain TCP client, or a certificate the configured CA did not issue or that expired, is
refused with a log line saying which) and keeps the certificate the handshake verified. The
hello is judged by the controller's agent auth method (:func:`agent_authenticator`): ``token``
reads the hello's token; another method (``mtls``) gets the verified certificate, never what
the agent sends, and the principal it proves must be the agent's id. A refusal the method can
explain (its optional ``why_refused``: a revoked or expired token) is told as it is.

The judgement holds only as long as the access it found: :meth:`AgentLink.access_problem`
judges a registered link again the same way (the hello's credentials, then ``agents.register``
where the agent serves), and :meth:`AgentLink.end` closes one no longer allowed with an
``unauthorized`` error; the server decides when (see :meth:`ControllerServer.review_agents`).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteStream, SocketAttribute
from quorus.core import tls
from quorus.core.agentproto import (
    AgentDeregistering,
    AgentDisconnected,
    AgentProtocolError,
    AttemptCompleted,
    AttemptFailed,
    AuthenticationRefused,
    CloseConnection,
    ControllerSession,
    Error,
    ErrorCode,
    HeartbeatReceived,
    JobAttempt,
    Message,
    ProgressReported,
    RegistrationRequested,
    Step,
    from_wire,
    to_wire,
)
from quorus.core.auth import Authenticator, Principal, TokenAuth, load_authenticator
from quorus.core.controller import model
from quorus.core.controller.commands import (
    CompleteAttempt,
    DeregisterAgent,
    FailAttempt,
    JobStarted,
    RegisterAgent,
)
from quorus.core.controller.model import AgentState, JobState
from quorus.core.controller.service import (
    CommandRefused,
    LeaderElsewhere,
    ServiceError,
    Unavailable,
)
from quorus.core.controller.settings import ControllerSettings
from quorus.core.secrets import Secret, resolve_secret
from quorus.core.wire import ConnectionClosedError, FramedStream, Hello, WireError

if TYPE_CHECKING:
    from quorus.core.agentproto import Register
    from quorus.core.controller.server import ControllerServer

log = logging.getLogger(__name__)

#: The longest a link being closed waits to send its last frames (an error, a redirect).
CLOSING_SEND_TIMEOUT = 1.0


# -- the agent port's TLS and auth method, from the settings --------------------------------------


def agent_tls_context(settings: ControllerSettings) -> ssl.SSLContext | None:
    """The agent port's TLS server context (``None``: plain TCP); with ``agent_tls_ca``,
    agents must present a certificate that CA issued."""
    if settings.agent_tls_cert is None:
        return None
    return tls.server_context(
        settings.agent_tls_cert, settings.agent_tls_key, ca=settings.agent_tls_ca,
        key_password=resolve_secret(settings.agent_tls_key_password), setting="agent_tls",
    )


def agent_authenticator(settings: ControllerSettings, token: Secret,
                        token_authenticator: Authenticator | None = None) -> Authenticator:
    """The auth method agents' hellos are judged by: ``token`` (the controller's token, or
    ``token_authenticator`` when given) unless ``agent_auth`` names another method of the
    ``quorus.auth`` group, configured by ``agent_auth_options`` (the ``mtls`` method's ``ca``
    defaults to ``agent_tls_ca``)."""
    options: dict[str, Any] = dict(settings.agent_auth_options)
    if settings.agent_auth == "token":
        if not options and token_authenticator is not None:
            return token_authenticator
        options.setdefault("token", token)
        return TokenAuth.from_options(options)
    if settings.agent_auth == "mtls" and settings.agent_tls_ca is not None:
        options.setdefault("ca", settings.agent_tls_ca)
    return load_authenticator(settings.agent_auth, options)


class ControllerTokens:
    """Agents' ``token`` method on a controller: its own token, then the API tokens its
    extensions know (a tenant's service account, say), whose registrations are then
    authorized like any other action (``agents.register`` in the tenant served)."""

    method = "token"

    def __init__(self, server: ControllerServer) -> None:
        self._server = server

    def authenticate(self, credentials: Mapping[str, Any]) -> Principal | None:
        token = credentials.get("token")
        return self._server.authenticate_token(token) if isinstance(token, str) else None

    def why_refused(self, credentials: Mapping[str, Any]) -> str | None:
        """Why an API token proves nothing (revoked, expired, its principal deleted), as the
        extension that knows it says."""
        token = credentials.get("token")
        return self._server.token_refusal(token) if isinstance(token, str) else None


def refusal_reason(authenticator: Authenticator, credentials: Mapping[str, Any]) -> str | None:
    """Why ``credentials`` prove nothing, when the auth method can say (its optional
    ``why_refused``: a revoked or expired token, an expired certificate)."""
    why = getattr(authenticator, "why_refused", None)
    reason = why(credentials) if callable(why) else None
    return reason if isinstance(reason, str) and reason else None


def hello_credentials(hello: Hello, method: str, verified: Mapping[str, Any]) -> dict[str, Any]:
    """What ``method`` judges: the hello's credentials when it names ``method`` (less any key
    only the TLS layer may fill), plus ``verified`` (the TLS layer's); ``verified`` alone
    otherwise."""
    if hello.auth_method != method:
        return dict(verified)
    sent = {k: v for k, v in hello.credentials.items() if k != tls.PEER_CERTIFICATE}
    return {**sent, **verified}


async def serve_agent(server: ControllerServer, stream: ByteStream) -> None:
    """One accepted agent connection: the TLS handshake when the port is TLS, then the link."""
    context = server.agent_tls
    verified: dict[str, Any] = {}
    if context is not None:
        address = stream.extra(SocketAttribute.remote_address, None)
        source = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        try:
            stream = await tls.accept(stream, context, peer="the agent")
        except tls.TlsHandshakeError as exc:
            log.warning("agent connection from %s refused: %s", source, exc)
            return
        verified = tls.peer_credentials(stream)
    await AgentLink(server, stream, verified).run()


def register_command(register: Register, at: float) -> RegisterAgent:
    """The replicated command for an agent's ``register`` message."""
    caps = register.capabilities
    res = register.resources
    loc = register.location
    return RegisterAgent(
        agent_id=register.agent_id, at=at, hostname=register.hostname,
        version=register.version,
        capabilities=model.AgentCapabilities(
            protocols=tuple(caps.protocols), max_concurrent=caps.max_concurrent_transfers,
            max_bandwidth_mbps=caps.max_bandwidth_mbps, features=tuple(caps.supported_features),
        ),
        resources=model.AgentResources(
            cpu_cores=res.cpu.cores or None, cpu_architecture=res.cpu.architecture or None,
            memory_total_mb=res.memory.total_mb or None,
            memory_available_mb=res.memory.available_mb or None,
            storage_total_gb=res.storage.total_gb or None,
            storage_available_gb=res.storage.available_gb or None,
            network_interfaces=tuple(res.network.interfaces),
            network_bandwidth_mbps=res.network.total_bandwidth_mbps,
        ),
        location=model.AgentLocation(
            datacenter=loc.datacenter or None, zone=loc.zone or None, region=loc.region or None,
            tags=tuple(loc.tags),
        ),
        labels=dict(register.labels),
        holding=tuple(model.AttemptRef(j.job_id, j.attempt) for j in register.current_jobs),
        tenant=register.tenant, namespace=register.namespace,
    )


class AgentLink:
    """One agent connection (see the module docstring)."""

    def __init__(self, server: ControllerServer, stream: ByteStream,
                 verified: Mapping[str, Any] | None = None) -> None:
        self.server = server
        self.framed = FramedStream(stream, max_frame_size=server.settings.max_agent_frame_bytes,
                                   peer="the agent")
        #: The credentials the TLS layer verified (the agent's certificate), if any.
        self.verified: dict[str, Any] = dict(verified or {})
        #: Who the agent proved to be, once its hello is accepted.
        self.principal: Principal | None = None
        #: The hello that proved it, and the tenant and namespace the agent registered to
        #: serve: what :meth:`access_problem` judges again while the session lasts.
        self._hello: Hello | None = None
        self._serving: tuple[str, str] | None = None
        self.session = ControllerSession(
            server.settings.node_id, self._authenticate, now=anyio.current_time()
        )
        self.closed = False
        #: Answers held while the frames of one read are handled (sent by ``_flush``).
        self._outbox: list[Message] = []
        #: Steps the server pushed, for the push task.
        self._pushed: list[Step] = []
        self._push_wake = anyio.Event()
        #: Attempts whose start was proposed on this link (proposed once each), and whether
        #: that proposal has settled (a result waits for it, so it is applied after it).
        self._started: dict[str, tuple[int, anyio.Event]] = {}
        #: Starts reported in the read being handled, not proposed yet.
        self._start_wanted: dict[str, JobStarted] = {}
        #: Set by :meth:`end`: what the agent sends from then on is dropped.
        self._ending = False

    def _authenticate(self, hello: Hello) -> bool:
        """Judge the hello with the controller's agent auth method; refuse, saying why, an
        agent whose credentials prove nothing or name someone else. The ``token`` method
        proves who holds the token (who may then register agents where they are allowed);
        any other method (``mtls``, an installed one) proves the agent itself, so the
        principal must be the agent's id."""
        authenticator = self.server.agent_authenticator
        method = authenticator.method
        credentials = hello_credentials(hello, method, self.verified)
        principal = authenticator.authenticate(credentials)
        if principal is None:
            reason = refusal_reason(authenticator, credentials)
            if reason is not None:  # an expired or revoked token, say: told as it is
                raise AuthenticationRefused(
                    f"agent {hello.node_id!r}: credentials refused: {reason}")
            if method == "token":
                return False
            if hello.auth_method == method:
                presented = f"the {method!r} credentials it sent"
            elif self.verified:
                presented = ("a certificate for "
                             f"{tls.peer_name(self.verified.get(tls.PEER_CERTIFICATE))!r}")
            else:
                presented = "no client certificate"
            if hello.auth_method is not None and hello.auth_method != method:
                presented += f" (its hello names the {hello.auth_method!r} method)"
            raise AuthenticationRefused(
                f"agent {hello.node_id!r}: the {method!r} auth method accepts no principal "
                f"from {presented}"
            )
        if method != "token" and principal.name != hello.node_id:
            proof = ("presented a certificate for" if tls.PEER_CERTIFICATE in credentials
                     and hello.auth_method != method else "proved to be")
            raise AuthenticationRefused(
                f"agent {hello.node_id!r} {proof} {principal.name!r}: an agent's id must be "
                f"the principal its credentials prove (the {method!r} auth method names "
                "agents)"
            )
        self.principal = principal
        self._hello = hello
        log.info("agent %s authenticated as %s (%s)", hello.node_id, principal.name,
                 principal.method)
        return True

    def access_problem(self) -> str | None:
        """Why the registered agent may no longer keep its session, judged as its hello and
        registration were: its credentials prove nothing any more (a revoked or expired token,
        a deleted principal, an expired certificate) or someone else, or its principal may
        no longer register agents (``agents.register``) where it serves. ``None`` when it
        may, or when the link is not registered. A verdict that allows is not reported to
        the extensions' ``authorized`` observers (an audit trail would fill with re-checks);
        a refusal is."""
        hello, principal, serving = self._hello, self.principal, self._serving
        if hello is None or principal is None or serving is None or not self.session.active:
            return None
        server = self.server
        authenticator = server.agent_authenticator
        credentials = hello_credentials(hello, authenticator.method, self.verified)
        found = authenticator.authenticate(credentials)
        if found is None:
            reason = (refusal_reason(authenticator, credentials)
                      or f"the {authenticator.method!r} auth method no longer accepts them")
            return f"its credentials are refused: {reason}"
        if found != principal:
            return (f"its credentials now prove {found.name!r} ({found.method}), not "
                    f"{principal.name!r}")
        tenant, namespace = serving
        refused = server.authorization(principal, "agents.register", tenant, namespace,
                                       record_allowed=False)
        if refused is not None:
            return f"{principal.name} may no longer register agents in tenant {tenant}: {refused}"
        return None

    async def end(self, problem: str) -> None:
        """End the session because the agent's access was withdrawn: an ``unauthorized``
        error saying why goes to the agent, the link closes, and the agent is disconnected
        (its attempts follow the path of any agent that went away: reassigned once its
        heartbeat timeout passes). Returns at once; the link's push task does the rest."""
        agent_id = self.agent_id
        step = self.session.end(ErrorCode.UNAUTHORIZED, problem, anyio.current_time())
        if not step.send:
            return
        log.warning("agent %s: session ended: %s", agent_id, problem)
        self._ending = True
        if agent_id is not None:
            # Gone at once, so no round plans for it; the step's own notice finds it gone.
            self.server.agent_gone(agent_id, self)
        await self.push(step)

    @property
    def agent_id(self) -> str | None:
        return self.session.agent_id

    # -- the connection's loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it ends; what the server pushes meanwhile is sent by a
        task of the link's own (so a scheduling round never waits for one agent's socket)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._push_loop)
            try:
                await self._serve()
            finally:
                tg.cancel_scope.cancel()

    async def _serve(self) -> None:
        reason = "connection closed"
        try:
            while not self.closed:
                deadline = self.session.next_deadline()
                if deadline is None:
                    # Registered: no timer, so no cancel scope around every frame (heartbeats
                    # arrive by the thousand per second on a large fleet's leader).
                    raw = await self.framed.receive()
                else:
                    raw = None
                    delay = max(0.0, deadline - anyio.current_time())
                    with anyio.move_on_after(delay) as waited:
                        raw = await self.framed.receive()
                    if waited.cancelled_caught:
                        await self.carry_out(self.session.tick(anyio.current_time()))
                        continue
                if self._ending:
                    self.framed.receive_ready()  # dropped: the link closes once told why
                    continue
                now = anyio.current_time()
                await self.carry_out(self.session.receive(from_wire(raw), now), defer=True)
                # Frames that came in the same read are handled before anything is written,
                # so their answers go out together.
                for raw in self.framed.receive_ready():
                    if self.closed:
                        break
                    await self.carry_out(self.session.receive(from_wire(raw), now), defer=True)
                await self._flush()
        except AgentProtocolError as exc:
            reason = str(exc)
            log.log(logging.WARNING if isinstance(exc, AuthenticationRefused) else logging.INFO,
                    "agent connection closed: %s", exc)
            await self._send_quietly(exc.reply)
        except ConnectionClosedError as exc:
            reason = str(exc)
        except WireError as exc:  # oversized or undecodable frame
            reason = str(exc)
            log.info("agent connection closed: %s", exc)
            await self._send_quietly(Error(ErrorCode.MALFORMED, str(exc)))
        finally:
            with anyio.CancelScope(shield=True):
                await self._close()
                await self.carry_out(self.session.connection_lost(anyio.current_time(), reason))

    async def _send_quietly(self, message: Message) -> None:
        """Send what is held and ``message`` before the connection closes, if it can."""
        held, self._outbox = self._outbox, []
        try:
            with anyio.move_on_after(1):
                await self.framed.send_many([to_wire(m) for m in (*held, message)])
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, WireError):
            pass

    async def _close(self) -> None:
        self.closed = True
        self._outbox = []
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self.framed.aclose()

    async def push(self, step: Step) -> None:
        """Have a step the server made (an assignment, an abort, a drain, a redirect) carried
        out by the link's push task; returns at once."""
        await self.push_all([step])

    async def push_all(self, steps: list[Step]) -> None:
        """Have several steps carried out (a round's assignments): what is pushed before the
        push task runs goes out in one write. Returns at once."""
        if not self.closed and steps:
            self._pushed.extend(steps)
            self._push_wake.set()

    async def _push_loop(self) -> None:
        while True:
            await self._push_wake.wait()
            self._push_wake = anyio.Event()
            while self._pushed and not self.closed:
                steps, self._pushed = self._pushed, []
                messages = [m for step in steps for m in step.send]
                if any(type(a) is CloseConnection for step in steps for a in step.actions):
                    # Closing anyway: an agent that does not read its socket does not keep
                    # the link open.
                    with anyio.move_on_after(CLOSING_SEND_TIMEOUT):
                        await self._send(messages)
                else:
                    await self._send(messages)
                for step in steps:
                    if step.actions:
                        await self.carry_out(Step(actions=step.actions))

    async def _send(self, messages: list[Message]) -> None:
        if not messages or self.closed:
            return
        try:
            if len(messages) == 1:
                await self.framed.send(to_wire(messages[0]))
            else:
                await self.framed.send_many([to_wire(m) for m in messages])
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._close()

    async def _flush(self) -> None:
        """Send the answers held while handling frames (heartbeat acknowledgements), and
        propose the attempt starts they reported."""
        if self._start_wanted:
            self._propose_starts()
        await self._send_held()

    async def _send_held(self) -> None:
        if self._outbox:
            held, self._outbox = self._outbox, []
            await self._send(held)

    async def carry_out(self, step: Step, *, defer: bool = False) -> None:
        """Send what ``step`` says and take its actions. With ``defer``, a step that only
        acknowledges heartbeats is held for :meth:`_flush` (one write for a read's frames);
        anything else first sends what is held, so the order on the wire stays the order of
        the steps."""
        actions = step.actions
        if defer and all(type(a) is HeartbeatReceived for a in actions):
            self._outbox.extend(step.send)
            for action in actions:
                self._heartbeat(action)  # type: ignore[arg-type]
            return
        if self._outbox:
            await self._send_held()
        await self._send(list(step.send))
        for action in actions:
            if isinstance(action, CloseConnection):
                await self._close()
            elif isinstance(action, RegistrationRequested):
                await self.carry_out(await self._register(action))
            elif isinstance(action, HeartbeatReceived):
                self._heartbeat(action)
            elif isinstance(action, ProgressReported):
                self._progress(action)
            elif isinstance(action, AttemptCompleted | AttemptFailed):
                await self.carry_out(await self._result(action))
            elif isinstance(action, AgentDeregistering):
                await self._deregistering(action)
            elif isinstance(action, AgentDisconnected):
                self.server.agent_gone(action.agent_id, self)

    # -- what the agent said --------------------------------------------------------------------

    async def _register(self, action: RegistrationRequested) -> Step:
        server = self.server
        if not server.leading:
            return self._redirect()
        agent_id = action.register.agent_id
        register = action.register
        for what, name in (("tenant", register.tenant), ("namespace", register.namespace)):
            if not 0 < len(name) <= 256 or not name.isprintable():
                return self.session.reject(
                    f"the registration's {what} {name[:40]!r} is not 1 to 256 printable "
                    "characters")
        if self.principal is not None:
            # An agent serves a tenant only if whoever it proved to be may register agents
            # there (a dedicated agent of acme needs agents.register in acme).
            refused = server.authorization(self.principal, "agents.register", register.tenant,
                                           register.namespace)
            if refused is not None:
                log.warning("agent %s refused: %s may not register agents in tenant %s: %s",
                            agent_id, self.principal.name, register.tenant, refused)
                return self.session.reject(
                    f"{self.principal.name} may not register agents in tenant "
                    f"{register.tenant}: {refused}")
        self._serving = (register.tenant, register.namespace)
        try:
            applied = await server.propose(register_command(register, time.time()))
        except LeaderElsewhere:
            return self._redirect()
        except CommandRefused as exc:
            return self.session.reject(str(exc))
        except Unavailable as exc:
            await self._send_quietly(Error(ErrorCode.INTERNAL, str(exc)))
            await self._close()
            return Step()
        abort = [JobAttempt(o.job_id, o.attempt) for o in applied.abort if o.agent_id == agent_id]
        step = self.session.accept(
            heartbeat_interval=server.settings.heartbeat_interval,
            progress_interval=server.settings.progress_interval,
            controllers=server.controller_addresses(), abort=abort,
        )
        await self.carry_out(step)
        await server.agent_registered(agent_id, self)
        # Access withdrawn while the registration was being recorded (a review of the links
        # skips one not yet registered): judged again now.
        problem = self.access_problem() if server.reviews_agents else None
        if problem is not None:
            await self.end(problem)
            return Step()
        agent = server.state.agent(agent_id)
        if agent is not None and agent.state is AgentState.DRAINING and agent.drain_deadline:
            return self.session.drain(max(0.0, agent.drain_deadline - time.time()))
        return Step()

    def _redirect(self) -> Step:
        return self.session.redirect(self.server.leader_address(), self.server.controller_addresses())

    def _heartbeat(self, action: HeartbeatReceived) -> None:
        server = self.server
        heartbeat = action.heartbeat
        now = time.time()
        server.liveness.heartbeat(
            action.agent_id, now, sequence=heartbeat.sequence,
            free_slots=heartbeat.available_capacity,
        )
        # Kept as received: the report the API shows is built when it is read.
        server.soft.reports.record(action.agent_id, heartbeat, now)

    def _progress(self, action: ProgressReported) -> None:
        server = self.server
        progress = action.progress
        server.soft.record_progress(progress, time.time())
        job = server.state.job(progress.job_id)
        if (job is not None and job.state is JobState.ASSIGNED and job.attempt == progress.attempt
                and job.agent_id == action.agent_id):
            known = self._started.get(job.id)
            if known is not None and known[0] == progress.attempt:
                return
            # Proposed once this read's frames are handled (see _propose_starts), or with
            # the attempt's result if that came in the same read.
            self._start_wanted[job.id] = JobStarted(job.id, action.agent_id, progress.attempt,
                                                    time.time())

    def _propose_starts(self) -> None:
        """Propose the starts of this read's attempts, without waiting: the link goes on
        reading. An attempt's result, when it comes, waits for its start to settle, so the
        start is applied first."""
        wanted, self._start_wanted = self._start_wanted, {}
        for job_id, command in wanted.items():
            settled = anyio.Event()
            self._started[job_id] = (command.attempt, settled)
            self.server.propose_soon(command, settled.set)

    async def _result(self, action: AttemptCompleted | AttemptFailed) -> Step:
        server = self.server
        now = time.time()
        if isinstance(action, AttemptCompleted):
            done = action.completed
            job_id, attempt = done.job_id, done.attempt
            command: CompleteAttempt | FailAttempt = CompleteAttempt(
                job_id, action.agent_id, attempt, now, done.bytes_transferred, done.sha256
            )
        else:
            failed = action.failed
            job_id, attempt = failed.job_id, failed.attempt
            command = FailAttempt(job_id, action.agent_id, attempt, now,
                                  f"{failed.error_type}: {failed.message}", failed.retryable)
        wanted = self._start_wanted.pop(job_id, None)
        if wanted is not None and wanted.attempt != attempt:  # another attempt's start
            self._start_wanted[job_id] = wanted
            wanted = None
        starting = self._started.pop(job_id, None)
        if starting is not None:
            await starting[1].wait()
        if wanted is not None:
            # The start came in the same read: both go together, the start first.
            started, outcome = await server.propose_all([wanted, command])
            if isinstance(started, ServiceError):
                log.debug("job %s not marked running: %s", job_id, started)
        else:
            try:
                outcome = await server.propose(command)
            except ServiceError as exc:
                outcome = exc
        if isinstance(outcome, CommandRefused):
            return self.session.result_recorded(job_id, attempt, False, str(outcome))
        if isinstance(outcome, ServiceError):
            # Not recorded: the agent resends the result once registered with the leader.
            await self._close()
            return Step()
        applied = outcome
        server.result_recorded(action.agent_id, job_id)
        return self.session.result_recorded(job_id, attempt, True, applied.message)

    async def _deregistering(self, action: AgentDeregistering) -> None:
        try:
            await self.server.propose(DeregisterAgent(action.agent_id, time.time(), action.reason))
        except (CommandRefused, LeaderElsewhere, Unavailable) as exc:
            log.info("agent %s deregistration not recorded: %s", action.agent_id, exc)
        self.server.agent_gone(action.agent_id, self, forget=True)


__all__ = [
    "AgentLink",
    "agent_authenticator",
    "agent_tls_context",
    "hello_credentials",
    "register_command",
    "serve_agent",
]
