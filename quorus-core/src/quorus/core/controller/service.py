"""``ControllerService``: the one facade over a running controller that the REST API and the
CLI use — submit, show, list and cancel jobs; list and drain agents; cluster status and
membership.

Writes are proposed through consensus. On a node that does not lead they raise
:class:`LeaderElsewhere`, naming the leader and its HTTP URL when known: the REST API
forwards the request to the leader over HTTP and returns its answer (``503`` while no leader
is known). A redirect was not chosen: HTTP clients drop the ``Authorization`` header when
redirected to another host or port. Reads are
linearizable by default: the leader answers them after the backend's read barrier, and any
other node raises :class:`LeaderElsewhere` (the views carry the leader's soft state, which a
follower does not have); ``linearizable=False`` reads this node's replica as it is.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from quorus.core.auth import Principal
from quorus.core.consensus import ConsensusBackend, NotLeader
from quorus.core.controller.commands import (
    CancelJob,
    Command,
    DrainAgent,
    ForgetController,
    RecordController,
    SubmitJob,
)
from quorus.core.controller.liveness import Liveness
from quorus.core.controller.model import (
    DEFAULT_NAMESPACE,
    DEFAULT_TENANT,
    AgentRecord,
    JobOptions,
    JobPlacement,
    JobRecord,
    JobState,
    RetryPolicy,
)
from quorus.core.controller.results import Applied, RejectCode, Rejected
from quorus.core.controller.softstate import SoftState
from quorus.core.controller.state import ControllerState
from quorus.core.errors import QuorusError

#: Default and largest page of a job listing.
DEFAULT_PAGE = 100
MAX_PAGE = 1000
#: How long a drained agent may take to finish its transfers, by default (seconds).
DEFAULT_DRAIN_TIMEOUT = 30.0


M = TypeVar("M")


class ServiceError(QuorusError):
    """A request the controller cannot carry out; subclasses say why."""


class InvalidRequest(ServiceError):
    """The request itself is wrong (a bad filter, cursor, URI or setting)."""


class ResourceNotFound(ServiceError):
    """No job or agent has that id."""


class CommandRefused(ServiceError):
    """The state machine refused the command (it does not fit the current state)."""

    def __init__(self, rejected: Rejected) -> None:
        super().__init__(rejected.message)
        self.rejected = rejected


class Forbidden(ServiceError):
    """The caller is authenticated but may not do this (the reason says why)."""


class LeaderElsewhere(ServiceError):
    """This node does not lead: ``leader_id`` and ``leader_url`` (its HTTP API) say where the
    leader is, when known. ``maybe_committed``: the write may still take effect."""

    def __init__(
        self, leader_id: str | None, leader_url: str | None, *, maybe_committed: bool = False
    ) -> None:
        where = f": the leader is {leader_id}" if leader_id else ": no leader is known yet"
        super().__init__(f"this controller does not lead{where}")
        self.leader_id = leader_id
        self.leader_url = leader_url
        self.maybe_committed = maybe_committed


class NotSupported(ServiceError):
    """The consensus backend cannot do this (membership changes on ``standalone``)."""


class Unavailable(ServiceError):
    """The consensus backend cannot serve now (stopped, or no quorum)."""


class ControllerRuntime(Protocol):
    """What the service needs from the running controller (:mod:`.server` provides it)."""

    @property
    def state(self) -> ControllerState: ...

    @property
    def backend(self) -> ConsensusBackend: ...

    @property
    def soft(self) -> SoftState: ...

    @property
    def liveness(self) -> Liveness: ...

    def leader_url(self, leader_id: str | None) -> str | None:
        """The HTTP base URL of controller ``leader_id``, when known."""

    async def propose(self, command: Command) -> Applied:
        """Replicate ``command``; raise :class:`CommandRefused`, :class:`LeaderElsewhere` or
        :class:`Unavailable`."""

    async def propose_all(self, commands: Sequence[Command]) -> list[Applied | ServiceError]:
        """Replicate ``commands`` in order, in as few consensus writes as they fit; each one's
        result, or the error :meth:`propose` would have raised for it, in its place."""
        ...

    async def push_drain(self, agent_id: str, grace: float) -> None:
        """Tell a connected agent to drain (nothing when it is not connected here)."""

    def authorization(self, principal: Principal, action: str, tenant: str | None,
                      namespace: str | None) -> str | None:
        """Why ``principal`` may not do ``action`` in ``tenant``/``namespace``, or ``None``."""
        ...


@dataclass(frozen=True, slots=True)
class JobRequest:
    """One transfer to queue, as :meth:`ControllerService.submit_jobs` takes it (the
    arguments of :meth:`ControllerService.submit_job`). Without ``job_id`` the job gets a
    fresh one."""

    source: str
    destination: str
    job_id: str | None = None
    options: JobOptions = field(default_factory=JobOptions)
    priority: int = 0
    placement: JobPlacement = field(default_factory=JobPlacement)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    submitted_by: str = ""
    tenant: str = DEFAULT_TENANT
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a job listing; ``next_cursor`` fetches the next (``None``: the last)."""

    jobs: tuple[JobRecord, ...]
    next_cursor: str | None


def encode_cursor(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"after:{sequence}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "after" or not number.isdigit():
            raise ValueError(text)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(f"invalid cursor {cursor[:80]!r}: pass back a next_cursor") from None


class ControllerService:
    """The facade; see the module docstring. ``clock`` gives the wall-clock time that the
    commands carry."""

    def __init__(self, runtime: ControllerRuntime, *, clock: Any = time.time) -> None:
        self.runtime = runtime
        self._clock = clock

    # -- helpers --------------------------------------------------------------------------------

    @property
    def state(self) -> ControllerState:
        return self.runtime.state

    def authorize(self, principal: Principal, action: str, tenant: str | None = None,
                  namespace: str | None = None) -> None:
        """Raise :class:`Forbidden` unless ``principal`` may do ``action`` (``jobs.submit``,
        ``jobs.read``, ``workflows.submit`` ...) in ``tenant``/``namespace`` (``None``: not
        about one tenant, e.g. ``cluster.admin``). Without an authorizing extension installed
        every authenticated principal may do everything."""
        reason = self.runtime.authorization(principal, action, tenant, namespace)
        if reason is not None:
            raise Forbidden(f"{principal.name} may not {action}: {reason}")

    def may(self, principal: Principal, action: str, tenant: str | None = None,
            namespace: str | None = None) -> bool:
        """Whether :meth:`authorize` would allow it (for filtering lists)."""
        return self.runtime.authorization(principal, action, tenant, namespace) is None

    def state_module(self, module_type: type[M], package: str) -> M:
        """This controller's state module of ``module_type`` (found by its ``name``); raises
        :class:`NotSupported` saying to install ``package`` when the state has none."""
        name = getattr(module_type, "name", module_type.__name__)
        found = self.state.modules.get(name)
        if not isinstance(found, module_type):
            raise NotSupported(f"this controller's state has no {name} module: install "
                               f"{package} on every controller and restart them")
        return found

    async def consistent_read(self, linearizable: bool = True) -> None:
        """Make the next read of :attr:`state` linearizable (on the leader, after a read
        barrier); raises ``LeaderElsewhere`` on a follower (the API forwards the request) and
        ``Unavailable`` without a quorum. With ``linearizable=False``, nothing: the local
        replica is read as it is."""
        await self._consistent(linearizable)

    async def propose(self, command: Command) -> Applied:
        """Replicate a command (a state module's, say) and return its result; raises
        ``LeaderElsewhere``, ``Unavailable`` or ``CommandRefused``."""
        return await self.runtime.propose(command)

    async def propose_to_module(self, command: Command, result_type: type[M]) -> M:
        """Replicate a state module's ``command`` and return what its ``apply`` gave back,
        which must be a ``result_type``. A result saying ``missing`` (a record that does not
        exist) raises :class:`ResourceNotFound`; one saying not ``ok`` raises
        :class:`CommandRefused` with its ``message`` (the REST API answers 404 and 409)."""
        applied = await self.runtime.propose(command)
        result = applied.value
        if not isinstance(result, result_type):
            raise TypeError(f"{command.NAME} gave {type(result).__name__}, not "
                            f"{result_type.__name__}")
        if getattr(result, "missing", False):
            raise ResourceNotFound(str(getattr(result, "message", "")))
        if getattr(result, "ok", True) is False:
            raise CommandRefused(Rejected(command.NAME, applied.index,
                                          RejectCode.INVALID_TRANSITION,
                                          str(getattr(result, "message", ""))))
        return result

    async def _consistent(self, linearizable: bool) -> None:
        if not linearizable:
            return
        from quorus.core.consensus import ConsensusUnavailable

        backend = self.runtime.backend
        if not backend.is_leader:
            # A Raft follower could serve the read itself (ReadIndex), but the views carry
            # the leader's soft state too (connected agents, progress, why jobs wait): only
            # the leader's answer is whole.
            raise LeaderElsewhere(backend.leader_id, self.runtime.leader_url(backend.leader_id))
        try:
            await backend.read_barrier()
        except NotLeader as exc:
            raise LeaderElsewhere(exc.leader_id, self.runtime.leader_url(exc.leader_id)) from None
        except ConsensusUnavailable as exc:
            raise Unavailable(str(exc)) from None

    def _job(self, job_id: str) -> JobRecord:
        job = self.state.job(job_id)
        if job is None:
            raise ResourceNotFound(f"no job {job_id!r}")
        return job

    def _agent(self, agent_id: str) -> AgentRecord:
        agent = self.state.agent(agent_id)
        if agent is None:
            raise ResourceNotFound(f"no agent {agent_id!r}")
        return agent

    # -- jobs -----------------------------------------------------------------------------------

    async def submit_job(
        self,
        source: str,
        destination: str,
        *,
        job_id: str | None = None,
        options: JobOptions | None = None,
        priority: int = 0,
        placement: JobPlacement | None = None,
        retry: RetryPolicy | None = None,
        submitted_by: str = "",
        tenant: str = DEFAULT_TENANT,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> JobRecord:
        """Queue a transfer; resubmitting the same job under the same ``job_id`` is a no-op
        that returns the job (so a client may retry a submission it is unsure of)."""
        command = self._submission(JobRequest(
            source, destination, job_id=job_id, options=options or JobOptions(),
            priority=priority, placement=placement or JobPlacement(),
            retry=retry or RetryPolicy(), submitted_by=submitted_by, tenant=tenant,
            namespace=namespace,
        ))
        applied = await self.runtime.propose(command)
        return applied.jobs[0] if applied.jobs else self._job(command.job_id)

    async def submit_jobs(self, requests: Sequence[JobRequest]
                          ) -> list[JobRecord | ServiceError]:
        """Queue several transfers at once, each exactly as :meth:`submit_job` would (the
        same checks, the state modules' admission, the same idempotent ``job_id``), proposed
        together so they take few consensus writes. Each one's job, or the error that refused
        it, in its place: one refusal does not stop the others.

        Raises :class:`LeaderElsewhere` when this node does not lead (every proposal came
        back with it), so the API forwards the whole request as it does a single one."""
        outcomes: list[JobRecord | ServiceError | None] = [None] * len(requests)
        commands: list[SubmitJob] = []
        places: list[int] = []
        for place, request in enumerate(requests):
            try:
                commands.append(self._submission(request))
            except InvalidRequest as exc:
                outcomes[place] = exc
                continue
            places.append(place)
        applied = await self.runtime.propose_all(commands) if commands else []
        if applied and all(isinstance(a, LeaderElsewhere) for a in applied):
            first = applied[0]
            assert isinstance(first, LeaderElsewhere)
            raise first
        for place, command, outcome in zip(places, commands, applied, strict=True):
            if isinstance(outcome, ServiceError):
                outcomes[place] = outcome
            elif outcome.jobs:
                outcomes[place] = outcome.jobs[0]
            else:
                outcomes[place] = self._job(command.job_id)
        return [o for o in outcomes if o is not None]

    def _submission(self, request: JobRequest) -> SubmitJob:
        """The command for ``request``; :class:`InvalidRequest` says what is wrong with it."""
        from quorus.core.errors import InvalidURIError

        try:
            return SubmitJob.new(
                request.source, request.destination,
                job_id=request.job_id or f"job-{uuid.uuid4().hex}", at=self._clock(),
                options=request.options, priority=request.priority,
                placement=request.placement, retry=request.retry,
                submitted_by=request.submitted_by, tenant=request.tenant,
                namespace=request.namespace,
            )
        except (ValueError, InvalidURIError) as exc:
            raise InvalidRequest(str(exc)) from None

    async def get_job(self, job_id: str, *, linearizable: bool = True) -> JobRecord:
        await self._consistent(linearizable)
        return self._job(job_id)

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        agent_id: str | None = None,
        tenant: str | None = None,
        namespace: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
        linearizable: bool = True,
        visible: Callable[[JobRecord], bool] | None = None,
    ) -> JobPage:
        """Jobs in submission order, filtered, ``limit`` at a time from ``cursor``. The agent
        filter matches every job that had an attempt on the agent."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be 1 to {MAX_PAGE}, not {limit}")
        after = decode_cursor(cursor) if cursor else 0
        await self._consistent(linearizable)
        candidates: Iterable[JobRecord] = (
            self.state.jobs_in_state(state) if state is not None else self.state.jobs.values()
        )
        page: list[JobRecord] = []
        more = False
        for job in candidates:
            if job.sequence <= after:
                continue
            if tenant is not None and job.tenant != tenant:
                continue
            if namespace is not None and job.namespace != namespace:
                continue
            if visible is not None and not visible(job):
                continue
            if agent_id is not None and job.agent_id != agent_id and not any(
                a.agent_id == agent_id for a in job.attempts
            ):
                continue
            if len(page) == limit:
                more = True
                break
            page.append(job)
        return JobPage(tuple(page), encode_cursor(page[-1].sequence) if more else None)

    async def cancel_job(self, job_id: str, reason: str = "cancelled on request", *,
                         requested_by: str = "") -> JobRecord:
        """Cancel a job; ``requested_by`` (a principal's name) goes on the record."""
        self._job(job_id)
        applied = await self.runtime.propose(
            CancelJob(job_id, self._clock(), reason, requested_by))
        return applied.jobs[0] if applied.jobs else self._job(job_id)

    def job_view(self, job: JobRecord) -> dict[str, Any]:
        """A job as the API shows it: the record (no credentials), its latest progress and,
        while it waits, why."""
        view = job.as_json()
        progress = self.runtime.soft.progress.get(job.id)
        view["progress"] = (
            progress.as_json() if progress is not None and job.state.on_agent
            and progress.attempt == job.attempt else None
        )
        view["waiting_reason"] = (
            self.runtime.soft.waiting.get(job.id) if job.state is JobState.QUEUED else None
        )
        return view

    # -- agents ---------------------------------------------------------------------------------

    async def list_agents(self, *, linearizable: bool = True) -> list[AgentRecord]:
        await self._consistent(linearizable)
        return [self.state.agents[a] for a in sorted(self.state.agents)]

    async def get_agent(self, agent_id: str, *, linearizable: bool = True) -> AgentRecord:
        await self._consistent(linearizable)
        return self._agent(agent_id)

    def agent_view(self, agent: AgentRecord) -> dict[str, Any]:
        """An agent as the API shows it: the replicated record plus this leader's view of it
        (connected, last heartbeat, free slots, running jobs with their progress)."""
        view = agent.as_json()
        soft = self.runtime.soft
        report = soft.reports.get(agent.id)
        running = []
        for job in self.state.jobs_on_agent(agent.id):
            progress = soft.progress.get(job.id)
            running.append({
                "job_id": job.id, "attempt": job.attempt, "state": str(job.state),
                "progress": progress.as_json() if progress is not None
                and progress.attempt == job.attempt else None,
            })
        view["connected"] = agent.id in soft.connected
        view["last_heartbeat"] = self.runtime.liveness.last_heard(agent.id)
        view["free_slots"] = report.free_slots if report is not None else None
        view["reported_status"] = report.status if report is not None else None
        view["metrics"] = report.metrics if report is not None else None
        view["health"] = report.health if report is not None else None
        view["running_jobs"] = running
        return view

    async def drain_agent(
        self, agent_id: str, grace: float = DEFAULT_DRAIN_TIMEOUT, *, requested_by: str = ""
    ) -> AgentRecord:
        """Give the agent no new work; it finishes what it runs (within ``grace`` seconds)
        and is deregistered. ``requested_by`` (a principal's name) goes on the record."""
        if not 0 <= grace <= 86_400:
            raise InvalidRequest(f"drain timeout must be 0 to 86400 seconds, not {grace}")
        self._agent(agent_id)
        at = self._clock()
        applied = await self.runtime.propose(DrainAgent(agent_id, at, at + grace, requested_by))
        await self.runtime.push_drain(agent_id, grace)
        return applied.agents[0] if applied.agents else self._agent(agent_id)

    # -- cluster --------------------------------------------------------------------------------

    async def cluster_status(self) -> dict[str, Any]:
        """The backend's status (leader, term, members, commit and applied index) and counts
        of this node's replica."""
        status = dict(self.runtime.backend.status())
        state = self.state
        status["leader_url"] = self.runtime.leader_url(self.runtime.backend.leader_id)
        status["jobs"] = {str(s): state.count(s) for s in JobState}
        status["agents"] = len(state.agents)
        status["state_applied_index"] = state.applied_index
        return status

    async def add_member(self, node_id: str, address: str, agents: str | None = None,
                         http: str | None = None) -> None:
        """Add controller ``node_id`` whose Raft port is ``address``. Its agent and HTTP
        addresses (``agents``, ``http``: ``host:port``), when given, are replicated first,
        so every controller can forward writes and redirect agents to it once it leads
        without its own settings naming it; when neither is given, whatever was recorded of
        an earlier ``node_id`` is forgotten (its own settings then say where it is)."""
        backend = self.runtime.backend
        command: Command | None = None
        if agents or http:
            try:
                command = RecordController(node_id, agents or "", http or "")
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
        elif node_id in self.state.controllers:
            command = ForgetController(node_id)
        if command is not None:
            if type(backend).add_member is ConsensusBackend.add_member:
                # Nothing is recorded for a member a backend without membership cannot add.
                raise NotSupported(f"{type(backend).__name__} has no membership changes")
            if backend.is_leader and node_id in backend.status().get("members", {}):
                # Refused before anything is recorded, as the backend would refuse it.
                raise InvalidRequest(f"{node_id!r} is already a member: remove it first to "
                                     "give it another address")
            await self.runtime.propose(command)
        await self._membership(backend.add_member(node_id, address))

    async def remove_member(self, node_id: str) -> None:
        """Remove controller ``node_id`` from the quorum, then forget its recorded agent and
        HTTP addresses. When the leader removed itself, another controller leads by then and
        the record stays: it is never used (only members' records are), and adding the node
        again replaces or forgets it."""
        await self._membership(self.runtime.backend.remove_member(node_id))
        if node_id in self.state.controllers:
            # A leader that removed itself leads no more: the record stays, unused.
            with contextlib.suppress(LeaderElsewhere, Unavailable):
                await self.runtime.propose(ForgetController(node_id))

    async def transfer_leadership(self, node_id: str) -> None:
        await self._membership(self.runtime.backend.transfer_leadership(node_id))

    async def _membership(self, change: Any) -> None:
        from quorus.core.consensus import ConsensusError
        from quorus.core.errors import UnsupportedOperationError

        try:
            await change
        except NotLeader as exc:
            raise LeaderElsewhere(exc.leader_id, self.runtime.leader_url(exc.leader_id),
                                  maybe_committed=exc.maybe_committed) from None
        except UnsupportedOperationError as exc:
            raise NotSupported(str(exc)) from None
        except (ConsensusError, ValueError) as exc:
            raise InvalidRequest(str(exc)) from None


def page_json(page: JobPage, view: Any) -> dict[str, Any]:
    return {"jobs": [view(j) for j in page.jobs], "next_cursor": page.next_cursor}


__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "CommandRefused",
    "ControllerRuntime",
    "ControllerService",
    "Forbidden",
    "InvalidRequest",
    "JobPage",
    "JobRequest",
    "LeaderElsewhere",
    "NotSupported",
    "ResourceNotFound",
    "ServiceError",
    "Unavailable",
]
