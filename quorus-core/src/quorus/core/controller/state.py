"""``ControllerState``: the controller's deterministic replicated state machine.

It holds the agent registry, the job table and the agent and HTTP addresses of controllers
added to the quorum while serving, implements
:class:`quorus.core.consensus.StateMachine` (``apply``, ``snapshot``, ``restore``) and keeps
indexes for the scheduler and the API: jobs by state, jobs by agent, and the queue in
scheduling order (priority, then submission order). The rules of each command live in
:mod:`quorus.core.controller.transitions`; this module stores records, keeps the indexes
consistent and (de)serialises the whole state.

State modules of other packages (tenants, workflows) join through :class:`StateModule`: they
bring their own command types and their own section of the snapshot.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import msgpack
import pluggy
from quorus.core.controller.codec import RecordFormatError
from quorus.core.controller.commands import BUILTIN_COMMANDS, Batch, Command, CommandRegistry
from quorus.core.controller.model import AgentRecord, AgentState, JobRecord, JobState
from quorus.core.controller.results import Applied, Rejected, Result

#: Bumped when the snapshot layout changes incompatibly.
SNAPSHOT_FORMAT = 1


class SnapshotFormatError(RecordFormatError):
    """Snapshot bytes this version cannot restore."""


class StateModule(Protocol):
    """A section of the replicated state contributed by another package.

    ``name`` keys its snapshot section; ``command_types`` are the commands it applies (their
    ``NAME`` must not clash with another's). ``apply`` must be deterministic like the rest of
    the state machine; it may read the controller's records through ``state`` but must not
    change them. ``snapshot`` returns msgpack-friendly data that ``restore`` takes back
    (``None`` when the snapshot has no section for this module).
    """

    name: str
    command_types: Sequence[type[Command]]

    def apply(self, command: Command, index: int, state: ControllerState) -> Any: ...

    def snapshot(self) -> Any: ...

    def restore(self, data: Any) -> None: ...


class AdmittingModule(Protocol):
    """A state module that also checks built-in commands (all three methods are optional; a
    module offers those it needs). Like ``apply``, they must be deterministic.

    - ``admit`` is called before any command is applied — a built-in one or another
      module's (a module is not asked about its own commands: its ``apply`` decides) — and
      may refuse it with a :class:`~quorus.core.controller.results.Rejected`
      (``quota-exceeded`` or ``admission-denied``; nothing is applied then);
    - ``observe`` is called after any command was applied — a built-in one with its result
      (the jobs and agents it changed), a module's with ``Applied.value`` holding what the
      module returned — to keep the module's own records in step (usage, reservations, an
      audit trail);
    - ``may_place`` says why ``agent`` may not take ``job`` (or ``None`` if it may); the
      scheduler and the ``AssignJob`` command both honour it;
    - ``job_constraints`` says how an agent must run ``job`` (a bandwidth cap, the storage
      roots its paths must stay inside), or ``None``; the leader sends them with every
      assignment and the agent enforces them;
    - ``refused`` is told every command a module's ``admit`` refused (with the refusal), so
      a refusal can be on the record too (an audit trail);
    - ``placement_preference`` ranks the agents ``may_place`` allows: lower is preferred
      (0 by default), before proximity and load (a tenant's own agents before shared ones).
    """

    def admit(self, command: Command, index: int, state: ControllerState) -> Rejected | None: ...

    def observe(self, command: Command, result: Applied, index: int,
                state: ControllerState) -> None: ...

    def may_place(self, job: JobRecord, agent: AgentRecord, state: ControllerState
                  ) -> str | None: ...

    def job_constraints(self, job: JobRecord, state: ControllerState
                        ) -> JobConstraints | None: ...

    def placement_preference(self, job: JobRecord, agent: AgentRecord,
                             state: ControllerState) -> int: ...

    def refused(self, command: Command, refusal: Rejected, index: int,
                state: ControllerState) -> None: ...


@dataclass(frozen=True, slots=True)
class JobConstraints:
    """How an agent must run a job, beyond the job's own options (see
    :meth:`AdmittingModule.job_constraints`).

    ``bandwidth_limit`` caps the transfer in bytes per second (the lower of this and the
    job's own limit applies). ``storage_roots``, when given, are the roots (paths, URIs or
    glob patterns, as a tenant's ``allowedDestinations``) that the job's destination and local
    source must resolve inside: the agent refuses the attempt before writing a byte otherwise,
    and writes local files without following any symbolic link on the way.
    """

    bandwidth_limit: int | None = None
    storage_roots: tuple[str, ...] | None = None

    def merged(self, other: JobConstraints) -> JobConstraints:
        """Both sets of limits at once: the lower cap; the first module's roots."""
        limits = [b for b in (self.bandwidth_limit, other.bandwidth_limit) if b is not None]
        return JobConstraints(
            min(limits) if limits else None,
            self.storage_roots if self.storage_roots is not None else other.storage_roots,
        )


@dataclass(frozen=True, slots=True)
class ControllerEndpoints:
    """Where a controller added while serving listens, as
    :class:`~quorus.core.controller.commands.RecordController` recorded it: ``agents`` and
    ``http`` are ``host:port``, or empty when not recorded."""

    agents: str = ""
    http: str = ""


QueueKey = tuple[int, int, str]


def queue_key(job: JobRecord) -> QueueKey:
    """Scheduling order: higher priority first, then earlier submission."""
    return (-job.priority, job.sequence, job.id)


class ControllerState:
    """The agent registry and job table; see the module docstring."""

    def __init__(self, modules: Iterable[StateModule] = ()) -> None:
        self._modules: dict[str, StateModule] = {}
        self._module_of: dict[str, StateModule] = {}
        for module in modules:
            if module.name in self._modules:
                raise ValueError(f"two state modules are named {module.name!r}")
            self._modules[module.name] = module
            for command_type in module.command_types:
                if command_type in BUILTIN_COMMANDS:
                    raise ValueError(f"command {command_type.NAME!r} is built in: module "
                                     f"{module.name!r} cannot apply it")
                self._module_of[command_type.NAME] = module
        self.commands = CommandRegistry(self._module_of_types())
        # The optional admission methods, in module-name order (every controller the same).
        ordered = list(self._modules.values())
        self._admit: list[Callable[[Command, int, ControllerState], Rejected | None]] = [
            m.admit for m in ordered if callable(getattr(m, "admit", None))]  # type: ignore[attr-defined]
        self._observe: list[Callable[[Command, Applied, int, ControllerState], None]] = [
            m.observe for m in ordered if callable(getattr(m, "observe", None))]  # type: ignore[attr-defined]
        self._may_place: list[Callable[[JobRecord, AgentRecord, ControllerState],
                                       str | None]] = [
            m.may_place for m in ordered if callable(getattr(m, "may_place", None))]  # type: ignore[attr-defined]
        self._constraints: list[Callable[[JobRecord, ControllerState],
                                         JobConstraints | None]] = [
            m.job_constraints for m in ordered  # type: ignore[attr-defined]
            if callable(getattr(m, "job_constraints", None))]
        self._preferences: list[Callable[[JobRecord, AgentRecord, ControllerState], int]] = [
            m.placement_preference for m in ordered  # type: ignore[attr-defined]
            if callable(getattr(m, "placement_preference", None))]
        self._refused: list[Callable[[Command, Rejected, int, ControllerState], None]] = [
            m.refused for m in ordered if callable(getattr(m, "refused", None))]  # type: ignore[attr-defined]
        self._admitters: list[tuple[StateModule, Callable[[Command, int, ControllerState],
                                                          Rejected | None]]] = [
            (m, m.admit) for m in ordered  # type: ignore[attr-defined]
            if callable(getattr(m, "admit", None))]
        self._reset()

    def _module_of_types(self) -> list[type[Command]]:
        return [t for m in self._modules.values() for t in m.command_types]

    def _reset(self) -> None:
        self._agents: dict[str, AgentRecord] = {}
        self._jobs: dict[str, JobRecord] = {}
        self._by_state: dict[JobState, dict[str, None]] = {s: {} for s in JobState}
        self._on_agent: dict[str, dict[str, None]] = {}
        self._queue: list[QueueKey] = []
        self._controllers: dict[str, ControllerEndpoints] = {}
        self.next_sequence = 1
        self.applied_index = 0

    # -- StateMachine ---------------------------------------------------------------------------

    def apply(self, index: int, command: bytes) -> Result | Any:
        """Apply one encoded command; a :class:`~quorus.core.controller.results.Rejected` is
        returned (not raised) when it does not fit the state. Raises
        :class:`~quorus.core.controller.commands.MalformedCommandError` for bytes that are not
        a command (nothing is changed then)."""
        decoded = self.commands.decode(command)
        self.applied_index = index
        return self.execute(index, decoded)

    def execute(self, index: int, command: Command) -> Result | Any:
        """Apply an already decoded command (what :meth:`apply` does after decoding). A
        :class:`~quorus.core.controller.commands.Batch` applies each of its commands here in
        turn, as if each came alone; its result's ``value`` holds their results."""
        from quorus.core.controller import transitions

        if type(command) is Batch:
            return Applied(Batch.NAME, index,
                           value=tuple([self.execute(index, inner) for inner in command.commands]))
        module = self._module_of.get(command.NAME)
        if module is not None:
            for admitter, admit_module in self._admitters:
                if admitter is not module:
                    refusal = admit_module(command, index, self)
                    if refusal is not None:
                        return self._refuse(command, refusal, index)
            value = module.apply(command, index, self)
            applied = Applied(command.NAME, index, value=value)
            for observe in self._observe:
                observe(command, applied, index, self)
            return applied
        for admit in self._admit:
            refusal = admit(command, index, self)
            if refusal is not None:
                return self._refuse(command, refusal, index)
        result = transitions.apply(self, index, command)
        if isinstance(result, Applied):
            for observe in self._observe:
                observe(command, result, index, self)
        return result

    def _refuse(self, command: Command, refusal: Rejected, index: int) -> Rejected:
        for told in self._refused:
            told(command, refusal, index, self)
        return refusal

    @property
    def places_with_rules(self) -> bool:
        """Some state module may refuse agents for jobs (:meth:`placement_refusal`)."""
        return bool(self._may_place)

    @property
    def prefers_agents(self) -> bool:
        """Some state module ranks agents for jobs (:meth:`placement_preference`)."""
        return bool(self._preferences)

    def placement_refusal(self, job: JobRecord, agent: AgentRecord) -> str | None:
        """Why a state module will not let ``agent`` take ``job``, or ``None``."""
        for may_place in self._may_place:
            reason = may_place(job, agent, self)
            if reason is not None:
                return reason
        return None

    def placement_preference(self, job: JobRecord, agent: AgentRecord) -> int:
        """How much the state modules would rather not put ``job`` on ``agent`` (0: no
        objection; the scheduler takes the lowest first)."""
        return sum(prefer(job, agent, self) for prefer in self._preferences)

    def job_constraints(self, job: JobRecord) -> JobConstraints:
        """The state modules' limits on how an agent runs ``job`` (none without modules)."""
        found = JobConstraints()
        for constraints in self._constraints:
            more = constraints(job, self)
            if more is not None:
                found = found.merged(more)
        return found

    def snapshot(self) -> bytes:
        """The whole state as msgpack bytes; :meth:`restore` gives back an identical state."""
        data = {
            "format": SNAPSHOT_FORMAT,
            "applied_index": self.applied_index,
            "next_sequence": self.next_sequence,
            "agents": [a.as_plain() for a in self._agents.values()],
            "jobs": [j.as_plain() for j in self._jobs.values()],
            "controllers": {node_id: [e.agents, e.http]
                            for node_id, e in sorted(self._controllers.items())},
            "modules": {name: m.snapshot() for name, m in self._modules.items()},
        }
        packed: bytes = msgpack.packb(data, use_bin_type=True)
        return packed

    def restore(self, data: bytes, index: int) -> None:
        """Replace the whole state with a snapshot taken at log ``index``; indexes are rebuilt.

        Raises :class:`SnapshotFormatError` (and keeps the current state) when the bytes are
        not a snapshot this version understands.
        """
        try:
            plain = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise SnapshotFormatError(f"snapshot is not valid msgpack: {exc}") from None
        if not isinstance(plain, dict) or plain.get("format") != SNAPSHOT_FORMAT:
            found = plain.get("format") if isinstance(plain, dict) else None
            raise SnapshotFormatError(
                f"snapshot format {found!r} is not {SNAPSHOT_FORMAT}: "
                "restore it with the Quorus version that wrote it"
            )
        try:
            agents = [AgentRecord.from_plain(a) for a in plain["agents"]]
            jobs = [JobRecord.from_plain(j) for j in plain["jobs"]]
            next_sequence = int(plain["next_sequence"])
            sections = dict(plain.get("modules") or {})
            # Snapshots written before controllers were recorded have no such section.
            controllers = _controllers_from_plain(plain.get("controllers") or {})
        except (KeyError, TypeError, RecordFormatError) as exc:
            raise SnapshotFormatError(f"snapshot is malformed: {exc}") from None
        self._reset()
        for agent in agents:
            self._agents[agent.id] = agent
        for job in jobs:
            self._index_job(job)
        self._controllers = controllers
        self.next_sequence = next_sequence
        self.applied_index = index
        for name, module in self._modules.items():
            module.restore(sections.get(name))

    # -- reading --------------------------------------------------------------------------------

    @property
    def agents(self) -> Mapping[str, AgentRecord]:
        """Every agent ever registered (deregistered ones included), by id."""
        return MappingProxyType(self._agents)

    @property
    def jobs(self) -> Mapping[str, JobRecord]:
        """Every job, by id, in submission order."""
        return MappingProxyType(self._jobs)

    @property
    def controllers(self) -> Mapping[str, ControllerEndpoints]:
        """The agent and HTTP addresses of controllers added while serving, by node id
        (:class:`~quorus.core.controller.commands.RecordController`)."""
        return MappingProxyType(self._controllers)

    @property
    def modules(self) -> Mapping[str, StateModule]:
        return MappingProxyType(self._modules)

    def agent(self, agent_id: str) -> AgentRecord | None:
        return self._agents.get(agent_id)

    def job(self, job_id: str) -> JobRecord | None:
        return self._jobs.get(job_id)

    def queued(self) -> Iterator[JobRecord]:
        """Queued jobs in scheduling order (priority, then submission)."""
        jobs = self._jobs
        return (jobs[key[2]] for key in list(self._queue))

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def jobs_in_state(self, state: JobState) -> list[JobRecord]:
        """Jobs in ``state``, in submission order."""
        return self._ordered(self._by_state[state])

    def count(self, state: JobState) -> int:
        return len(self._by_state[state])

    def jobs_on_agent(self, agent_id: str) -> list[JobRecord]:
        """The assigned and running jobs an agent holds, in submission order."""
        return self._ordered(self._on_agent.get(agent_id, {}))

    def load(self, agent_id: str) -> int:
        """How many jobs the agent holds (assigned or running)."""
        return len(self._on_agent.get(agent_id, ()))

    def _ordered(self, ids: Iterable[str]) -> list[JobRecord]:
        return sorted((self._jobs[i] for i in ids), key=lambda j: j.sequence)

    # -- writing (for the transitions) ---------------------------------------------------------

    def put_agent(self, agent: AgentRecord) -> None:
        self._agents[agent.id] = agent

    def put_job(self, job: JobRecord) -> None:
        """Store ``job`` (new or changed) and move it between the indexes."""
        old = self._jobs.get(job.id)
        if old is not None:
            self._unindex_job(old)
        self._index_job(job)

    def _index_job(self, job: JobRecord) -> None:
        self._jobs[job.id] = job
        self._by_state[job.state][job.id] = None
        if job.state is JobState.QUEUED:
            bisect.insort(self._queue, queue_key(job))
        if job.state.on_agent and job.agent_id is not None:
            self._on_agent.setdefault(job.agent_id, {})[job.id] = None

    def _unindex_job(self, job: JobRecord) -> None:
        del self._by_state[job.state][job.id]
        if job.state is JobState.QUEUED:
            key = queue_key(job)
            at = bisect.bisect_left(self._queue, key)
            if at < len(self._queue) and self._queue[at] == key:
                del self._queue[at]
        if job.state.on_agent and job.agent_id is not None:
            held = self._on_agent.get(job.agent_id)
            if held is not None:
                held.pop(job.id, None)
                if not held:
                    del self._on_agent[job.agent_id]

    def put_controller(self, node_id: str, endpoints: ControllerEndpoints) -> None:
        self._controllers[node_id] = endpoints

    def drop_controller(self, node_id: str) -> ControllerEndpoints | None:
        return self._controllers.pop(node_id, None)

    def take_sequence(self) -> int:
        sequence = self.next_sequence
        self.next_sequence += 1
        return sequence

    # -- checks ---------------------------------------------------------------------------------

    def check_indexes(self) -> None:
        """Raise :class:`AssertionError` if an index disagrees with the records (for tests and
        debugging; the state machine keeps them consistent by construction)."""
        by_state: dict[JobState, set[str]] = {s: set() for s in JobState}
        on_agent: dict[str, set[str]] = {}
        for job in self._jobs.values():
            by_state[job.state].add(job.id)
            if job.state.on_agent:
                assert job.agent_id is not None, f"{job.id} is {job.state} without an agent"
                on_agent.setdefault(job.agent_id, set()).add(job.id)
            else:
                assert job.agent_id is None, f"{job.id} is {job.state} with agent {job.agent_id}"
        assert {s: set(ids) for s, ids in self._by_state.items()} == by_state
        assert {a: set(ids) for a, ids in self._on_agent.items()} == on_agent
        queue = sorted(queue_key(self._jobs[i]) for i in by_state[JobState.QUEUED])
        assert self._queue == queue, "queue order out of date"
        for agent_id, held in on_agent.items():
            agent = self._agents[agent_id]
            assert agent.state in (
                AgentState.WORKING, AgentState.DRAINING, AgentState.UNHEALTHY
            ), f"agent {agent_id} holds {len(held)} jobs but is {agent.state}"
            assert len(held) <= agent.capabilities.max_concurrent or agent.registrations > 1


def _controllers_from_plain(data: Any) -> dict[str, ControllerEndpoints]:
    """The ``controllers`` section of a snapshot: ``{node_id: [agents, http]}``."""
    if not isinstance(data, dict):
        raise RecordFormatError("controllers: expected {node_id: [agents, http]}")
    controllers: dict[str, ControllerEndpoints] = {}
    for node_id, endpoints in data.items():
        if not (isinstance(node_id, str) and isinstance(endpoints, list | tuple)
                and len(endpoints) == 2 and all(isinstance(e, str) for e in endpoints)):
            raise RecordFormatError(
                f"controllers.{node_id}: expected [agents, http], got {endpoints!r}"[:200])
        controllers[node_id] = ControllerEndpoints(endpoints[0], endpoints[1])
    return controllers


def installed_state_modules(plugin_manager: pluggy.PluginManager | None = None) -> list[StateModule]:
    """The state modules the installed hook plugins contribute through
    ``quorus_controller_state_modules``, ordered by name so every controller builds the same
    state machine."""
    if plugin_manager is None:
        from quorus.core.hooks import plugin_manager as process_plugin_manager

        plugin_manager = process_plugin_manager()
    modules = [m for contributed in plugin_manager.hook.quorus_controller_state_modules()
               for m in contributed]
    return sorted(modules, key=lambda m: m.name)


__all__ = [
    "SNAPSHOT_FORMAT",
    "AdmittingModule",
    "ControllerEndpoints",
    "ControllerState",
    "JobConstraints",
    "SnapshotFormatError",
    "StateModule",
    "installed_state_modules",
    "queue_key",
]
