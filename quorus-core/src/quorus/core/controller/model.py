"""The controller's replicated records: agents, jobs, their attempts and their states.

Every record is a frozen dataclass with slots and carries ``tenant`` and ``namespace``
(``default`` unless given). :meth:`as_plain` / ``from_plain`` (msgpack snapshots and
commands) and :meth:`as_json` (REST and CLI output, with the real URIs left out) all go through
:mod:`quorus.core.controller.codec`, the one place records are converted.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from quorus.core.controller.codec import SECRET, SHOWN_AS, from_plain, to_plain

DEFAULT_TENANT = "default"
DEFAULT_NAMESPACE = "default"

_SECRET_OPTION = re.compile(r"(pass|secret|token|key|credential)", re.IGNORECASE)


class AgentState(enum.StrEnum):
    """Where an agent is in its lifecycle (the system design's agent states)."""

    #: The agent is connecting; it has no record on the controller until registered.
    REGISTERING = "registering"
    #: Registered and ready for work.
    ACTIVE = "active"
    #: Ready, with no job assigned.
    IDLE = "idle"
    #: Running one or more jobs.
    WORKING = "working"
    #: Finishing its jobs, taking no new ones; deregistered once empty.
    DRAINING = "draining"
    #: Missed its heartbeats (or reported ill health); its jobs were moved elsewhere.
    UNHEALTHY = "unhealthy"
    #: Removed from the fleet.
    DEREGISTERED = "deregistered"

    @property
    def schedulable(self) -> bool:
        """New jobs may be placed on an agent in this state."""
        return self in _SCHEDULABLE


_SCHEDULABLE = frozenset({AgentState.ACTIVE, AgentState.IDLE, AgentState.WORKING})


class JobState(enum.StrEnum):
    """Where a job is in its lifecycle."""

    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """The job will never run again."""
        return self in _TERMINAL

    @property
    def on_agent(self) -> bool:
        """An agent holds the job's current attempt."""
        return self in (JobState.ASSIGNED, JobState.RUNNING)


_TERMINAL = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


class AttemptOutcome(enum.StrEnum):
    """How one attempt of a job ended."""

    COMPLETED = "completed"
    #: The agent reported a failure.
    FAILED = "failed"
    #: The agent stopped answering; the attempt was taken back.
    LOST = "lost"
    #: Taken back from a live agent (it re-registered without the job, or was deregistered).
    ABORTED = "aborted"
    #: The job was cancelled while the attempt ran.
    CANCELLED = "cancelled"


# --- Agents -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentCapabilities:
    """What an agent can do: the URI schemes of its installed protocol plugins, how many
    transfers it runs at once, its bandwidth and optional features (``resume``, ...)."""

    protocols: tuple[str, ...] = ()
    max_concurrent: int = 1
    max_bandwidth_mbps: float | None = None
    features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {self.max_concurrent}")

    def supports(self, scheme: str) -> bool:
        return scheme in self.protocols


@dataclass(frozen=True, slots=True)
class AgentResources:
    """The machine an agent runs on, as it reported at registration (informational)."""

    cpu_cores: int | None = None
    cpu_architecture: str | None = None
    memory_total_mb: int | None = None
    memory_available_mb: int | None = None
    storage_total_gb: float | None = None
    storage_available_gb: float | None = None
    network_interfaces: tuple[str, ...] = ()
    network_bandwidth_mbps: float | None = None


@dataclass(frozen=True, slots=True)
class Site:
    """A place in the network: region, datacenter and zone, each optional."""

    region: str | None = None
    datacenter: str | None = None
    zone: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.region, self.datacenter, self.zone) if p) or "anywhere"

    def contains(self, other: Site) -> bool:
        """``other`` lies inside this site (every part this site names is equal)."""
        return all(
            mine is None or mine == theirs
            for mine, theirs in (
                (self.region, other.region),
                (self.datacenter, other.datacenter),
                (self.zone, other.zone),
            )
        )


@dataclass(frozen=True, slots=True)
class AgentLocation:
    """Where an agent runs: datacenter, zone, region and free-form tags."""

    datacenter: str | None = None
    zone: str | None = None
    region: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def site(self) -> Site:
        return Site(self.region, self.datacenter, self.zone)


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """A registered agent as the replicated state knows it.

    ``registrations`` counts how often the agent (re-)registered; ``drain_deadline`` is when
    a draining agent is deregistered even with jobs left (the leader enforces it).
    """

    id: str
    hostname: str = ""
    version: str = ""
    capabilities: AgentCapabilities = field(default_factory=AgentCapabilities)
    resources: AgentResources = field(default_factory=AgentResources)
    location: AgentLocation = field(default_factory=AgentLocation)
    labels: Mapping[str, str] = field(default_factory=dict)
    state: AgentState = AgentState.ACTIVE
    state_reason: str = ""
    registered_at: float = 0.0
    updated_at: float = 0.0
    registrations: int = 1
    drain_deadline: float | None = None
    tenant: str = DEFAULT_TENANT
    namespace: str = DEFAULT_NAMESPACE

    def as_plain(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    def as_json(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self, json=True)
        return plain

    @classmethod
    def from_plain(cls, data: Any) -> Self:
        return from_plain(cls, data)


# --- Jobs -------------------------------------------------------------------------------------


class LabelOperator(enum.StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    ABSENT = "absent"


_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One condition on an agent's labels, written ``key=value``, ``key!=value``, ``key``
    (the label exists) or ``!key`` (it does not)."""

    key: str
    operator: LabelOperator = LabelOperator.EXISTS
    value: str = ""

    def __post_init__(self) -> None:
        if not _LABEL_KEY.match(self.key):
            raise ValueError(f"invalid label key {self.key!r}")

    @classmethod
    def parse(cls, text: str) -> LabelRequirement:
        """Parse ``key=value``, ``key!=value``, ``key`` or ``!key``; :class:`ValueError` if not."""
        text = text.strip()
        try:
            if "!=" in text:
                key, value = text.split("!=", 1)
                return cls(key.strip(), LabelOperator.NOT_EQUALS, value.strip())
            if "=" in text:
                key, value = text.split("=", 1)
                return cls(key.strip(), LabelOperator.EQUALS, value.strip())
            if text.startswith("!"):
                return cls(text[1:].strip(), LabelOperator.ABSENT)
            return cls(text, LabelOperator.EXISTS)
        except ValueError:
            raise ValueError(
                f"invalid label selector {text!r}: use key=value, key!=value, key or !key"
            ) from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        match self.operator:
            case LabelOperator.EQUALS:
                return present and labels[self.key] == self.value
            case LabelOperator.NOT_EQUALS:
                return not present or labels[self.key] != self.value
            case LabelOperator.EXISTS:
                return present
            case LabelOperator.ABSENT:
                return not present

    def __str__(self) -> str:
        match self.operator:
            case LabelOperator.EXISTS:
                return self.key
            case LabelOperator.ABSENT:
                return f"!{self.key}"
            case _:
                return f"{self.key}{self.operator.value}{self.value}"


def _hide_secret_options(options: Any) -> Any:
    return {k: ("***" if _SECRET_OPTION.search(k) else v) for k, v in options.items()}


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How a job's transfer runs: expected checksum (``sha256:HEX``) and size (or size
    range), the overwrite policy, a bandwidth cap, protocol options (``scheme.key`` → value,
    as ``-o`` takes), the destination's mode, whether to create directories, and streams."""

    checksum: str | None = None
    expected_size: int | None = None
    overwrite: str = "fail"
    bandwidth_mbps: float | None = None
    protocol_options: Mapping[str, str] = field(
        default_factory=dict, metadata={SHOWN_AS: _hide_secret_options}
    )
    #: A size range the file must fall in (either bound may be absent).
    size_min: int | None = None
    size_max: int | None = None
    #: The destination's file mode (e.g. ``0o640``); ``None``: the agent's default.
    mode: int | None = None
    #: Create missing destination directories (the default), or fail.
    create_directories: bool = True
    #: Parallel ranged streams to read a large source with; ``None``: the protocol's choice.
    streams: int | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a job may be attempted in all (agent losses and retryable failures count)."""

    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")


@dataclass(frozen=True, slots=True)
class JobAttempt:
    """One attempt of a job on one agent. ``outcome`` is ``None`` while it is current."""

    number: int
    agent_id: str
    assigned_at: float
    started_at: float | None = None
    finished_at: float | None = None
    outcome: AttemptOutcome | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class JobPlacement:
    """Where a job should run.

    ``affinity``: every requirement must hold for the agent's labels. ``anti_affinity``: no
    agent matching any of these runs the job. ``required_site``: only agents there.
    ``preferred_site``, ``source_site`` and ``destination_site``: agents nearer to them are
    preferred (same zone, then datacenter, then region), never required.
    """

    affinity: tuple[LabelRequirement, ...] = ()
    anti_affinity: tuple[LabelRequirement, ...] = ()
    required_site: Site | None = None
    preferred_site: Site | None = None
    source_site: Site | None = None
    destination_site: Site | None = None

    @property
    def constrains_agents(self) -> bool:
        """Some agents may not run the job (a required site or label rules)."""
        return bool(self.required_site is not None or self.affinity or self.anti_affinity)

    @property
    def has_targets(self) -> bool:
        """Some agents are nearer than others (a preferred, source or destination site)."""
        return not (self.preferred_site is None and self.source_site is None
                    and self.destination_site is None)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A transfer job as the replicated state knows it.

    ``source`` and ``destination`` are the real URIs an agent needs (never shown; they may
    carry credentials); ``source_display`` and ``destination_display`` are their redacted
    forms. ``attempt`` is the number of the current attempt, or of the next one while queued.
    ``sequence`` is the job's submission order, which breaks ties between equal priorities.
    """

    id: str
    source: str = field(metadata={SECRET: True})
    destination: str = field(metadata={SECRET: True})
    source_display: str
    destination_display: str
    source_scheme: str
    destination_scheme: str
    sequence: int
    submitted_at: float
    options: JobOptions = field(default_factory=JobOptions)
    priority: int = 0
    placement: JobPlacement = field(default_factory=JobPlacement)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    state: JobState = JobState.QUEUED
    attempt: int = 1
    agent_id: str | None = None
    attempts: tuple[JobAttempt, ...] = ()
    started_at: float | None = None
    finished_at: float | None = None
    bytes_transferred: int = 0
    sha256: str | None = None
    error: str | None = None
    submitted_by: str = ""
    tenant: str = DEFAULT_TENANT
    namespace: str = DEFAULT_NAMESPACE

    @property
    def schemes(self) -> tuple[str, str]:
        return self.source_scheme, self.destination_scheme

    @property
    def current_attempt(self) -> JobAttempt | None:
        """The attempt an agent holds now, if any."""
        if self.state.on_agent and self.attempts and self.attempts[-1].number == self.attempt:
            return self.attempts[-1]
        return None

    def as_plain(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    def as_json(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self, json=True)
        return plain

    @classmethod
    def from_plain(cls, data: Any) -> Self:
        return from_plain(cls, data)


@dataclass(frozen=True, slots=True)
class AttemptRef:
    """One attempt of one job: what an agent is told to abort, or reports it holds."""

    job_id: str
    attempt: int


__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_TENANT",
    "AgentCapabilities",
    "AgentLocation",
    "AgentRecord",
    "AgentResources",
    "AgentState",
    "AttemptOutcome",
    "AttemptRef",
    "JobAttempt",
    "JobOptions",
    "JobPlacement",
    "JobRecord",
    "JobState",
    "LabelOperator",
    "LabelRequirement",
    "RetryPolicy",
    "Site",
]
