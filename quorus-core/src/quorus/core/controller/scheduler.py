"""Job placement on the leader, as a pure function of the replicated state and soft state.

:func:`schedule` walks the queue in order (priority, then submission) and places each job on
the best agent that may run it:

- the agent takes new work (active, idle or working), is connected to this leader and has a
  free slot (its ``max_concurrent`` minus the jobs it holds, and no more than it last reported);
- it supports both URI schemes of the job (source and destination);
- its labels satisfy the job's affinity and none of its anti-affinity, and it lies in the
  job's required site if there is one;
- among those, the nearest to the job's preferred, source or destination site wins (same
  zone, then datacenter, then region), then the least loaded (share of its slots in use, then
  jobs held), then the smallest agent id, so the same inputs always give the same plan.

A job that fits nowhere stays queued and gets a reason a person can act on (``no agent
supports sftp``, ``all 3 agents that support smb are full``, ...).

Agents are indexed by protocol and jobs grouped by what they need (schemes and placement), so
a round costs about one heap operation per assignment, not a scan of every agent per job. Once
no agent has a free slot left the round stops: a backlog of queued jobs behind a full fleet
costs nothing per round, and why each of those jobs waits is worked out when it is read
(:class:`WaitingReasons`).

Rounds overlap: the leader plans the next round while the assignments of earlier ones are
still being committed. Those assignments are passed in as ``in_flight`` (job id to agent id):
their jobs are not placed again and their agents' slots count as taken.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quorus.core.controller.commands import AssignJob
from quorus.core.controller.model import (
    AgentRecord,
    AgentState,
    JobPlacement,
    JobRecord,
    JobState,
)
from quorus.core.controller.placement import SAME_ZONE, placement_problem, proximity

if TYPE_CHECKING:
    from quorus.core.controller.state import ControllerState


@dataclass(frozen=True, slots=True)
class AgentCapacity:
    """What the leader knows of an agent beyond the replicated state.

    ``connected``: it has a live session with this leader (jobs can be pushed to it).
    ``free_slots``: the free capacity it reported in its last heartbeat, if any.
    """

    connected: bool = True
    free_slots: int | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """Attempt ``attempt`` of ``job_id`` goes to ``agent_id``."""

    job_id: str
    agent_id: str
    attempt: int

    def command(self, at: float) -> AssignJob:
        """The command to propose for this assignment."""
        return AssignJob(self.job_id, self.agent_id, self.attempt, at)


@dataclass(frozen=True, slots=True)
class SchedulingRound:
    """The plan of one round: assignments in queue order, and why the others wait.

    ``waiting`` maps the job ids not placed to a reason; jobs after the round's assignment
    limit are not examined and not listed.
    """

    assignments: tuple[Assignment, ...] = ()
    waiting: Mapping[str, str] = field(default_factory=dict)


# Jobs alike for placement: schemes, placement rules, and tenant and namespace (which state
# modules' placement rules, such as agents dedicated to a tenant, may depend on).
_Need = tuple[str, str, JobPlacement, str, str]
# (state modules' preference, proximity, share of capacity in use, load, agent id, version)
_HeapEntry = tuple[int, int, float, int, str, int]


@dataclass(slots=True)
class _Candidate:
    agent: AgentRecord
    load: int
    free: int
    version: int = 0

    def key(self, preference: int, near: int) -> _HeapEntry:
        share = self.load / self.agent.capabilities.max_concurrent
        return (preference, near, share, self.load, self.agent.id, self.version)


class _Round:
    def __init__(self, state: ControllerState, capacity: Mapping[str, AgentCapacity] | None,
                 held: Mapping[str, int]):
        self.state = state
        self.capacity = capacity
        self.candidates: dict[str, _Candidate] = {}
        self.by_protocol: dict[str, list[str]] = {}
        # A round looks at every connected agent, so this loop is written for speed (measured:
        # most of a round's time on a fleet of 1,000): no calls per agent beyond lookups.
        candidates = self.candidates
        by_protocol = self.by_protocol
        load_of = state.load
        schedulable = _SCHEDULABLE
        for agent_id, agent in state.agents.items():
            if agent.state not in schedulable:
                continue
            if capacity is not None:
                soft = capacity.get(agent_id)
                if soft is None or not soft.connected:
                    continue
                reported = soft.free_slots
            else:
                reported = None
            load = load_of(agent_id) + held.get(agent_id, 0)
            free = agent.capabilities.max_concurrent - load
            if reported is not None and reported < free:
                free = reported
            if free <= 0:
                continue
            candidates[agent_id] = _Candidate(agent, load, free)
            protocols = agent.capabilities.protocols
            for scheme in (protocols if len(protocols) == len(set(protocols))
                           else dict.fromkeys(protocols)):
                ids = by_protocol.get(scheme)
                if ids is None:
                    by_protocol[scheme] = [agent_id]
                else:
                    ids.append(agent_id)
        self.heaps: dict[_Need, list[_HeapEntry]] = {}
        self.reasons: dict[_Need, str] = {}
        #: Free slots left among all candidates: at 0 nothing more can be placed.
        self.free = sum(c.free for c in self.candidates.values())

    def _soft(self, agent_id: str) -> AgentCapacity:
        if self.capacity is None:
            return AgentCapacity()
        return self.capacity.get(agent_id, _NOT_CONNECTED)

    def _heap(self, need: _Need, job: JobRecord) -> list[_HeapEntry]:
        heap = self.heaps.get(need)
        if heap is None:
            source, destination, placement, _, _ = need
            ids = self.by_protocol.get(source, [])
            if destination != source:
                other = set(self.by_protocol.get(destination, ()))
                ids = [i for i in ids if i in other]
            heap = []
            state = self.state
            refusal = state.placement_refusal if state.places_with_rules else None
            preference = state.placement_preference if state.prefers_agents else None
            nearness = proximity if placement.has_targets else None
            constrained = placement.constrains_agents
            candidates = self.candidates
            for agent_id in ids:
                candidate = candidates[agent_id]
                agent = candidate.agent
                if constrained and placement_problem(placement, agent):
                    continue
                if refusal is not None and refusal(job, agent) is not None:
                    continue
                heap.append(candidate.key(
                    preference(job, agent) if preference is not None else 0,
                    nearness(placement, agent.location) if nearness is not None else SAME_ZONE))
            heapq.heapify(heap)
            self.heaps[need] = heap
        return heap

    def place(self, job: JobRecord) -> str | None:
        """The agent for ``job`` (its load taken into account), or ``None``."""
        need = (job.source_scheme, job.destination_scheme, job.placement, job.tenant,
                job.namespace)
        heap = self._heap(need, job)
        while heap:
            preference, near, _, _, agent_id, version = heap[0]
            candidate = self.candidates[agent_id]
            if candidate.free <= 0:
                heapq.heappop(heap)
                continue
            if version != candidate.version:  # its load changed since this entry was pushed
                heapq.heapreplace(heap, candidate.key(preference, near))
                continue
            candidate.load += 1
            candidate.free -= 1
            candidate.version += 1
            self.free -= 1
            if candidate.free > 0:
                heapq.heapreplace(heap, candidate.key(preference, near))
            else:
                heapq.heappop(heap)
            return agent_id
        return None

    def reason(self, job: JobRecord) -> str:
        need = (job.source_scheme, job.destination_scheme, job.placement, job.tenant,
                job.namespace)
        reason = self.reasons.get(need)
        if reason is None:
            reason = self.reasons[need] = explain(job, self.state.agents.values(), self.capacity,
                                                  self.state)
        return reason


_NOT_CONNECTED = AgentCapacity(connected=False)
_SCHEDULABLE = frozenset(s for s in AgentState if s.schedulable)


class WaitingReasons(Mapping[str, str]):
    """Why each queued job was not placed in a round, by job id.

    The jobs the round examined are listed as it found them. When the round stopped because
    no agent had a free slot left, the queued jobs it did not reach wait too; their reasons
    (the same per kind of job, from the round's cache) are worked out when read, from the
    queue as it is then, so a backlog costs no work per round.
    """

    __slots__ = ("_assigned", "_listed", "_plan", "_rest")

    def __init__(self, listed: dict[str, str], plan: _Round | None = None,
                 assigned: frozenset[str] = frozenset(), rest: int = 0) -> None:
        self._listed = listed
        self._plan = plan
        self._assigned = assigned
        self._rest = rest if plan is not None else 0

    def _unlisted(self, job_id: str) -> JobRecord | None:
        """The queued job ``job_id`` the round did not reach, if it is one."""
        if self._plan is None or job_id in self._listed or job_id in self._assigned:
            return None
        job = self._plan.state.job(job_id)
        return job if job is not None and job.state is JobState.QUEUED else None

    def __getitem__(self, job_id: str) -> str:
        reason = self._listed.get(job_id)
        if reason is not None:
            return reason
        job = self._unlisted(job_id)
        if job is None or self._plan is None:
            raise KeyError(job_id)
        return self._plan.reason(job)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._listed or (isinstance(job_id, str)
                                          and self._unlisted(job_id) is not None)

    def __iter__(self) -> Iterator[str]:
        yield from self._listed
        if self._plan is not None:
            for job in self._plan.state.queued():
                if job.id not in self._listed and job.id not in self._assigned:
                    yield job.id

    def __len__(self) -> int:
        """Listed jobs, plus those the round did not reach (counted when it ran)."""
        return len(self._listed) + self._rest


def schedule(
    state: ControllerState,
    capacity: Mapping[str, AgentCapacity] | None = None,
    *,
    max_assignments: int = 1000,
    in_flight: Mapping[str, str] | None = None,
) -> SchedulingRound:
    """Plan one round: up to ``max_assignments`` placements for the queued jobs of ``state``.

    ``capacity`` is the leader's soft state by agent id; an agent missing from it is not
    connected and gets nothing. ``None`` means every agent is connected with no reported
    limit (for tests and tools that look at the replicated state alone). ``in_flight`` maps
    the jobs of assignments proposed but not yet applied to their agents: they are skipped,
    and each holds a slot of its agent.
    """
    in_flight = in_flight or {}
    held: dict[str, int] = {}
    for holder in in_flight.values():
        held[holder] = held.get(holder, 0) + 1
    plan = _Round(state, capacity, held)
    assignments: list[Assignment] = []
    waiting: dict[str, str] = {}
    examined = 0
    full = False
    for job in state.queued():
        if len(assignments) >= max_assignments:
            break
        if job.id in in_flight:
            continue
        if plan.free <= 0:
            full = True  # no agent has a slot left: the rest wait, explained when read
            break
        examined += 1
        agent_id = plan.place(job)
        if agent_id is None:
            waiting[job.id] = plan.reason(job)
        else:
            assignments.append(Assignment(job.id, agent_id, job.attempt))
    if full:
        reasons = WaitingReasons(
            waiting, plan, frozenset(a.job_id for a in assignments).union(in_flight),
            max(0, state.queue_length - examined - len(in_flight)))
    else:
        reasons = WaitingReasons(waiting)
    return SchedulingRound(tuple(assignments), reasons)


def _schemes(job: JobRecord) -> str:
    source, destination = job.schemes
    return source if source == destination else f"{source} and {destination}"


def explain(
    job: JobRecord,
    agents: Iterable[AgentRecord],
    capacity: Mapping[str, AgentCapacity] | None,
    state: ControllerState | None = None,
) -> str:
    """Why no agent can take ``job`` now, narrowed down rule by rule: protocols, required
    site, labels, the state modules' placement rules, agent states, connections, and finally
    capacity."""
    present = [a for a in agents if a.state is not AgentState.DEREGISTERED]
    if state is not None:
        refusals = [state.placement_refusal(job, a) for a in present]
        if present and all(refusals):
            return f"no agent this job may use: {refusals[0]}"
    source, destination = job.schemes
    for scheme in dict.fromkeys(job.schemes):
        if not any(a.capabilities.supports(scheme) for a in present):
            return f"no agent supports {scheme}"
    able = [a for a in present
            if a.capabilities.supports(source) and a.capabilities.supports(destination)]
    if not able:
        return f"no agent supports both {source} and {destination}"
    site = job.placement.required_site
    schemes = _schemes(job)

    def which(n: int) -> str:
        """The agents considered, for a sentence about ``n`` of them."""
        if site is not None:
            return f"in {site}"
        return f"that {'supports' if n == 1 else 'support'} {schemes}"

    if site is not None:
        able = [a for a in able if site.contains(a.location.site)]
        if not able:
            return f"no agent in {site} supports {schemes}"
    for requirement in job.placement.affinity:
        able = [a for a in able if requirement.matches(a.labels)]
        if not able:
            return f"no agent {which(1)} matches label {requirement}"
    for requirement in job.placement.anti_affinity:
        remaining = [a for a in able if not requirement.matches(a.labels)]
        if not remaining:
            return f"every agent {which(1)} matches excluded label {requirement}"
        able = remaining
    usable = [a for a in able if a.state.schedulable]
    if not usable:
        states = " or ".join(sorted({str(a.state) for a in able}))
        if len(able) == 1:
            return f"the one agent {which(1)} is {states}"
        return f"the {len(able)} agents {which(len(able))} are {states}"
    if capacity is not None:
        connected = [a for a in usable if capacity.get(a.id, _NOT_CONNECTED).connected]
        if not connected:
            if len(usable) == 1:
                return f"the one agent {which(1)} is not connected to the leader"
            return f"the {len(usable)} agents {which(len(usable))} are not connected to the leader"
        usable = connected
    if len(usable) == 1:
        return f"the one agent {which(1)} is full"
    return f"all {len(usable)} agents {which(len(usable))} are full"


__all__ = ["AgentCapacity", "Assignment", "SchedulingRound", "WaitingReasons", "explain",
           "schedule"]
