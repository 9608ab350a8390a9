"""What an execution did, step by step: the record actions, the CLI and the REST API report.

Both runners (local and on the quorum) produce the same :class:`ExecutionSummary`, and it
converts to and from plain JSON-ready data in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class StepStatus(enum.StrEnum):
    """Where one transfer of an execution stands."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


class ExecutionStatus(enum.StrEnum):
    """Where an execution stands; the last three are final."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED,
                        ExecutionStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """One transfer of an execution. ``step`` is ``group/transfer``; ``source`` and
    ``destination`` are the bound locations with credentials redacted; ``reason`` says why a
    step was skipped or cancelled, ``error`` why it failed."""

    step: str
    status: StepStatus
    source: str = ""
    destination: str = ""
    bytes: int = 0
    sha256: str | None = None
    duration: float = 0.0
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    error: str | None = None
    job_id: str | None = None

    @property
    def success(self) -> bool:
        return self.status is StepStatus.COMPLETED

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step, "status": str(self.status), "source": self.source,
            "destination": self.destination, "bytes": self.bytes, "sha256": self.sha256,
            "duration": self.duration, "attempts": self.attempts,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "reason": self.reason, "error": self.error, "job_id": self.job_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepOutcome:
        return cls(
            step=data["step"], status=StepStatus(data["status"]),
            source=data.get("source", ""), destination=data.get("destination", ""),
            bytes=data.get("bytes", 0), sha256=data.get("sha256"),
            duration=data.get("duration", 0.0), attempts=data.get("attempts", 0),
            started_at=data.get("started_at"), finished_at=data.get("finished_at"),
            reason=data.get("reason"), error=data.get("error"), job_id=data.get("job_id"),
        )


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """One ``onSuccess``/``onFailure`` action that ran: ``ok`` and what it did or why not."""

    action: str
    target: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "target": self.target, "ok": self.ok,
                "detail": self.detail}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionOutcome:
        return cls(data["action"], data["target"], data["ok"], data.get("detail", ""))


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    """One execution of a workflow: its steps in plan order, and the actions run after it."""

    execution_id: str
    workflow: str
    status: ExecutionStatus
    tenant: str = "default"
    namespace: str = "default"
    mode: str = "normal"
    started_at: float | None = None
    finished_at: float | None = None
    steps: tuple[StepOutcome, ...] = ()
    actions: tuple[ActionOutcome, ...] = ()
    error: str | None = None
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.steps)

    def step(self, name: str) -> StepOutcome | None:
        return next((s for s in self.steps if s.step == name), None)

    def counts(self) -> dict[str, int]:
        """How many steps ended in each status (only statuses that occur)."""
        counts: dict[str, int] = {}
        for s in self.steps:
            counts[str(s.status)] = counts.get(str(s.status), 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id, "workflow": self.workflow,
            "status": str(self.status), "tenant": self.tenant, "namespace": self.namespace,
            "mode": self.mode, "started_at": self.started_at, "finished_at": self.finished_at,
            "bytes": self.bytes, "counts": self.counts(),
            "steps": [s.to_json() for s in self.steps],
            "actions": [a.to_json() for a in self.actions],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExecutionSummary:
        return cls(
            execution_id=data["execution_id"], workflow=data["workflow"],
            status=ExecutionStatus(data["status"]), tenant=data.get("tenant", "default"),
            namespace=data.get("namespace", "default"), mode=data.get("mode", "normal"),
            started_at=data.get("started_at"), finished_at=data.get("finished_at"),
            steps=tuple(StepOutcome.from_json(s) for s in data.get("steps", ())),
            actions=tuple(ActionOutcome.from_json(a) for a in data.get("actions", ())),
            error=data.get("error"),
        )
