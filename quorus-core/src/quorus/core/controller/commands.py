"""The replicated commands of the controller's state machine.

Each command is a frozen dataclass carrying everything applying it needs from the leader —
times, ids, attempt numbers — so every controller that applies the same log reaches the same
state. ``encode()`` gives the msgpack bytes proposed to consensus; :func:`decode` turns them
back and refuses anything malformed with a :class:`MalformedCommandError` that says what is
wrong. Other packages' state modules add command types through a :class:`CommandRegistry`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import msgpack
from quorus.core.controller.codec import RecordFormatError, from_plain, to_plain
from quorus.core.controller.model import (
    DEFAULT_NAMESPACE,
    DEFAULT_TENANT,
    AgentCapabilities,
    AgentLocation,
    AgentResources,
    AgentState,
    AttemptRef,
    JobOptions,
    JobPlacement,
    RetryPolicy,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
# A controller's address as the REST API takes it: host:port, no spaces, no IPv6 brackets.
_ADDRESS = re.compile(r"^[^\s:]+:([0-9]{1,5})$")


class MalformedCommandError(RecordFormatError):
    """Bytes that are not a valid controller command."""


@dataclass(frozen=True, slots=True)
class TenantReach:
    """What a command does across tenants, for the state modules that fence tenants.

    Acting for ``owner``, the command touches the data of ``tenants`` (a workflow whose groups
    run in other tenants); ``agreements`` are the data-sharing agreements its author names,
    ``declared`` says the author marked it as crossing tenants on purpose, and ``roles`` say
    which way data goes (``(tenant, role)``, role ``source``, ``destination`` or ``both``;
    a tenant without one may do either). Core only carries it: without a module that checks
    it, every command may reach every tenant.
    """

    owner: str
    tenants: tuple[str, ...]
    agreements: tuple[str, ...] = ()
    declared: bool = False
    roles: tuple[tuple[str, str], ...] = ()

    def others(self) -> tuple[str, ...]:
        """The tenants reached other than the owner, each once, in order."""
        return tuple(t for t in dict.fromkeys(self.tenants) if t != self.owner)


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every command. ``NAME`` is its tag on the wire."""

    NAME: ClassVar[str] = ""

    def tenant_reach(self) -> TenantReach | None:
        """The tenants this command acts on beyond its own records' tenant, when it can
        reach several (a module's command overrides this); ``None`` for most commands."""
        return None

    def encode(self) -> bytes:
        """The msgpack bytes to propose: ``[NAME, {field: value}]``."""
        packed: bytes = msgpack.packb([self.NAME, to_plain(self)], use_bin_type=True)
        return packed

    @classmethod
    def from_fields(cls, data: Any) -> Self:
        return from_plain(cls, data, path=cls.NAME)


def _require_id(kind: str, value: str) -> None:
    if not value or len(value) > 256 or not value.isprintable():
        raise ValueError(f"invalid {kind} {value!r}: 1 to 256 printable characters")


def require_address(kind: str, value: str) -> None:
    """Refuse ``value`` unless it is ``host:port`` (port 1 to 65535, at most 300 characters)
    with a :class:`ValueError` naming ``kind``."""
    found = _ADDRESS.match(value) if len(value) <= 300 else None
    if found is None or not 1 <= int(found.group(1)) <= 65535:
        raise ValueError(f"invalid {kind} {value!r}: expected host:port (port 1 to 65535)")


def _require_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, not {attempt}")


# --- Agents -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterAgent(Command):
    """An agent registered (or re-registered after a restart or a partition). ``holding``
    lists the attempts the agent says it still has: the result says which to abort."""

    NAME: ClassVar[str] = "register-agent"
    agent_id: str
    at: float
    hostname: str = ""
    version: str = ""
    capabilities: AgentCapabilities = field(default_factory=AgentCapabilities)
    resources: AgentResources = field(default_factory=AgentResources)
    location: AgentLocation = field(default_factory=AgentLocation)
    labels: Mapping[str, str] = field(default_factory=dict)
    holding: tuple[AttemptRef, ...] = ()
    tenant: str = DEFAULT_TENANT
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        _require_id("agent id", self.agent_id)


@dataclass(frozen=True, slots=True)
class AgentStateChanged(Command):
    """The leader saw an agent change state (unhealthy, recovered, idle, working)."""

    NAME: ClassVar[str] = "agent-state-changed"
    agent_id: str
    state: AgentState
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DrainAgent(Command):
    """Stop giving the agent work; deregister it once empty, or at ``deadline`` regardless."""

    NAME: ClassVar[str] = "drain-agent"
    agent_id: str
    at: float
    deadline: float
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class DeregisterAgent(Command):
    """Remove the agent; jobs it still holds go back to the queue."""

    NAME: ClassVar[str] = "deregister-agent"
    agent_id: str
    at: float
    reason: str = "deregistered"


@dataclass(frozen=True, slots=True)
class ExpireAgent(Command):
    """The agent missed its heartbeats: it becomes unhealthy (a draining one is removed) and
    its jobs go back to the queue with the next attempt number."""

    NAME: ClassVar[str] = "expire-agent"
    agent_id: str
    at: float
    last_heartbeat: float | None = None


# --- Jobs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitJob(Command):
    """A new transfer job. Build it with :meth:`new`, which parses and redacts the URIs."""

    NAME: ClassVar[str] = "submit-job"
    job_id: str
    at: float
    source: str
    destination: str
    source_display: str
    destination_display: str
    source_scheme: str
    destination_scheme: str
    options: JobOptions = field(default_factory=JobOptions)
    priority: int = 0
    placement: JobPlacement = field(default_factory=JobPlacement)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    submitted_by: str = ""
    tenant: str = DEFAULT_TENANT
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        _require_id("job id", self.job_id)
        for scheme in (self.source_scheme, self.destination_scheme):
            if not _SCHEME.match(scheme):
                raise ValueError(f"invalid URI scheme {scheme!r}")
        if not -1_000_000 <= self.priority <= 1_000_000:
            raise ValueError(f"priority {self.priority} is outside -1000000..1000000")

    @classmethod
    def new(
        cls,
        source: str,
        destination: str,
        *,
        job_id: str,
        at: float,
        **settings: Any,
    ) -> SubmitJob:
        """The command for a transfer from ``source`` to ``destination`` (URIs, or absolute
        paths for ``file``). Raises :class:`~quorus.core.errors.InvalidURIError` for a URI
        that cannot be used. Relative paths are refused: they would mean different files on
        different agents."""
        from quorus.core.errors import InvalidURIError
        from quorus.core.uri import parse_location

        parsed = []
        for text in (source, destination):
            if "://" not in text and not text.startswith("/"):
                raise InvalidURIError(
                    f"{text!r} is relative: a job needs a URI or an absolute path"
                )
            parsed.append(parse_location(text, cwd="/"))
        src, dst = parsed
        return cls(
            job_id=job_id,
            at=at,
            source=src.url(include_password=True) if src.scheme != "file" else src.path,
            destination=dst.url(include_password=True) if dst.scheme != "file" else dst.path,
            source_display=src.redacted(),
            destination_display=dst.redacted(),
            source_scheme=src.scheme,
            destination_scheme=dst.scheme,
            **settings,
        )


@dataclass(frozen=True, slots=True)
class AssignJob(Command):
    """The scheduler placed attempt ``attempt`` of a queued job on an agent."""

    NAME: ClassVar[str] = "assign-job"
    job_id: str
    agent_id: str
    attempt: int
    at: float

    def __post_init__(self) -> None:
        _require_attempt(self.attempt)


@dataclass(frozen=True, slots=True)
class JobStarted(Command):
    """The agent began moving data for this attempt."""

    NAME: ClassVar[str] = "job-started"
    job_id: str
    agent_id: str
    attempt: int
    at: float

    def __post_init__(self) -> None:
        _require_attempt(self.attempt)


@dataclass(frozen=True, slots=True)
class CompleteAttempt(Command):
    """The agent finished this attempt: the file is in place with this SHA-256."""

    NAME: ClassVar[str] = "complete-attempt"
    job_id: str
    agent_id: str
    attempt: int
    at: float
    bytes_transferred: int
    sha256: str

    def __post_init__(self) -> None:
        _require_attempt(self.attempt)
        if self.bytes_transferred < 0:
            raise ValueError(f"bytes_transferred cannot be negative ({self.bytes_transferred})")
        if not _SHA256.match(self.sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, not {self.sha256!r}")


@dataclass(frozen=True, slots=True)
class FailAttempt(Command):
    """The agent gave up on this attempt. ``retryable`` says whether another attempt may
    succeed (the retry policy decides whether there is one)."""

    NAME: ClassVar[str] = "fail-attempt"
    job_id: str
    agent_id: str
    attempt: int
    at: float
    error: str
    retryable: bool = True

    def __post_init__(self) -> None:
        _require_attempt(self.attempt)


@dataclass(frozen=True, slots=True)
class CancelJob(Command):
    """Cancel a job that has not finished; an agent holding it is told to abort."""

    NAME: ClassVar[str] = "cancel-job"
    job_id: str
    at: float
    reason: str = "cancelled on request"
    requested_by: str = ""


# --- Controllers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordController(Command):
    """Where controller ``node_id``, added to the quorum while serving, listens for agents
    (``agents``) and for the REST API (``http``), each ``host:port`` or empty when not given.
    Every controller uses them for what its own settings do not say (forwarding writes to it,
    redirecting agents to it); recording a node again replaces what was recorded."""

    NAME: ClassVar[str] = "record-controller"
    node_id: str
    agents: str = ""
    http: str = ""

    def __post_init__(self) -> None:
        _require_id("controller id", self.node_id)
        if not self.agents and not self.http:
            raise ValueError(f"controller {self.node_id!r}: give its agents or http address")
        if self.agents:
            require_address("agents address", self.agents)
        if self.http:
            require_address("http address", self.http)


@dataclass(frozen=True, slots=True)
class ForgetController(Command):
    """Forget what :class:`RecordController` recorded of ``node_id`` (it left the quorum);
    nothing happens when nothing was recorded."""

    NAME: ClassVar[str] = "forget-controller"
    node_id: str

    def __post_init__(self) -> None:
        _require_id("controller id", self.node_id)


BUILTIN_COMMANDS: tuple[type[Command], ...] = (
    RegisterAgent,
    AgentStateChanged,
    DrainAgent,
    DeregisterAgent,
    ExpireAgent,
    SubmitJob,
    AssignJob,
    JobStarted,
    CompleteAttempt,
    FailAttempt,
    CancelJob,
    RecordController,
    ForgetController,
)


#: The most commands one :class:`Batch` carries.
MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Batch(Command):
    """Several built-in commands proposed as one consensus entry (group commit): applied in
    order, each exactly as if proposed alone (the same rules, and the same admission and
    observation by state modules); the result's ``value`` holds each command's result, in
    order. A leader batches what many agents and clients ask for at about the same time, so a
    busy fleet costs few log entries and few fsyncs."""

    NAME: ClassVar[str] = "batch"
    commands: tuple[Command, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.commands) <= MAX_BATCH:
            raise ValueError(f"a batch carries 1 to {MAX_BATCH} commands, not "
                             f"{len(self.commands)}")
        for command in self.commands:
            if type(command) not in BUILTIN_COMMANDS:
                raise ValueError(f"a batch carries built-in commands only, not "
                                 f"{command.NAME or type(command).__name__!r}")

    def encode(self) -> bytes:
        return encode_batch([command.encode() for command in self.commands])

    @classmethod
    def from_fields(cls, data: Any) -> Self:
        if not isinstance(data, dict) or set(data) != {"commands"} or not isinstance(
                data["commands"], list):
            raise RecordFormatError("batch: expected {commands: [[name, {fields}], ...]}")
        commands: list[Command] = []
        for i, inner in enumerate(data["commands"]):
            if not (isinstance(inner, list) and len(inner) == 2 and isinstance(inner[0], str)):
                raise RecordFormatError(f"batch.commands[{i}]: a command is [name, {{fields}}]")
            name, fields = inner
            command_type = _BUILTIN_BY_NAME.get(name)
            if command_type is None:
                raise RecordFormatError(
                    f"batch.commands[{i}]: {name!r} is not a built-in command"[:160])
            commands.append(command_type.from_fields(fields))
        try:
            return cls(tuple(commands))
        except ValueError as exc:
            raise RecordFormatError(f"batch: {exc}") from None


_BUILTIN_BY_NAME: dict[str, type[Command]] = {t.NAME: t for t in BUILTIN_COMMANDS}


def encode_batch(encoded: Sequence[bytes]) -> bytes:
    """The bytes of the :class:`Batch` of the commands whose own bytes (``Command.encode()``)
    are ``encoded``: ``["batch", {"commands": [...]}]``, built around them without encoding
    them again."""
    packer = msgpack.Packer(use_bin_type=True)
    return b"".join((packer.pack_array_header(2), msgpack.packb(Batch.NAME),
                     packer.pack_map_header(1), msgpack.packb("commands"),
                     packer.pack_array_header(len(encoded)), *encoded))


class CommandRegistry:
    """Command types by wire name: the built-in ones (and :class:`Batch` of them) plus those
    of state modules."""

    def __init__(self, extra: Iterable[type[Command]] = ()) -> None:
        self._types: dict[str, type[Command]] = {}
        for command_type in (*BUILTIN_COMMANDS, Batch, *extra):
            self.add(command_type)

    def add(self, command_type: type[Command]) -> None:
        name = command_type.NAME
        if not name:
            raise ValueError(f"{command_type.__name__} has no NAME")
        if name in self._types and self._types[name] is not command_type:
            raise ValueError(
                f"command name {name!r} is taken by {self._types[name].__qualname__}"
            )
        self._types[name] = command_type

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def decode(self, data: bytes) -> Command:
        """The command in ``data``; :class:`MalformedCommandError` saying why if there is none."""
        try:
            envelope = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except msgpack.ExtraData:
            raise MalformedCommandError("command bytes hold more than one msgpack value") from None
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise MalformedCommandError(f"command bytes are not valid msgpack: {exc}") from None
        if not (isinstance(envelope, list) and len(envelope) == 2 and isinstance(envelope[0], str)):
            raise MalformedCommandError("a command is [name, {fields}]")
        name, fields = envelope
        command_type = self._types.get(name)
        if command_type is None:
            raise MalformedCommandError(f"unknown command {name!r}")
        try:
            return command_type.from_fields(fields)
        except RecordFormatError as exc:
            raise MalformedCommandError(f"malformed {name} command: {exc}") from None


_BUILTIN_REGISTRY = CommandRegistry()


def decode(data: bytes) -> Command:
    """Decode one of the built-in commands (see :meth:`CommandRegistry.decode`)."""
    return _BUILTIN_REGISTRY.decode(data)


__all__ = [
    "BUILTIN_COMMANDS",
    "MAX_BATCH",
    "AgentStateChanged",
    "AssignJob",
    "Batch",
    "CancelJob",
    "Command",
    "CommandRegistry",
    "CompleteAttempt",
    "DeregisterAgent",
    "DrainAgent",
    "ExpireAgent",
    "FailAttempt",
    "ForgetController",
    "JobStarted",
    "MalformedCommandError",
    "RecordController",
    "RegisterAgent",
    "SubmitJob",
    "TenantReach",
    "decode",
    "encode_batch",
    "require_address",
]
