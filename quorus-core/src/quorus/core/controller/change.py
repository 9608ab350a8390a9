"""What one controller command changes, collected to build its result, and the moves that
several commands share: closing an attempt, taking a job back from its agent (queued for the
next attempt, or failed when the retry policy is spent), settling an agent's state after its
load changed. Handlers register here with :func:`handles`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from quorus.core.controller.commands import Command
from quorus.core.controller.model import (
    AgentRecord,
    AgentState,
    AttemptOutcome,
    JobAttempt,
    JobRecord,
    JobState,
)
from quorus.core.controller.results import AbortOrder, Applied, RejectCode, Rejected, Result

if TYPE_CHECKING:
    from quorus.core.controller.state import ControllerState

C = TypeVar("C", bound=Command)
Handler = Callable[["ControllerState", int, Any], Result]
HANDLERS: dict[type[Command], Handler] = {}


def handles(command_type: type[C]) -> Callable[[Callable[[ControllerState, int, C], Result]],
                                                 Callable[[ControllerState, int, C], Result]]:
    def register(fn: Callable[[ControllerState, int, C], Result]) -> Callable[
        [ControllerState, int, C], Result
    ]:
        HANDLERS[command_type] = fn
        return fn

    return register


class Change:
    """Collects what one command changes, to build its :class:`Applied` result."""

    def __init__(self, state: ControllerState, index: int, command: Command) -> None:
        self.state = state
        self.index = index
        self.command = command
        self.jobs: dict[str, JobRecord] = {}
        self.agents: dict[str, AgentRecord] = {}
        self.abort: list[AbortOrder] = []
        self.message = ""

    def job(self, job: JobRecord) -> None:
        self.state.put_job(job)
        self.jobs[job.id] = job

    def agent(self, agent: AgentRecord) -> None:
        self.state.put_agent(agent)
        self.agents[agent.id] = agent

    def result(self, *, duplicate: bool = False) -> Applied:
        return Applied(
            self.command.NAME,
            self.index,
            jobs=tuple(sorted(self.jobs.values(), key=lambda j: j.sequence)),
            agents=tuple(sorted(self.agents.values(), key=lambda a: a.id)),
            abort=tuple(self.abort),
            duplicate=duplicate,
            message=self.message,
        )

    def reject(self, code: RejectCode, message: str) -> Rejected:
        return Rejected(self.command.NAME, self.index, code, message)

    # -- shared moves ---------------------------------------------------------------------------

    def close_attempt(
        self, job: JobRecord, outcome: AttemptOutcome, at: float, reason: str = ""
    ) -> tuple[JobAttempt, ...]:
        """The job's attempt history with its current attempt closed."""
        current = job.current_attempt
        if current is None:
            return job.attempts
        closed = dataclasses.replace(current, finished_at=at, outcome=outcome, reason=reason)
        return (*job.attempts[:-1], closed)

    def take_back(self, job: JobRecord, outcome: AttemptOutcome, at: float, reason: str) -> None:
        """Take the job from its agent: queued for the next attempt, or failed once the retry
        policy is spent. The agent is told to abort the attempt."""
        assert job.agent_id is not None
        self.abort.append(AbortOrder(job.agent_id, job.id, job.attempt))
        attempts = self.close_attempt(job, outcome, at, reason)
        if job.attempt >= job.retry.max_attempts:
            self.job(dataclasses.replace(
                job, state=JobState.FAILED, agent_id=None, attempts=attempts, finished_at=at,
                error=f"{reason}; gave up after {job.attempt} of {job.retry.max_attempts} attempts",
            ))
        else:
            self.job(dataclasses.replace(
                job, state=JobState.QUEUED, agent_id=None, attempts=attempts,
                attempt=job.attempt + 1,
            ))

    def settle_agent(self, agent_id: str | None, at: float) -> None:
        """After the agent's load changed: working ↔ idle, and a drained agent deregistered."""
        if agent_id is None:
            return
        agent = self.state.agent(agent_id)
        if agent is None:
            return
        load = self.state.load(agent_id)
        new = agent.state
        if agent.state is AgentState.DRAINING and load == 0:
            new = AgentState.DEREGISTERED
        elif agent.state.schedulable:
            new = AgentState.WORKING if load else AgentState.IDLE
        if new is not agent.state:
            reason = "drained" if new is AgentState.DEREGISTERED else agent.state_reason
            self.agent(dataclasses.replace(agent, state=new, updated_at=at, state_reason=reason))


def current_attempt_of(change: Change, job_id: str, agent_id: str, attempt: int) -> JobRecord | Rejected:
    """The job if ``attempt`` on ``agent_id`` is its current attempt, else the rejection."""
    job = change.state.job(job_id)
    if job is None:
        return change.reject(RejectCode.UNKNOWN_JOB, f"no job {job_id!r}")
    if not job.state.on_agent or job.attempt != attempt or job.agent_id != agent_id:
        where = f"attempt {job.attempt} on {job.agent_id}" if job.state.on_agent else job.state
        return change.reject(
            RejectCode.STALE_ATTEMPT,
            f"stale attempt: job {job_id} attempt {attempt} on {agent_id} is not current "
            f"(the job is {where})",
        )
    return job


__all__ = ["HANDLERS", "Change", "current_attempt_of", "handles"]
