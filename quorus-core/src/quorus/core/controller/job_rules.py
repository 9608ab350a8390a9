"""The rules of the job commands: submit, assign, started, complete, fail and cancel. A
report for an attempt that is not the job's current one is rejected as stale, so a job is
completed once, by its current attempt; a finished job is never assigned again.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from quorus.core.controller.change import Change, current_attempt_of, handles
from quorus.core.controller.commands import (
    AssignJob,
    CancelJob,
    CompleteAttempt,
    FailAttempt,
    JobStarted,
    SubmitJob,
)
from quorus.core.controller.model import AttemptOutcome, JobAttempt, JobRecord, JobState
from quorus.core.controller.placement import placement_problem
from quorus.core.controller.results import AbortOrder, RejectCode, Rejected, Result

if TYPE_CHECKING:
    from quorus.core.controller.state import ControllerState


def _same_submission(job: JobRecord, cmd: SubmitJob) -> bool:
    return (job.source, job.destination, job.options, job.priority, job.placement, job.retry,
            job.tenant, job.namespace) == (
        cmd.source, cmd.destination, cmd.options, cmd.priority, cmd.placement, cmd.retry,
        cmd.tenant, cmd.namespace)


@handles(SubmitJob)
def _submit(state: ControllerState, index: int, cmd: SubmitJob) -> Result:
    change = Change(state, index, cmd)
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


@handles(AssignJob)
def _assign(state: ControllerState, index: int, cmd: AssignJob) -> Result:
    change = Change(state, index, cmd)
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
    refusal = state.placement_refusal(job, agent)
    if refusal is not None:
        return change.reject(RejectCode.ADMISSION_DENIED, f"agent {agent.id}: {refusal}")
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


@handles(JobStarted)
def _started(state: ControllerState, index: int, cmd: JobStarted) -> Result:
    change = Change(state, index, cmd)
    job = current_attempt_of(change, cmd.job_id, cmd.agent_id, cmd.attempt)
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


@handles(CompleteAttempt)
def _complete(state: ControllerState, index: int, cmd: CompleteAttempt) -> Result:
    change = Change(state, index, cmd)
    previous = state.job(cmd.job_id)
    if (previous is not None and previous.state is JobState.COMPLETED
            and _repeated_report(previous, cmd.agent_id, cmd.attempt, AttemptOutcome.COMPLETED)):
        change.jobs[previous.id] = previous
        return change.result(duplicate=True)
    job = current_attempt_of(change, cmd.job_id, cmd.agent_id, cmd.attempt)
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


@handles(FailAttempt)
def _fail(state: ControllerState, index: int, cmd: FailAttempt) -> Result:
    change = Change(state, index, cmd)
    previous = state.job(cmd.job_id)
    if (previous is not None and not previous.state.on_agent and previous.agent_id is None
            and _repeated_report(previous, cmd.agent_id, cmd.attempt, AttemptOutcome.FAILED)):
        change.jobs[previous.id] = previous
        return change.result(duplicate=True)
    job = current_attempt_of(change, cmd.job_id, cmd.agent_id, cmd.attempt)
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


@handles(CancelJob)
def _cancel(state: ControllerState, index: int, cmd: CancelJob) -> Result:
    change = Change(state, index, cmd)
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
