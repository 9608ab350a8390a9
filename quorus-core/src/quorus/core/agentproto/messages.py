"""The agent protocol's messages and their one conversion to and from the wire.

On the wire a message is a msgpack map: ``type`` (the tag in :data:`TAGS`) and one key per
field, every field present. :func:`from_wire` accepts exactly that and raises
:class:`~quorus.core.agentproto.errors.MessageDecodeError` for anything else: an unknown type,
a missing, unknown or mistyped field, a value out of range. The first message each way is the
:class:`~quorus.core.wire.Hello` of :mod:`quorus.core.wire`, decoded here too so one call
handles every frame of the connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from quorus.core.agentproto import codec
from quorus.core.agentproto.errors import ErrorCode, MessageDecodeError
from quorus.core.agentproto.records import (
    AgentCapabilities,
    AgentHealth,
    AgentLocation,
    AgentMetrics,
    AgentResources,
    AgentStatus,
    ControllerAddress,
    JobAttempt,
    SecurityInfo,
    TransferOptions,
    require,
    require_attempt,
    require_sha256,
)
from quorus.core.errors import QuorusError
from quorus.core.uri import parse_location
from quorus.core.wire import Hello, WireError
from quorus.core.wire.hello import HELLO

#: The protocol name in the hello, and the versions this code speaks.
PROTOCOL = "quorus-agent"
VERSIONS = (1,)


def _shown(uri: str) -> str:
    """A URI as logs may show it: password and secret query values masked."""
    try:
        return parse_location(uri, cwd="/").redacted()
    except QuorusError:
        return "<unparseable URI>"


# -- agent to controller -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register:
    """The agent's first message after the hello: who it is and what it can do.
    ``current_jobs`` are the attempts it is still running (after a reconnect); ``tenant`` and
    ``namespace`` are those it serves (``default``: shared by every tenant)."""

    agent_id: str
    hostname: str
    version: str
    capabilities: AgentCapabilities
    resources: AgentResources = field(default_factory=AgentResources)
    location: AgentLocation = field(default_factory=AgentLocation)
    labels: Mapping[str, str] = field(default_factory=dict)
    security: SecurityInfo = field(default_factory=SecurityInfo)
    current_jobs: tuple[JobAttempt, ...] = ()
    tenant: str = "default"
    namespace: str = "default"

    def __post_init__(self) -> None:
        require(bool(self.agent_id), "agent_id must not be empty")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The agent's periodic report. ``sequence`` rises by one per heartbeat over the agent's
    life (across reconnects); ``timestamp`` is the agent's clock, for display only."""

    agent_id: str
    timestamp: float
    sequence: int
    status: AgentStatus
    current_jobs: tuple[JobAttempt, ...]
    available_capacity: int
    metrics: AgentMetrics = field(default_factory=AgentMetrics)
    health: AgentHealth = field(default_factory=AgentHealth)
    last_job_completion: float | None = None
    next_maintenance_window: float | None = None

    def __post_init__(self) -> None:
        require(self.sequence >= 1, f"sequence must be 1 or more, got {self.sequence}")
        require(self.available_capacity >= 0, "available_capacity must not be negative")


@dataclass(frozen=True, slots=True)
class Progress:
    """How far one attempt has come: bytes done, of ``total_bytes`` when known, at ``rate``
    bytes/s. Coalesced by the agent; soft state on the controller."""

    job_id: str
    attempt: int
    bytes_done: int
    total_bytes: int | None
    rate: float

    def __post_init__(self) -> None:
        require_attempt(self.job_id, self.attempt)
        require(self.bytes_done >= 0, "bytes_done must not be negative")
        require(self.total_bytes is None or self.total_bytes >= 0, "total_bytes must not be negative")


@dataclass(frozen=True, slots=True)
class Completed:
    """An attempt finished and verified: bytes written, their SHA-256, seconds taken."""

    job_id: str
    attempt: int
    bytes_transferred: int
    sha256: str
    duration: float

    def __post_init__(self) -> None:
        require_attempt(self.job_id, self.attempt)
        require(self.bytes_transferred >= 0, "bytes_transferred must not be negative")
        require_sha256(self.sha256)


@dataclass(frozen=True, slots=True)
class Failed:
    """An attempt failed. ``error_type`` names the error class; ``retryable`` says whether
    another attempt may succeed (the controller's retry policy decides)."""

    job_id: str
    attempt: int
    error_type: str
    message: str
    retryable: bool

    def __post_init__(self) -> None:
        require_attempt(self.job_id, self.attempt)


@dataclass(frozen=True, slots=True)
class Deregister:
    """The agent leaves the fleet (drained, or shutting down); it closes the connection next."""

    agent_id: str
    reason: str


# -- controller to agent -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    """The answer to ``Register``. When accepted: the heartbeat interval and the least time
    between two ``Progress`` of one attempt (seconds), the attempts the agent must abort
    (they moved while it was away), and every controller of the quorum."""

    accepted: bool
    heartbeat_interval: float
    progress_interval: float
    abort: tuple[JobAttempt, ...]
    controllers: tuple[ControllerAddress, ...]
    reason: str = ""

    def __post_init__(self) -> None:
        if self.accepted:
            require(self.heartbeat_interval > 0, "heartbeat_interval must be positive")
        require(self.progress_interval >= 0, "progress_interval must not be negative")


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """The leader received heartbeat ``sequence``."""

    sequence: int


@dataclass(frozen=True, slots=True)
class Assign:
    """Run attempt ``attempt`` of job ``job_id``: copy ``source`` to ``destination``."""

    job_id: str
    attempt: int
    source: str
    destination: str
    options: TransferOptions = field(default_factory=TransferOptions)
    tenant: str = "default"
    namespace: str = "default"

    def __post_init__(self) -> None:
        require_attempt(self.job_id, self.attempt)

    def __repr__(self) -> str:
        return (
            f"Assign(job_id={self.job_id!r}, attempt={self.attempt}, "
            f"source={_shown(self.source)!r}, destination={_shown(self.destination)!r}, "
            f"options={self.options!r}, tenant={self.tenant!r}, namespace={self.namespace!r})"
        )


@dataclass(frozen=True, slots=True)
class Abort:
    """Stop attempt ``attempt`` of job ``job_id`` and report nothing for it."""

    job_id: str
    attempt: int
    reason: str

    def __post_init__(self) -> None:
        require_attempt(self.job_id, self.attempt)


@dataclass(frozen=True, slots=True)
class ResultAck:
    """The controller recorded (``accepted``) or refused (a stale attempt, a cancelled job) an
    attempt's ``Completed`` or ``Failed``; the agent stops resending it either way."""

    job_id: str
    attempt: int
    accepted: bool
    reason: str = ""

    def __post_init__(self) -> None:
        require_attempt(self.job_id, self.attempt)


@dataclass(frozen=True, slots=True)
class Redirect:
    """This controller is not the leader: connect to ``leader_address`` (``None`` while no
    leader is known; try the others). ``controllers`` lists the whole quorum."""

    leader_id: str | None
    leader_address: str | None
    controllers: tuple[ControllerAddress, ...]

    def __post_init__(self) -> None:
        require(
            (self.leader_id is None) == (self.leader_address is None),
            "leader_id and leader_address come together",
        )
        if self.leader_id is not None and self.leader_address is not None:
            ControllerAddress(self.leader_id, self.leader_address)


@dataclass(frozen=True, slots=True)
class Drain:
    """Take no new work, finish current transfers within ``timeout`` seconds of receipt, then
    deregister."""

    timeout: float

    def __post_init__(self) -> None:
        require(self.timeout >= 0, "timeout must not be negative")


# -- either way ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Error:
    """The sender closes the connection because of ``code``; ``message`` says what to do."""

    code: ErrorCode
    message: str


Message: TypeAlias = (
    Hello
    | Register
    | Registered
    | Heartbeat
    | HeartbeatAck
    | Assign
    | Abort
    | Progress
    | Completed
    | Failed
    | ResultAck
    | Redirect
    | Drain
    | Deregister
    | Error
)

#: The ``type`` tag of each message on the wire.
TAGS: dict[type[Any], str] = {
    Register: "register",
    Registered: "registered",
    Heartbeat: "heartbeat",
    HeartbeatAck: "heartbeat-ack",
    Assign: "assign",
    Abort: "abort",
    Progress: "progress",
    Completed: "completed",
    Failed: "failed",
    ResultAck: "result-ack",
    Redirect: "redirect",
    Drain: "drain",
    Deregister: "deregister",
    Error: "error",
}
_BY_TAG: dict[str, type[Any]] = {tag: cls for cls, tag in TAGS.items()}
_TYPE_KEY = frozenset({"type"})


def to_wire(message: Message) -> dict[str, Any]:
    """``message`` as a msgpack-friendly map."""
    if isinstance(message, Hello):
        return message.to_wire()
    wire: dict[str, Any] = {"type": TAGS[type(message)]}
    wire.update(codec.encode(message))
    return wire


def from_wire(value: object) -> Message:
    """The message ``value`` encodes; :class:`MessageDecodeError` naming the problem otherwise."""
    if not isinstance(value, dict):
        raise MessageDecodeError(f"a message is a map with a 'type', got {type(value).__name__}")
    tag = value.get("type")
    if tag == HELLO:
        try:
            return Hello.from_wire(value)
        except WireError as exc:
            raise MessageDecodeError(str(exc)) from None
    cls = _BY_TAG.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise MessageDecodeError(f"unknown message type {tag!r}"[:120])
    message: Message = codec.build(cls, value, cls.__name__, ignore=_TYPE_KEY)
    return message


__all__ = [
    "PROTOCOL",
    "TAGS",
    "VERSIONS",
    "Abort",
    "Assign",
    "Completed",
    "Deregister",
    "Drain",
    "Error",
    "Failed",
    "Heartbeat",
    "HeartbeatAck",
    "Message",
    "Progress",
    "Redirect",
    "Register",
    "Registered",
    "ResultAck",
    "from_wire",
    "to_wire",
]
