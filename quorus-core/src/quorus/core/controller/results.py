"""What applying a controller command returns: :class:`Applied` or a typed :class:`Rejected`.

A rejection is a normal answer, not an error: the command was valid bytes but does not fit the
current state (a stale attempt's late completion, an assignment of a cancelled job, ...).
Both are returned to whoever proposed the command on the node that proposed it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from quorus.core.controller.model import AgentRecord, JobRecord


class RejectCode(enum.StrEnum):
    """Why a command was not applied."""

    UNKNOWN_AGENT = "unknown-agent"
    UNKNOWN_JOB = "unknown-job"
    DUPLICATE_JOB = "duplicate-job"
    #: The report is for an attempt that is no longer the job's current one.
    STALE_ATTEMPT = "stale-attempt"
    #: The job is completed, failed or cancelled.
    JOB_FINISHED = "job-finished"
    #: The job is already on an agent.
    JOB_NOT_QUEUED = "job-not-queued"
    #: An assignment's attempt number is not the job's next one.
    WRONG_ATTEMPT = "wrong-attempt"
    #: The agent is draining, unhealthy or deregistered.
    AGENT_UNAVAILABLE = "agent-unavailable"
    UNSUPPORTED_PROTOCOL = "unsupported-protocol"
    #: The agent's labels or site do not satisfy the job's placement rules.
    PLACEMENT_MISMATCH = "placement-mismatch"
    AGENT_FULL = "agent-full"
    INVALID_TRANSITION = "invalid-transition"
    #: A state module's admission check: a quota would be exceeded (``details`` says which,
    #: its limit and the current usage).
    QUOTA_EXCEEDED = "quota-exceeded"
    #: A state module's admission check refused the command for another reason (a suspended
    #: tenant, a path outside the tenant's storage, an agent the tenant may not use).
    ADMISSION_DENIED = "admission-denied"


@dataclass(frozen=True, slots=True)
class AbortOrder:
    """Tell ``agent_id`` to stop attempt ``attempt`` of ``job_id`` and discard its partial."""

    agent_id: str
    job_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Applied:
    """The command changed the state (or repeated one already applied: ``duplicate``).

    ``jobs`` and ``agents`` are the records it changed, as they are now; ``abort`` lists the
    attempts agents must stop; ``message`` says anything notable (``checksum mismatch``...).
    ``value`` carries a state module's own result.
    """

    ok: ClassVar[bool] = True
    command: str
    index: int
    jobs: tuple[JobRecord, ...] = ()
    agents: tuple[AgentRecord, ...] = ()
    abort: tuple[AbortOrder, ...] = ()
    duplicate: bool = False
    message: str = ""
    value: Any = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The command does not fit the current state and changed nothing."""

    ok: ClassVar[bool] = False
    command: str
    index: int
    code: RejectCode
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.command} rejected ({self.code}): {self.message}"


Result = Applied | Rejected

__all__ = ["AbortOrder", "Applied", "RejectCode", "Rejected", "Result"]
