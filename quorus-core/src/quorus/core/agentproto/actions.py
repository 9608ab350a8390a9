"""What a session asks its runtime to do, besides sending messages.

Every session call returns a :class:`Step`: the messages to send, in order, and the actions to
take, in order. Agent-side actions are about connections and transfers; controller-side
actions report what the agent said, for the controller to record (and, for registration and
results, to answer through the session once recorded).
"""

from __future__ import annotations

from dataclasses import dataclass

from quorus.core.agentproto.messages import (
    Assign,
    Completed,
    Failed,
    Heartbeat,
    Message,
    Progress,
    Register,
)
from quorus.core.agentproto.records import ControllerAddress

# -- both sides ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the current connection (after sending this step's messages)."""

    reason: str


# -- agent side ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Open a connection to ``to`` at time ``at`` (the session's clock), then call
    ``connected`` or ``connection_failed``."""

    to: ControllerAddress
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class RegisteredWith:
    """The controller ``controller_id`` accepted the registration."""

    controller_id: str
    heartbeat_interval: float
    controllers: tuple[ControllerAddress, ...]


@dataclass(frozen=True, slots=True)
class RegistrationRejected:
    reason: str


@dataclass(frozen=True, slots=True)
class StartJob:
    """Run this attempt; report with ``job_progress``, ``job_completed`` or ``job_failed``."""

    assign: Assign


@dataclass(frozen=True, slots=True)
class AbortJob:
    """Stop this attempt (cancel the transfer; keep nothing as its result)."""

    job_id: str
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class DrainRequested:
    """Take no new work; transfers still running at ``deadline`` will be aborted."""

    deadline: float


@dataclass(frozen=True, slots=True)
class ResultRejected:
    """The controller refused an attempt's result (e.g. the job moved to another attempt)."""

    job_id: str
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class ControllerError:
    """The controller closed the connection with an ``Error``."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The agent is done (drained and deregistered, or out of time): stop the process."""

    reason: str


# -- controller side ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegistrationRequested:
    """An authenticated agent asks to register: record it, then answer with the session's
    ``accept``, ``reject`` or ``redirect``."""

    register: Register
    version: int
    at: float


@dataclass(frozen=True, slots=True)
class HeartbeatReceived:
    agent_id: str
    heartbeat: Heartbeat
    at: float


@dataclass(frozen=True, slots=True)
class ProgressReported:
    agent_id: str
    progress: Progress
    at: float


@dataclass(frozen=True, slots=True)
class AttemptCompleted:
    """Record the completion (only if ``attempt`` is the job's current one), then answer with
    the session's ``result_recorded``."""

    agent_id: str
    completed: Completed
    at: float


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """Record the failure (only for the current attempt), then ``result_recorded``."""

    agent_id: str
    failed: Failed
    at: float


@dataclass(frozen=True, slots=True)
class AgentDeregistering:
    agent_id: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentDisconnected:
    """A registered agent's connection ended without a ``Deregister``."""

    agent_id: str
    reason: str
    at: float


Action = (
    CloseConnection
    | Reconnect
    | RegisteredWith
    | RegistrationRejected
    | StartJob
    | AbortJob
    | DrainRequested
    | ResultRejected
    | ControllerError
    | Shutdown
    | RegistrationRequested
    | HeartbeatReceived
    | ProgressReported
    | AttemptCompleted
    | AttemptFailed
    | AgentDeregistering
    | AgentDisconnected
)


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one session call: messages to send, then actions to take."""

    send: tuple[Message, ...] = ()
    actions: tuple[Action, ...] = ()


class StepBuilder:
    """Collects a call's messages and actions."""

    __slots__ = ("actions", "send")

    def __init__(self) -> None:
        self.send: list[Message] = []
        self.actions: list[Action] = []

    def build(self) -> Step:
        return Step(tuple(self.send), tuple(self.actions))


__all__ = [
    "AbortJob",
    "Action",
    "AgentDeregistering",
    "AgentDisconnected",
    "AttemptCompleted",
    "AttemptFailed",
    "CloseConnection",
    "ControllerError",
    "DrainRequested",
    "HeartbeatReceived",
    "ProgressReported",
    "Reconnect",
    "RegisteredWith",
    "RegistrationRejected",
    "RegistrationRequested",
    "ResultRejected",
    "Shutdown",
    "StartJob",
    "Step",
    "StepBuilder",
]
