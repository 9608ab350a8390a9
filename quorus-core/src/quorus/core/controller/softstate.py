"""What the leader knows beyond the replicated state: the content of each agent's last
heartbeat, the progress of running attempts and why queued jobs wait.

None of it goes through consensus; a new leader starts empty and fills it as agents
reconnect and report. The API shows it beside the replicated records.

Heartbeats arrive by the thousand per second on a large fleet's leader and are read rarely
(the API's agent views), so each is kept as received and its :class:`AgentReport` is built
only when read (:class:`AgentReports`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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


class AgentReports(Mapping[str, AgentReport]):
    """Each agent's last heartbeat, by agent id: kept as received (:meth:`record`), read as an
    :class:`AgentReport` built on demand."""

    __slots__ = ("_heard",)

    def __init__(self) -> None:
        self._heard: dict[str, tuple[Heartbeat, float]] = {}

    def record(self, agent_id: str, heartbeat: Heartbeat, received_at: float) -> None:
        self._heard[agent_id] = (heartbeat, received_at)

    def __getitem__(self, agent_id: str) -> AgentReport:
        heartbeat, received_at = self._heard[agent_id]
        return AgentReport.of(heartbeat, received_at)

    def __iter__(self) -> Iterator[str]:
        return iter(self._heard)

    def __len__(self) -> int:
        return len(self._heard)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._heard

    def discard(self, agent_id: str) -> None:
        self._heard.pop(agent_id, None)

    def clear(self) -> None:
        self._heard.clear()


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

    reports: AgentReports = field(default_factory=AgentReports)
    connected: set[str] = field(default_factory=set)
    progress: dict[str, JobProgress] = field(default_factory=dict)
    #: Why queued jobs wait, from the last scheduling round (job id -> reason).
    waiting: Mapping[str, str] = field(default_factory=dict)

    def clear(self) -> None:
        self.reports.clear()
        self.connected.clear()
        self.progress.clear()
        self.waiting = {}

    def record_progress(self, progress: Progress, now: float) -> bool:
        """Keep ``progress`` unless a later attempt already reported; ``True`` when kept."""
        known = self.progress.get(progress.job_id)
        if known is not None and known.attempt > progress.attempt:
            return False
        self.progress[progress.job_id] = JobProgress.of(progress, now)
        return True


__all__ = ["AgentReport", "AgentReports", "JobProgress", "SoftState"]
