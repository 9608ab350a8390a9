"""A workflow step as a controller job: its deterministic id and the job's settings from the
bound step (source, destination, checksum, size, overwrite, bandwidth, protocol options,
attempts, priority, tenant and namespace of its group)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quorus.core.controller.commands import SubmitJob
from quorus.core.controller.model import JobOptions, JobRecord, JobState, RetryPolicy
from quorus.core.errors import ConfigurationError
from quorus.workflow.binding import Binder
from quorus.workflow.bound import bind_step
from quorus.workflow.controller.commands import StepEnded
from quorus.workflow.execution import Execution
from quorus.workflow.planner import Plan

_ENDED = {JobState.COMPLETED: "completed", JobState.FAILED: "failed",
          JobState.CANCELLED: "cancelled"}


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What :meth:`ControllerService.submit_job` takes for one step."""

    job_id: str
    source: str
    destination: str
    options: JobOptions
    priority: int
    retry: RetryPolicy
    submitted_by: str
    tenant: str
    namespace: str


def job_id_for(execution_id: str, step_id: str, start: int = 1) -> str:
    """``wf-EXECUTION-GROUP.TRANSFER-N``: the same step gets the same job id on every leader,
    so submitting it again after a failover is a no-op."""
    return f"wf-{execution_id}-{step_id.replace('/', '.')}-{start}"


def job_spec(execution: Execution, plan: Plan, binder: Binder, step_id: str) -> JobSpec:
    """The job of ``step_id``; raises :class:`ConfigurationError` (or another
    :class:`~quorus.core.errors.QuorusError`) saying why the step cannot become a job."""
    planned = plan.by_id()[step_id]
    group = plan.workflow.group(planned.group)
    bound = bind_step(binder, planned.step, group, execution)
    step = planned.step
    options = JobOptions(
        checksum=step.checksum.lower() if step.checksum else None,
        expected_size=step.expected_size,
        overwrite="fail" if step.overwrite is False else "overwrite",
        bandwidth_mbps=step.bandwidth * 8 / 1_000_000 if step.bandwidth else None,
        protocol_options=flat_options(bound.protocol_options),
        size_min=step.size_min, size_max=step.size_max,
        mode=int(step.destination.permissions, 8) if step.destination.permissions else None,
        create_directories=step.destination.create_directories is not False,
        streams=step.streams,
    )
    spec = JobSpec(
        job_id=job_id_for(execution.execution_id, step_id), source=bound.source,
        destination=bound.destination, options=options, priority=step.priority,
        retry=RetryPolicy(max_attempts=max(1, bound.retry_policy().max_attempts)),
        submitted_by=f"workflow {execution.execution_id}", tenant=group.tenant,
        namespace=group.namespace)
    try:  # the checks submitting will make, made before the start is recorded
        SubmitJob.new(spec.source, spec.destination, job_id=spec.job_id, at=0.0,
                      options=spec.options, priority=spec.priority, retry=spec.retry,
                      tenant=spec.tenant, namespace=spec.namespace)
    except ValueError as exc:
        raise ConfigurationError(f"step {step_id} cannot become a job: {exc}") from None
    return spec


def flat_options(options: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Protocol options by scheme as a job carries them: ``SCHEME.KEY`` → text (the form of
    ``quorus job submit -o``); a nested map adds a dotted level (``http.headers.X-Team``)."""
    flat: dict[str, str] = {}

    def add(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for key, inner in value.items():
                add(f"{prefix}.{key}", inner)
        elif isinstance(value, bool):
            flat[prefix] = "true" if value else "false"
        else:
            flat[prefix] = str(value)

    for scheme, values in options.items():
        add(scheme, values)
    return flat


def step_ended(execution_id: str, step_id: str, job: JobRecord, at: float) -> StepEnded | None:
    """The command recording how ``job`` ended, or ``None`` while it has not."""
    status = _ENDED.get(job.state)
    if status is None:
        return None
    return StepEnded(execution_id, step_id, at, status, bytes=job.bytes_transferred,
                     sha256=job.sha256, attempts=len(job.attempts),
                     error=job.error if status != "completed" else None,
                     source=job.source_display, destination=job.destination_display)


__all__ = ["JobSpec", "flat_options", "job_id_for", "job_spec", "step_ended"]
