"""What the leader knows beyond the replicated state: the content of each agent's last
heartbeat, the progress of running attempts and why queued jobs wait.

None of it goes through consensus; a new leader starts empty and fills it as agents
reconnect and report. The API shows it beside the replicated records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quorus.core.agentproto import Heartbeat, Progress
from quorus.core.controller.codec import to_plain


@dataclass(frozen=True, slots=True)
class AgentReport:
    """An agent's last heartbeat as this leader received it (``received_at``: wall clock)."""

    received_at: float
    sequence: int
    status: str
    free_slots: int
    running: tuple[tuple[str, int], ...]
    metrics: dict[str, Any]
    health: dict[str, Any]

    @classmethod
    def of(cls, heartbeat: Heartbeat, received_at: float) -> AgentReport:
        return cls(
            received_at, heartbeat.sequence, str(heartbeat.status),
            heartbeat.available_capacity,
            tuple((j.job_id, j.attempt) for j in heartbeat.current_jobs),
            to_plain(heartbeat.metrics), to_plain(heartbeat.health),
        )


@dataclass(frozen=True, slots=True)
class JobProgress:
    """The latest progress of one attempt."""

    attempt: int
    bytes_done: int
    total_bytes: int | None
    rate: float
    reported_at: float

    @classmethod
    def of(cls, progress: Progress, reported_at: float) -> JobProgress:
        return cls(progress.attempt, progress.bytes_done, progress.total_bytes, progress.rate,
                   reported_at)

    def as_json(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain


@dataclass(slots=True)
class SoftState:
    """The leader's soft state (see the module docstring); cleared when leadership changes."""

    reports: dict[str, AgentReport] = field(default_factory=dict)
    connected: set[str] = field(default_factory=set)
    progress: dict[str, JobProgress] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)

    def clear(self) -> None:
        self.reports.clear()
        self.connected.clear()
        self.progress.clear()
        self.waiting.clear()

    def record_progress(self, progress: Progress, now: float) -> bool:
        """Keep ``progress`` unless a later attempt already reported; ``True`` when kept."""
        known = self.progress.get(progress.job_id)
        if known is not None and known.attempt > progress.attempt:
            return False
        self.progress[progress.job_id] = JobProgress.of(progress, now)
        return True


__all__ = ["AgentReport", "JobProgress", "SoftState"]
