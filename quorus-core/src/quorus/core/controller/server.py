"""The controller process: the consensus backend replicating :class:`ControllerState`, the
agent listener, the REST API, and — on the leader only — the scheduler and liveness loops.

- The scheduler loop runs when woken (a submission, a result, a registration, an agent that
  went away) and on a short timer: it plans a round with
  :func:`~quorus.core.controller.scheduler.schedule` over the agents connected to this
  leader, proposes each ``AssignJob`` and pushes the ``assign`` to the agent's connection.
  Why the others wait is kept for the API.
- The liveness loop proposes ``ExpireAgent``, ``AgentStateChanged`` and ``DeregisterAgent``
  as :class:`~quorus.core.controller.liveness.Liveness` finds them due. Heartbeats and
  progress are soft state (:mod:`.softstate`), never consensus writes.
- Leadership is watched: a node that becomes leader waits for its replica to catch up (a
  read barrier), starts its liveness clock afresh (every agent gets a full timeout of grace)
  and begins scheduling; a node that loses it redirects its agents to the new leader.
- Every abort order in a command's result (a cancelled job, a job taken back from an agent)
  is pushed to the agent that holds the attempt.
- Connected agents' access is judged again (:meth:`ControllerServer.review_agents`), as their
  hello and registration were: every link after a command a state module names in its
  optional ``access_commands`` (a token revoked, a role binding taken back), and a bounded
  number of links in turn every :data:`AGENT_REVIEW_INTERVAL` (a token or a certificate that
  merely expires). A link no longer allowed gets an ``unauthorized`` error and closes; its
  agent's attempts follow the usual path (taken back once its heartbeat timeout passes). A
  controller whose agents can only hold its own token, with nothing authorizing, skips this.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import sniffio
from anyio.abc import ByteStream, TaskGroup, TaskStatus
from quorus.core.agentproto import Assign, ControllerAddress, TransferOptions
from quorus.core.auth import (
    Authenticator,
    Principal,
    TokenAuth,
    ensure_token_file,
    load_authenticator,
)
from quorus.core.consensus import (
    ConsensusBackend,
    ConsensusConfig,
    ConsensusError,
    NotLeader,
    load_backend,
)
from quorus.core.controller.agentlink import (
    AgentLink,
    ControllerTokens,
    agent_authenticator,
    agent_tls_context,
    serve_agent,
)
from quorus.core.controller.commands import Command
from quorus.core.controller.extension import ControllerExtension
from quorus.core.controller.groupcommit import GroupCommit
from quorus.core.controller.liveness import Liveness
from quorus.core.controller.model import JobRecord
from quorus.core.controller.probes import LoopLagProbe
from quorus.core.controller.results import Applied, Rejected
from quorus.core.controller.scheduler import Assignment, schedule
from quorus.core.controller.service import (
    CommandRefused,
    ControllerService,
    LeaderElsewhere,
    ServiceError,
    Unavailable,
)
from quorus.core.controller.settings import ControllerSettings, PeerAddresses, split_address
from quorus.core.controller.softstate import SoftState
from quorus.core.controller.state import (
    ControllerState,
    JobConstraints,
    installed_state_modules,
)
from quorus.core.engine.model import OverwritePolicy
from quorus.core.secrets import Secret, resolve_secret

log = logging.getLogger(__name__)

#: How often leadership is checked, and the most assignments proposed in one round.
LEADERSHIP_POLL = 0.05
# An extension whose leader task failed is started again after this many seconds.
EXTENSION_RESTART_DELAY = 1.0
ROUND_LIMIT = 500
# Scheduling rounds whose assignments may be being committed at once.
ROUNDS_IN_FLIGHT = 4
# Between scheduling rounds, a pause of this many times the last round's planning time, when
# that comes to at least MIN_ROUND_PAUSE (a small fleet never waits), and at most
# MAX_ROUND_PAUSE.
ROUND_SPACING = 4.0
MIN_ROUND_PAUSE = 0.002
MAX_ROUND_PAUSE = 0.02
# Connected agents' access is judged again (see ControllerServer.review_agents) every this
# many seconds, this many links at a time in turn; after a command that may withdraw access,
# every link, this many at a time with a pause for other tasks between.
AGENT_REVIEW_INTERVAL = 1.0
AGENT_REVIEW_BATCH = 256


def transfer_options(job: JobRecord, constraints: JobConstraints | None = None
                     ) -> TransferOptions:
    """What an agent needs to know of a job's options, with the state modules'
    ``constraints`` on it (a bandwidth cap lowers the job's own; storage roots confine it)."""
    options = job.options
    checksum = options.checksum
    digest = checksum.split(":", 1)[1].lower() if checksum and checksum.lower().startswith(
        "sha256:") else None
    bandwidth = (int(options.bandwidth_mbps * 1_000_000 / 8)
                 if options.bandwidth_mbps else None)
    roots = None
    if constraints is not None:
        if constraints.bandwidth_limit is not None:
            bandwidth = min(bandwidth or constraints.bandwidth_limit, constraints.bandwidth_limit)
        roots = constraints.storage_roots
    return TransferOptions(
        checksum=digest, size=options.expected_size,
        overwrite=OverwritePolicy(options.overwrite), bandwidth_limit=bandwidth or None,
        protocol_options=dict(options.protocol_options), size_min=options.size_min,
        size_max=options.size_max, mode=options.mode,
        create_directories=options.create_directories, streams=options.streams,
        storage_roots=roots,
    )


def assign_message(job: JobRecord, constraints: JobConstraints | None = None) -> Assign:
    return Assign(job.id, job.attempt, job.source, job.destination,
                  transfer_options(job, constraints), job.tenant, job.namespace)


class ControllerServer:
    """One controller process (see the module docstring). Run it with ``await run()`` (or
    ``task_group.start(server.run)``, which returns once it listens); :meth:`stop` ends it."""

    def __init__(
        self,
        settings: ControllerSettings,
        *,
        backend_factory: Callable[[ConsensusConfig, ControllerState], ConsensusBackend]
        | None = None,
        extensions: Sequence[ControllerExtension] | None = None,
    ) -> None:
        self.settings = settings
        self._state = ControllerState(installed_state_modules())
        self._soft = SoftState()
        self._liveness = Liveness(settings.heartbeat_interval, settings.missed_heartbeats)
        self.token, self.token_file, self.token_created = self._resolve_token()
        self.authenticator: Authenticator = self._make_authenticator()
        # Agents may be judged by another method (their TLS certificates, "mtls").
        self.agent_authenticator = agent_authenticator(settings, self.token,
                                                       ControllerTokens(self))
        self.agent_tls = agent_tls_context(settings)
        config = ConsensusConfig(
            node_id=settings.node_id,
            members=settings.raft_members,
            data_dir=settings.data_dir / "consensus",
            storage=settings.storage,
            snapshot_every=settings.snapshot_every,
            options=self._consensus_options(),
        )
        if backend_factory is not None:
            self._backend = backend_factory(config, self._state)
        else:
            self._backend = load_backend(settings.consensus, config, self._state)
        self.service = ControllerService(self)
        self._commit = GroupCommit(self._backend.propose)
        self.links: dict[str, AgentLink] = {}
        self.leading = False
        self._wake = anyio.Event()
        #: How late this controller's event loop runs what is due (``/metrics``).
        self.loop_lag = LoopLagProbe()
        self._stopping = anyio.Event()
        self._http_shutdown = anyio.Event()
        self.started_at = time.time()
        self.extensions: list[ControllerExtension] = (
            installed_extensions() if extensions is None else list(extensions))
        # Extensions may authenticate principals of their own (API tokens of users and service
        # accounts) and decide what each may do; the controller's token is always tried first.
        self._authenticators: list[Authenticator] = []
        for extension in self.extensions:
            make = getattr(extension, "authenticator", None)
            found = make(self.service) if callable(make) else None
            if found is not None:
                self._authenticators.append(found)
        self._authorizers: list[Callable[..., str | None]] = []
        self._verdict_observers: list[Callable[..., None]] = []
        for extension in self.extensions:
            authorize = getattr(extension, "authorize", None)
            if callable(authorize):
                self._authorizers.append(authorize)
            authorized = getattr(extension, "authorized", None)
            if callable(authorized):
                self._verdict_observers.append(authorized)
        # Commands after which every connected agent's access is judged again (a revoked
        # token, a deleted principal, a role binding taken back): those state modules name
        # in their optional ``access_commands``. Nothing to judge again when agents can only
        # hold a fixed token and nothing authorizes.
        self._access_commands = frozenset(
            command_type for module in self._state.modules.values()
            for command_type in getattr(module, "access_commands", ()))
        self._access_changed = anyio.Event()
        self._review_pending: list[str] = []
        self._reviews_agents = bool(self._authenticators or self._authorizers
                                    or self.agent_authenticator.method != TokenAuth.method)
        self._changed = anyio.Event()
        self._last_plan_s = 0.0
        # Assignments proposed and not yet applied (job id -> agent id), and the rounds
        # carrying them: the next round is planned around them.
        self._in_flight: dict[str, str] = {}
        self._rounds: set[object] = set()
        self._round_done = anyio.Event()
        self._lead_scope: anyio.CancelScope | None = None
        self._task_group: TaskGroup | None = None

    # -- configuration --------------------------------------------------------------------------

    def _resolve_token(self) -> tuple[Secret, Any, bool]:
        if self.settings.token is not None:
            secret = resolve_secret(self.settings.token)
            assert secret is not None
            return secret, None, False
        path, created = ensure_token_file(self.settings.data_dir)
        secret = resolve_secret(f"file:{path}")
        assert secret is not None
        return secret, path, created

    def _make_authenticator(self) -> Authenticator:
        if self.settings.token is None:
            return TokenAuth(self.token, name="token-holder")
        return load_authenticator("token", {"token": self.token})

    def _consensus_options(self) -> dict[str, Any]:
        options: dict[str, Any] = dict(self.settings.raft_options)
        if self.settings.consensus != "standalone":
            options.setdefault("listen", self.settings.peer(self.settings.node_id).raft
                               or "127.0.0.1:0")
            cluster = resolve_secret(self.settings.cluster_token) or self.token
            options.setdefault("token", cluster)
        return options

    # -- what the service and the links read ----------------------------------------------------

    @property
    def state(self) -> ControllerState:
        return self._state

    @property
    def backend(self) -> ConsensusBackend:
        return self._backend

    @property
    def soft(self) -> SoftState:
        return self._soft

    @property
    def liveness(self) -> Liveness:
        return self._liveness

    @property
    def reviews_agents(self) -> bool:
        """Whether connected agents' access can change while they are connected (API tokens
        of an extension, an authorizing extension, an auth method other than the fixed
        token): then it is judged again (:meth:`review_agents`)."""
        return self._reviews_agents

    def authenticate_token(self, token: str) -> Principal | None:
        """The principal a bearer token belongs to: the controller's own, or one an
        extension knows (``None`` for neither)."""
        found = self.authenticator.authenticate({"token": token})
        for authenticator in self._authenticators:
            if found is not None:
                break
            found = authenticator.authenticate({"token": token})
        return found

    def token_refusal(self, token: str) -> str | None:
        """Why ``token`` proves nothing, when an extension's authenticator recognises it
        (an expired or revoked API token), in words safe to show its holder."""
        for authenticator in self._authenticators:
            why = getattr(authenticator, "why_refused", None)
            reason = why({"token": token}) if callable(why) else None
            if isinstance(reason, str) and reason:
                return reason
        return None

    def authorization(self, principal: Principal, action: str, tenant: str | None,
                      namespace: str | None, *, record_allowed: bool = True) -> str | None:
        """Why ``principal`` may not do ``action`` (the first extension to object), or
        ``None``. Every verdict is told to the extensions' observers (an audit trail), an
        allowing one only with ``record_allowed`` (a periodic re-check is not news)."""
        verdict: str | None = None
        for authorize in self._authorizers:
            verdict = authorize(principal, action, tenant, namespace)
            if verdict is not None:
                break
        if verdict is not None or record_allowed:
            for observe in self._verdict_observers:  # an audit trail records every verdict
                observe(principal, action, tenant, namespace, verdict)
        return verdict

    def peer(self, node_id: str) -> PeerAddresses:
        """Where controller ``node_id`` listens: this node's settings first, then what was
        replicated of a controller added while serving for the addresses settings lack."""
        known = self.settings.peer(node_id)
        recorded = self._state.controllers.get(node_id)
        if recorded is None or (known.agents and known.http):
            return known
        return PeerAddresses(raft=known.raft, agents=known.agents or recorded.agents or None,
                             http=known.http or recorded.http or None)

    def leader_url(self, leader_id: str | None) -> str | None:
        if leader_id is None:
            return None
        http = self.peer(leader_id).http
        return f"http://{http}" if http else None

    def leader_address(self) -> ControllerAddress | None:
        """The leader's agent address, for redirects."""
        leader = self._backend.leader_id
        if leader is None or leader == self.settings.node_id:
            return None
        agents = self.peer(leader).agents
        return ControllerAddress(leader, agents) if agents else None

    def controller_addresses(self) -> list[ControllerAddress]:
        """Every controller's agent address known to this node, this node's first: those its
        settings name, and the replicated ones of controllers that are members now."""
        others = set(self.settings.peers)
        if self._state.controllers:
            members = self._backend.status().get("members") or {}
            others |= {n for n in self._state.controllers if n in members}
        ids = [self.settings.node_id, *sorted(others - {self.settings.node_id})]
        addresses = []
        for node_id in ids:
            agents = self.peer(node_id).agents
            if agents:
                addresses.append(ControllerAddress(node_id, agents))
        return addresses

    # -- proposals ------------------------------------------------------------------------------

    async def propose(self, command: Command) -> Applied:
        """Replicate ``command`` (with whatever else is proposed meanwhile, see
        :mod:`.groupcommit`); push the aborts its result orders and wake the scheduler."""
        try:
            result = await self._commit.propose(command)
        except Exception as exc:
            raise self._service_error(exc) from None
        applied = self._settle(command, result)
        if applied.abort:
            await self._push_aborts(command, applied)
        return applied

    async def propose_all(self, commands: Sequence[Command]) -> list[Applied | ServiceError]:
        """Replicate ``commands`` in order (in as few consensus writes as they fit); each
        one's result, or the error (``CommandRefused``, ``LeaderElsewhere``, ``Unavailable``)
        in its place."""
        outcomes: list[Applied | ServiceError] = []
        for command, outcome in zip(commands, await self._commit.propose_all(commands),
                                    strict=True):
            if isinstance(outcome, BaseException):
                outcomes.append(self._service_error(outcome))
                continue
            try:
                applied = self._settle(command, outcome)
            except CommandRefused as exc:
                outcomes.append(exc)
                continue
            if applied.abort:
                await self._push_aborts(command, applied)
            outcomes.append(applied)
        return outcomes

    def propose_soon(self, command: Command, settled: Callable[[], None] | None = None
                     ) -> None:
        """Replicate ``command`` without waiting for it (a job's start, say); a refusal or
        failure is logged. ``settled`` is called once it is applied, refused or failed."""
        if not self._commit.running:
            assert self._task_group is not None, "the controller is not running"
            self._task_group.start_soon(self._propose_logged, command, settled)
            return

        def then(outcome: Any) -> None:
            if settled is not None:
                settled()
            if isinstance(outcome, BaseException):
                log.debug("%s not recorded: %s", command.NAME, self._service_error(outcome))
                return
            try:
                applied = self._settle(command, outcome)
            except CommandRefused as exc:
                log.debug("%s not recorded: %s", command.NAME, exc)
                return
            if applied.abort and self._task_group is not None:
                self._task_group.start_soon(self._push_aborts, command, applied)

        self._commit.propose_soon(command, then)

    async def _propose_logged(self, command: Command,
                              settled: Callable[[], None] | None = None) -> None:
        try:
            await self.propose(command)
        except (CommandRefused, LeaderElsewhere, Unavailable) as exc:
            log.debug("%s not recorded: %s", command.NAME, exc)
        finally:
            if settled is not None:
                settled()

    def _service_error(self, exc: BaseException) -> ServiceError:
        """The service's error for what the consensus backend raised."""
        if isinstance(exc, NotLeader):
            return LeaderElsewhere(exc.leader_id, self.leader_url(exc.leader_id),
                                   maybe_committed=exc.maybe_committed)
        if isinstance(exc, ConsensusError):
            return Unavailable(str(exc))
        if isinstance(exc, ServiceError):
            return exc
        raise exc

    def _settle(self, command: Command, result: Any) -> Applied:
        """What follows a command's result on this node: a refusal raised, the scheduler
        woken, waiters for the next change told."""
        if isinstance(result, Rejected):
            raise CommandRefused(result)
        assert isinstance(result, Applied), f"{command.NAME} answered with {result!r}"
        if result.jobs or result.agents:
            self.wake_scheduler()
        if self._access_commands and type(command) in self._access_commands:
            self._access_changed.set()
        self._changed.set()
        self._changed = anyio.Event()
        return result

    async def _push_aborts(self, command: Command, result: Applied) -> None:
        for order in result.abort:
            link = self.links.get(order.agent_id)
            if link is not None and link.session.active:
                await link.push(link.session.abort(
                    order.job_id, order.attempt, f"{command.NAME}: the attempt moved or ended"
                ))

    @property
    def group_commit(self) -> GroupCommit:
        """How this controller's proposals go to consensus (counters for measurements)."""
        return self._commit

    def next_change(self) -> anyio.Event:
        """An event set when the next command this controller proposes is applied."""
        return self._changed

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    def wake_scheduler(self) -> None:
        self._wake.set()

    async def push_drain(self, agent_id: str, grace: float) -> None:
        link = self.links.get(agent_id)
        if link is not None and link.session.active:
            await link.push(link.session.drain(grace))

    # -- agent links ------------------------------------------------------------------------------

    async def agent_registered(self, agent_id: str, link: AgentLink) -> None:
        old = self.links.get(agent_id)
        self.links[agent_id] = link
        if old is not None and old is not link:
            # The agent came back on a new connection: the old one is stale.
            await old.push(old.session.redirect(None, self.controller_addresses()))
        self._soft.connected.add(agent_id)
        self._liveness.heartbeat(agent_id, time.time())
        self.wake_scheduler()

    def agent_gone(self, agent_id: str, link: AgentLink, *, forget: bool = False) -> None:
        if self.links.get(agent_id) is not link:
            return
        del self.links[agent_id]
        self._soft.connected.discard(agent_id)
        self._soft.reports.discard(agent_id)
        if forget:
            self._liveness.forget(agent_id)
        else:
            self._liveness.disconnected(agent_id)
        self.wake_scheduler()

    def result_recorded(self, agent_id: str, job_id: str) -> None:
        self._soft.progress.pop(job_id, None)
        # The slot it freed counts at once, not at the agent's next heartbeat.
        self._liveness.heartbeat(agent_id, time.time())
        self.wake_scheduler()

    async def _serve_agent(self, stream: ByteStream) -> None:
        await serve_agent(self, stream)

    # -- connected agents' access ---------------------------------------------------------------

    async def review_agents(self, limit: int | None = None) -> int:
        """Judge connected agents' access again, as their hello and registration were judged
        (:meth:`AgentLink.access_problem`), and end the sessions of those no longer allowed
        with an ``unauthorized`` error. Every link, :data:`AGENT_REVIEW_BATCH` at a time with
        a pause for other tasks between (``limit`` ``None``), or the next ``limit`` links in
        turn, so every link is judged once every ``len(links) / limit`` calls. Returns how
        many sessions it ended."""
        if limit is None:
            due = list(self.links)
        else:
            if not self._review_pending:
                self._review_pending = list(reversed(self.links))
            pending = self._review_pending
            due = pending[-limit:]
            del pending[-limit:]
        ended = 0
        for start in range(0, len(due), AGENT_REVIEW_BATCH):
            if start:
                await anyio.lowlevel.checkpoint()
            for agent_id in due[start:start + AGENT_REVIEW_BATCH]:
                link = self.links.get(agent_id)
                if link is None or link.closed:
                    continue
                try:
                    problem = link.access_problem()
                except Exception:
                    log.exception("the access of agent %s could not be judged again; its "
                                  "session is kept", agent_id)
                    continue
                if problem is not None:
                    await link.end(problem)
                    ended += 1
        return ended

    async def _review_loop(self) -> None:
        """While leading: every link after a command that may withdraw access, and the next
        :data:`AGENT_REVIEW_BATCH` every :data:`AGENT_REVIEW_INTERVAL` (a token or a
        certificate that merely expires)."""
        if not self._reviews_agents:
            return
        while True:
            with anyio.move_on_after(AGENT_REVIEW_INTERVAL):
                await self._access_changed.wait()
            changed = self._access_changed.is_set()
            if changed:
                self._access_changed = anyio.Event()
            if not self.leading or not self.links:
                continue
            await self.review_agents(None if changed else AGENT_REVIEW_BATCH)

    # -- leader duties --------------------------------------------------------------------------

    async def _watch_leadership(self) -> None:
        while True:
            leader = self._backend.is_leader
            if leader and not self.leading:
                try:
                    await self._backend.read_barrier()
                except ConsensusError as exc:
                    log.info("leadership not confirmed yet: %s", exc)
                    await anyio.sleep(LEADERSHIP_POLL)
                    continue
                self._soft.clear()
                self._liveness.start_leading(time.time())
                self.leading = True
                log.info("%s leads; agents have %.3g s of grace", self.settings.node_id,
                         self._liveness.timeout)
                self.wake_scheduler()
                self._start_extensions()
            elif not leader and self.leading:
                self.leading = False
                if self._lead_scope is not None:
                    self._lead_scope.cancel()
                    self._lead_scope = None
                self._liveness.stop_leading()
                self._soft.clear()
                links, self.links = list(self.links.values()), {}
                for link in links:
                    await link.push(link.session.redirect(
                        self.leader_address(), self.controller_addresses()
                    ))
                log.info("%s no longer leads", self.settings.node_id)
            await anyio.sleep(LEADERSHIP_POLL)

    def _start_extensions(self) -> None:
        if not self.extensions or self._task_group is None:
            return
        self._lead_scope = scope = anyio.CancelScope()
        self._task_group.start_soon(self._lead_extensions, scope)

    async def _lead_extensions(self, scope: anyio.CancelScope) -> None:
        # One scope, entered once (trio allows no more), over a task per extension.
        with scope:
            async with anyio.create_task_group() as tg:
                for extension in self.extensions:
                    tg.start_soon(self._lead_extension, extension)

    async def _lead_extension(self, extension: ControllerExtension) -> None:
        while True:
            try:
                await extension.lead(self)
                return
            except Exception:
                log.exception("extension %s failed while leading; restarting it in %.3g s",
                              extension.name, EXTENSION_RESTART_DELAY)
            await anyio.sleep(EXTENSION_RESTART_DELAY)

    async def _schedule_loop(self) -> None:
        assert self._task_group is not None
        while True:
            with anyio.move_on_after(self.settings.schedule_interval):
                await self._wake.wait()
            self._wake = anyio.Event()
            if not self.leading:
                continue
            # Rounds overlap: this one is planned while earlier rounds' assignments are still
            # being committed (they are excluded from it, their slots taken), so a job that
            # arrives during a commit does not wait for it to end before it is planned.
            while len(self._rounds) >= ROUNDS_IN_FLIGHT:
                await self._round_done.wait()
            planned = self._plan_round()
            if planned:
                self._task_group.start_soon(self._round_in_background, planned)
            # Planning a round costs about the same for one job as for a hundred (it looks at
            # every connected agent): on a large, busy fleet, leave a pause of a few times
            # what the last plan took, so jobs arriving meanwhile share the next round and
            # planning stays a small share of the leader's time.
            pause = min(ROUND_SPACING * self._last_plan_s, MAX_ROUND_PAUSE)
            if pause >= MIN_ROUND_PAUSE:
                await anyio.sleep(pause)

    async def _round_in_background(self, planned: list[Assignment]) -> None:
        try:
            await self._carry_out(planned)
        except (LeaderElsewhere, Unavailable) as exc:
            log.info("scheduling paused: %s", exc)

    async def schedule_round(self) -> int:
        """Plan and carry out one round; returns how many jobs were assigned."""
        planned = self._plan_round()
        return await self._carry_out(planned) if planned else 0

    def _plan_round(self) -> list[Assignment]:
        """Plan a round and hold its assignments as in flight (see :meth:`_carry_out`)."""
        in_flight = self._in_flight
        if self._state.queue_length <= len(in_flight):
            # Nothing to place (every queued job, if any, is being assigned). Rounds are woken
            # by every result, start and registration; planning one looks at every connected
            # agent (milliseconds on a fleet of thousands), so this must cost nothing.
            if not in_flight:
                self._soft.waiting = {}
            self._last_plan_s = 0.0  # no pause: the next job gets a round at once
            return []
        started = time.perf_counter()
        now = time.time()
        links = self.links
        capacity = self._liveness.capacity(now, among=links)
        plan = schedule(self._state, capacity, max_assignments=ROUND_LIMIT, in_flight=in_flight)
        self._soft.waiting = plan.waiting
        self._last_plan_s = time.perf_counter() - started
        planned = [a for a in plan.assignments
                   if (link := links.get(a.agent_id)) is not None and link.session.active]
        for assignment in planned:
            in_flight[assignment.job_id] = assignment.agent_id
        if len(plan.assignments) >= ROUND_LIMIT:
            self.wake_scheduler()
        return planned

    async def _carry_out(self, planned: list[Assignment]) -> int:
        """Propose a planned round (one batch: one fsync on each node), push what was
        committed to the agents, and release the round's jobs from the in-flight set."""
        round_ = object()
        self._rounds.add(round_)
        try:
            at = time.time()
            outcomes = await self.propose_all([a.command(at) for a in planned])
        finally:
            # Applied, refused or lost with the leadership: the replicated state now says
            # where each job is, and the next round plans from it.
            for assignment in planned:
                self._in_flight.pop(assignment.job_id, None)
            self._rounds.discard(round_)
            self._round_done.set()
            self._round_done = anyio.Event()
        links = self.links
        stopped: list[ServiceError] = []
        by_link: dict[AgentLink, list[Assign]] = {}
        for assignment, outcome in zip(planned, outcomes, strict=True):
            if isinstance(outcome, CommandRefused):
                log.debug("assignment refused: %s", outcome)
                self.wake_scheduler()  # the job, if still queued, needs another round
                continue
            if isinstance(outcome, ServiceError):
                stopped.append(outcome)
                continue
            job = next(j for j in outcome.jobs if j.id == assignment.job_id)
            link = links.get(assignment.agent_id)
            if link is not None and link.session.active:
                by_link.setdefault(link, []).append(
                    assign_message(job, self._state.job_constraints(job)))
        assigned = 0
        for link, messages in by_link.items():
            if link.session.active:
                await link.push_all([link.session.assign(m) for m in messages])
                assigned += len(messages)
        if stopped:
            raise stopped[0]
        return assigned

    async def _liveness_loop(self) -> None:
        period = min(self._liveness.interval / 4, 1.0)
        while True:
            await anyio.sleep(period)
            if not self.leading:
                continue
            for command in self._liveness.review(self._state, time.time()):
                try:
                    await self.propose(command)
                except CommandRefused as exc:
                    log.debug("liveness command refused: %s", exc)
                except (LeaderElsewhere, Unavailable) as exc:
                    log.info("liveness review paused: %s", exc)
                    break

    # -- running ----------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[ControllerServer] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve until :meth:`stop`; ``task_status.started`` once every listener is open."""
        from quorus.core.controller.rest import create_app

        host, port = split_address(self.settings.listen_agents)
        async with self._backend:
            listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
            app = create_app(self)
            http_stopped = anyio.Event()
            async with listener, anyio.create_task_group() as tg:
                self._task_group = tg
                await tg.start(self._commit.run)
                tg.start_soon(listener.serve, self._serve_agent)
                tg.start_soon(self._serve_http, app, http_stopped)
                tg.start_soon(self._watch_leadership)
                tg.start_soon(self._schedule_loop)
                tg.start_soon(self._liveness_loop)
                tg.start_soon(self._review_loop)
                tg.start_soon(self.loop_lag.run)
                await self._wait_http()
                task_status.started(self)
                await self._stopping.wait()
                self._http_shutdown.set()
                with anyio.move_on_after(5):
                    await http_stopped.wait()
                tg.cancel_scope.cancel()

    async def _serve_http(self, app: Any, stopped: anyio.Event) -> None:
        from hypercorn.config import Config

        config = Config()
        config.bind = [self.settings.listen_http]
        config.accesslog = None
        config.graceful_timeout = 1.0
        try:
            if sniffio.current_async_library() == "trio":
                from hypercorn.trio import serve as trio_serve

                await trio_serve(app, config, shutdown_trigger=self._http_shutdown.wait)
            else:
                from hypercorn.asyncio import serve as asyncio_serve

                await asyncio_serve(app, config, shutdown_trigger=self._http_shutdown.wait)
        finally:
            stopped.set()

    async def _wait_http(self) -> None:
        host, port = split_address(self.settings.listen_http)
        with anyio.fail_after(10):
            while True:
                try:
                    stream = await anyio.connect_tcp(host, port)
                except OSError:
                    await anyio.sleep(0.02)
                    continue
                await stream.aclose()
                return

    def stop(self) -> None:
        self._stopping.set()


def installed_extensions() -> list[ControllerExtension]:
    """The extensions the installed hook plugins contribute, ordered by name."""
    from quorus.core.hooks import plugin_manager

    extensions = [e for contributed in plugin_manager().hook.quorus_controller_extensions()
                  for e in contributed]
    return sorted(extensions, key=lambda e: e.name)


__all__ = ["ControllerServer", "assign_message", "installed_extensions", "transfer_options"]
