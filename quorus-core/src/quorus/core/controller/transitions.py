"""The rules of each built-in controller command: what it checks and what it changes.

Every handler takes the :class:`~quorus.core.controller.state.ControllerState`, the log index
and the command, and returns :class:`Applied` with the records it changed or a typed
:class:`Rejected` without changing anything. Handlers are deterministic: they read only the
state and the command, and whenever they touch several records they do so in submission
order, so every controller produces the same results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from quorus.core.controller.commands import (
    AgentStateChanged,
    AssignJob,
    CancelJob,
    Command,
    CompleteAttempt,
    DeregisterAgent,
    DrainAgent,
    ExpireAgent,
    FailAttempt,
    JobStarted,
    RegisterAgent,
    SubmitJob,
)
from quorus.core.controller.model import (
    AgentRecord,
    AgentState,
    AttemptOutcome,
    JobAttempt,
    JobRecord,
    JobState,
)
from quorus.core.controller.placement import placement_problem
from quorus.core.controller.results import AbortOrder, Applied, RejectCode, Rejected, Result

if TYPE_CHECKING:
    from quorus.core.controller.state import ControllerState

C = TypeVar("C", bound=Command)
Handler = Callable[["ControllerState", int, Any], Result]
_HANDLERS: dict[type[Command], Handler] = {}


def _handles(command_type: type[C]) -> Callable[[Callable[[ControllerState, int, C], Result]],
                                                 Callable[[ControllerState, int, C], Result]]:
    def register(fn: Callable[[ControllerState, int, C], Result]) -> Callable[
        [ControllerState, int, C], Result
    ]:
        _HANDLERS[command_type] = fn
        return fn

    return register


def apply(state: ControllerState, index: int, command: Command) -> Result:
    """Apply a built-in command to ``state``."""
    handler = _HANDLERS.get(type(command))
    if handler is None:
        raise TypeError(f"no state module applies {command.NAME!r}")
    return handler(state, index, command)


class _Change:
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


def _current(change: _Change, job_id: str, agent_id: str, attempt: int) -> JobRecord | Rejected:
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


# --- Agents -----------------------------------------------------------------------------------


@_handles(RegisterAgent)
def _register(state: ControllerState, index: int, cmd: RegisterAgent) -> Result:
    change = _Change(state, index, cmd)
    old = state.agent(cmd.agent_id)
    fresh = old is None or old.state is AgentState.DEREGISTERED
    held = {(ref.job_id, ref.attempt) for ref in cmd.holding}
    # Attempts the agent holds that are no longer its to run: moved, finished or unknown.
    for ref in sorted(cmd.holding, key=lambda r: (r.job_id, r.attempt)):
        job = state.job(ref.job_id)
        if (job is None or not job.state.on_agent or job.agent_id != cmd.agent_id
                or job.attempt != ref.attempt):
            change.abort.append(AbortOrder(cmd.agent_id, ref.job_id, ref.attempt))
    # Jobs assigned to it that it no longer knows of (it restarted): run them elsewhere.
    for job in state.jobs_on_agent(cmd.agent_id):
        if (job.id, job.attempt) not in held:
            change.take_back(job, AttemptOutcome.ABORTED, cmd.at,
                             f"agent {cmd.agent_id} re-registered without it")
    if fresh or old is None:
        new_state = AgentState.ACTIVE
    elif old.state is AgentState.DRAINING:
        new_state = AgentState.DRAINING
    else:
        new_state = AgentState.WORKING if state.load(cmd.agent_id) else AgentState.ACTIVE
    change.agent(AgentRecord(
        id=cmd.agent_id, hostname=cmd.hostname, version=cmd.version,
        capabilities=cmd.capabilities, resources=cmd.resources, location=cmd.location,
        labels=dict(cmd.labels), state=new_state,
        state_reason="registered" if fresh else "re-registered",
        registered_at=cmd.at if old is None else old.registered_at,
        updated_at=cmd.at,
        registrations=1 if old is None else old.registrations + 1,
        drain_deadline=old.drain_deadline if old and new_state is AgentState.DRAINING else None,
        tenant=cmd.tenant, namespace=cmd.namespace,
    ))
    if new_state is AgentState.DRAINING:
        change.settle_agent(cmd.agent_id, cmd.at)  # nothing left to finish: deregistered
    return change.result()


_MANUAL_TARGETS = {AgentState.ACTIVE, AgentState.IDLE, AgentState.WORKING, AgentState.UNHEALTHY}


@_handles(AgentStateChanged)
def _state_changed(state: ControllerState, index: int, cmd: AgentStateChanged) -> Result:
    change = _Change(state, index, cmd)
    agent = state.agent(cmd.agent_id)
    if agent is None:
        return change.reject(RejectCode.UNKNOWN_AGENT, f"no agent {cmd.agent_id!r}")
    if cmd.state not in _MANUAL_TARGETS:
        return change.reject(
            RejectCode.INVALID_TRANSITION,
            f"an agent becomes {cmd.state} through its own command, not a state change",
        )
    if agent.state in (AgentState.DRAINING, AgentState.DEREGISTERED):
        return change.reject(
            RejectCode.INVALID_TRANSITION,
            f"agent {cmd.agent_id} is {agent.state}: it cannot become {cmd.state}",
        )
    target = cmd.state
    if target.schedulable:
        # Working or idle follows from the jobs the state holds, whatever the report said.
        load = state.load(cmd.agent_id)
        target = AgentState.WORKING if load else (
            AgentState.IDLE if target is AgentState.WORKING else target
        )
    if target is agent.state:
        return change.result(duplicate=True)
    change.agent(dataclasses.replace(
        agent, state=target, updated_at=cmd.at, state_reason=cmd.reason or str(target)
    ))
    return change.result()


@_handles(DrainAgent)
def _drain(state: ControllerState, index: int, cmd: DrainAgent) -> Result:
    change = _Change(state, index, cmd)
    agent = state.agent(cmd.agent_id)
    if agent is None:
        return change.reject(RejectCode.UNKNOWN_AGENT, f"no agent {cmd.agent_id!r}")
    if agent.state is AgentState.DEREGISTERED:
        return change.reject(RejectCode.INVALID_TRANSITION,
                             f"agent {cmd.agent_id} is deregistered: nothing to drain")
    if agent.state is AgentState.DRAINING:
        return change.result(duplicate=True)
    change.agent(dataclasses.replace(
        agent, state=AgentState.DRAINING, updated_at=cmd.at, drain_deadline=cmd.deadline,
        state_reason="draining",
    ))
    change.settle_agent(cmd.agent_id, cmd.at)
    return change.result()


def _remove_jobs(change: _Change, agent_id: str, outcome: AttemptOutcome, at: float,
                 reason: str) -> None:
    for job in change.state.jobs_on_agent(agent_id):
        change.take_back(job, outcome, at, reason)


@_handles(DeregisterAgent)
def _deregister(state: ControllerState, index: int, cmd: DeregisterAgent) -> Result:
    change = _Change(state, index, cmd)
    agent = state.agent(cmd.agent_id)
    if agent is None:
        return change.reject(RejectCode.UNKNOWN_AGENT, f"no agent {cmd.agent_id!r}")
    if agent.state is AgentState.DEREGISTERED:
        return change.result(duplicate=True)
    _remove_jobs(change, cmd.agent_id, AttemptOutcome.ABORTED, cmd.at,
                 f"agent {cmd.agent_id} was deregistered ({cmd.reason})")
    change.agent(dataclasses.replace(
        agent, state=AgentState.DEREGISTERED, updated_at=cmd.at, state_reason=cmd.reason,
        drain_deadline=None,
    ))
    return change.result()


@_handles(ExpireAgent)
def _expire(state: ControllerState, index: int, cmd: ExpireAgent) -> Result:
    change = _Change(state, index, cmd)
    agent = state.agent(cmd.agent_id)
    if agent is None:
        return change.reject(RejectCode.UNKNOWN_AGENT, f"no agent {cmd.agent_id!r}")
    if agent.state is AgentState.DEREGISTERED:
        return change.reject(RejectCode.INVALID_TRANSITION,
                             f"agent {cmd.agent_id} is deregistered: it cannot expire")
    if agent.state is AgentState.UNHEALTHY and not state.load(cmd.agent_id):
        return change.result(duplicate=True)
    _remove_jobs(change, cmd.agent_id, AttemptOutcome.LOST, cmd.at,
                 f"agent {cmd.agent_id} stopped sending heartbeats")
    draining = agent.state is AgentState.DRAINING
    change.agent(dataclasses.replace(
        agent,
        state=AgentState.DEREGISTERED if draining else AgentState.UNHEALTHY,
        updated_at=cmd.at,
        state_reason="missed heartbeats" + (" while draining" if draining else ""),
        drain_deadline=None,
    ))
    return change.result()


# --- Jobs -------------------------------------------------------------------------------------


def _same_submission(job: JobRecord, cmd: SubmitJob) -> bool:
    return (job.source, job.destination, job.options, job.priority, job.placement, job.retry,
            job.tenant, job.namespace) == (
        cmd.source, cmd.destination, cmd.options, cmd.priority, cmd.placement, cmd.retry,
        cmd.tenant, cmd.namespace)


@_handles(SubmitJob)
def _submit(state: ControllerState, index: int, cmd: SubmitJob) -> Result:
    change = _Change(state, index, cmd)
    existing = state.job(cmd.job_id)
    if existing is not None:
        if _same_submission(existing, cmd):
            change.jobs[existing.id] = existing
            return change.result(duplicate=True)
        return change.reject(RejectCode.DUPLICATE_JOB,
                             f"job id {cmd.job_id!r} is taken by another job")
    change.job(JobRecord(
        id=cmd.job_id, source=cmd.source, destination=cmd.destination,
        source_display=cmd.source_display, destination_display=cmd.destination_display,
        source_scheme=cmd.source_scheme, destination_scheme=cmd.destination_scheme,
        sequence=state.take_sequence(), submitted_at=cmd.at, options=cmd.options,
        priority=cmd.priority, placement=cmd.placement, retry=cmd.retry,
        submitted_by=cmd.submitted_by, tenant=cmd.tenant, namespace=cmd.namespace,
    ))
    return change.result()


@_handles(AssignJob)
def _assign(state: ControllerState, index: int, cmd: AssignJob) -> Result:
    change = _Change(state, index, cmd)
    job = state.job(cmd.job_id)
    if job is None:
        return change.reject(RejectCode.UNKNOWN_JOB, f"no job {cmd.job_id!r}")
    if job.state.terminal:
        return change.reject(RejectCode.JOB_FINISHED,
                             f"job {job.id} is {job.state}: it is never assigned again")
    if job.state is not JobState.QUEUED:
        return change.reject(RejectCode.JOB_NOT_QUEUED,
                             f"job {job.id} is already {job.state} on {job.agent_id}")
    if cmd.attempt != job.attempt:
        return change.reject(RejectCode.WRONG_ATTEMPT,
                             f"job {job.id} waits for attempt {job.attempt}, not {cmd.attempt}")
    agent = state.agent(cmd.agent_id)
    if agent is None:
        return change.reject(RejectCode.UNKNOWN_AGENT, f"no agent {cmd.agent_id!r}")
    if not agent.state.schedulable:
        return change.reject(RejectCode.AGENT_UNAVAILABLE,
                             f"agent {agent.id} is {agent.state}: it takes no new jobs")
    missing = [s for s in dict.fromkeys(job.schemes) if not agent.capabilities.supports(s)]
    if missing:
        return change.reject(RejectCode.UNSUPPORTED_PROTOCOL,
                             f"agent {agent.id} does not support {' or '.join(missing)}")
    problem = placement_problem(job.placement, agent)
    if problem:
        return change.reject(RejectCode.PLACEMENT_MISMATCH, f"agent {agent.id} {problem}")
    if state.load(agent.id) >= agent.capabilities.max_concurrent:
        return change.reject(
            RejectCode.AGENT_FULL,
            f"agent {agent.id} already runs {agent.capabilities.max_concurrent} jobs",
        )
    change.job(dataclasses.replace(
        job, state=JobState.ASSIGNED, agent_id=agent.id,
        attempts=(*job.attempts, JobAttempt(cmd.attempt, agent.id, cmd.at)),
    ))
    change.settle_agent(agent.id, cmd.at)
    return change.result()


@_handles(JobStarted)
def _started(state: ControllerState, index: int, cmd: JobStarted) -> Result:
    change = _Change(state, index, cmd)
    job = _current(change, cmd.job_id, cmd.agent_id, cmd.attempt)
    if isinstance(job, Rejected):
        return job
    if job.state is JobState.RUNNING:
        return change.result(duplicate=True)
    current = job.attempts[-1]
    change.job(dataclasses.replace(
        job, state=JobState.RUNNING,
        started_at=job.started_at if job.started_at is not None else cmd.at,
        attempts=(*job.attempts[:-1], dataclasses.replace(current, started_at=cmd.at)),
    ))
    return change.result()


def _repeated_report(
    job: JobRecord, agent_id: str, attempt: int, outcome: AttemptOutcome
) -> bool:
    """The same agent reporting the same end of the same attempt again (a resent frame)."""
    return any(
        a.number == attempt and a.agent_id == agent_id and a.outcome is outcome
        for a in job.attempts
    )


@_handles(CompleteAttempt)
def _complete(state: ControllerState, index: int, cmd: CompleteAttempt) -> Result:
    change = _Change(state, index, cmd)
    previous = state.job(cmd.job_id)
    if (previous is not None and previous.state is JobState.COMPLETED
            and _repeated_report(previous, cmd.agent_id, cmd.attempt, AttemptOutcome.COMPLETED)):
        change.jobs[previous.id] = previous
        return change.result(duplicate=True)
    job = _current(change, cmd.job_id, cmd.agent_id, cmd.attempt)
    if isinstance(job, Rejected):
        return job
    expected = job.options.checksum
    problem = ""
    if expected is not None and expected.lower() != f"sha256:{cmd.sha256}":
        problem = f"checksum mismatch: expected {expected}, the agent wrote sha256:{cmd.sha256}"
    elif job.options.expected_size not in (None, cmd.bytes_transferred):
        problem = (f"size mismatch: expected {job.options.expected_size} bytes, "
                   f"the agent wrote {cmd.bytes_transferred}")
    if problem:
        # The agent should have caught it; the attempt counts as failed so it is retried.
        change.message = problem
        change.take_back(job, AttemptOutcome.FAILED, cmd.at, problem)
        change.abort.clear()
    else:
        change.job(dataclasses.replace(
            job, state=JobState.COMPLETED, agent_id=None, finished_at=cmd.at,
            bytes_transferred=cmd.bytes_transferred, sha256=cmd.sha256, error=None,
            attempts=change.close_attempt(job, AttemptOutcome.COMPLETED, cmd.at),
        ))
    change.settle_agent(cmd.agent_id, cmd.at)
    return change.result()


@_handles(FailAttempt)
def _fail(state: ControllerState, index: int, cmd: FailAttempt) -> Result:
    change = _Change(state, index, cmd)
    previous = state.job(cmd.job_id)
    if (previous is not None and not previous.state.on_agent and previous.agent_id is None
            and _repeated_report(previous, cmd.agent_id, cmd.attempt, AttemptOutcome.FAILED)):
        change.jobs[previous.id] = previous
        return change.result(duplicate=True)
    job = _current(change, cmd.job_id, cmd.agent_id, cmd.attempt)
    if isinstance(job, Rejected):
        return job
    if cmd.retryable:
        change.take_back(job, AttemptOutcome.FAILED, cmd.at, cmd.error)
        change.abort.clear()  # the agent already stopped
    else:
        change.job(dataclasses.replace(
            job, state=JobState.FAILED, agent_id=None, finished_at=cmd.at, error=cmd.error,
            attempts=change.close_attempt(job, AttemptOutcome.FAILED, cmd.at, cmd.error),
        ))
    change.settle_agent(cmd.agent_id, cmd.at)
    return change.result()


@_handles(CancelJob)
def _cancel(state: ControllerState, index: int, cmd: CancelJob) -> Result:
    change = _Change(state, index, cmd)
    job = state.job(cmd.job_id)
    if job is None:
        return change.reject(RejectCode.UNKNOWN_JOB, f"no job {cmd.job_id!r}")
    if job.state is JobState.CANCELLED:
        change.jobs[job.id] = job
        return change.result(duplicate=True)
    if job.state.terminal:
        return change.reject(RejectCode.JOB_FINISHED,
                             f"job {job.id} is already {job.state}")
    agent_id = job.agent_id
    if agent_id is not None:
        change.abort.append(AbortOrder(agent_id, job.id, job.attempt))
    change.job(dataclasses.replace(
        job, state=JobState.CANCELLED, agent_id=None, finished_at=cmd.at, error=cmd.reason,
        attempts=change.close_attempt(job, AttemptOutcome.CANCELLED, cmd.at, cmd.reason),
    ))
    change.settle_agent(agent_id, cmd.at)
    return change.result()


__all__ = ["apply"]
