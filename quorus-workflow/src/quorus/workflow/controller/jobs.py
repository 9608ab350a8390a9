"""A workflow step as a controller job: its deterministic id and the job's settings from the
bound step (source, destination, checksum, size, overwrite, bandwidth, protocol options,
attempts, priority, tenant and namespace of its group). The job's options are read from the
same :class:`~quorus.core.engine.TransferRequest` a local run gives its engine
(:meth:`~quorus.workflow.bound.BoundStep.request`), so both check the same size and checksum."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quorus.core.controller.commands import SubmitJob
from quorus.core.controller.model import JobOptions, JobRecord, JobState, RetryPolicy
from quorus.core.engine import OverwritePolicy, TransferRequest
from quorus.core.errors import ConfigurationError
from quorus.workflow.binding import Binder
from quorus.workflow.bound import BoundStep, bind_step
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
    request = bound.request()
    spec = JobSpec(
        job_id=job_id_for(execution.execution_id, step_id), source=bound.source,
        destination=bound.destination, options=job_options(bound, request),
        priority=planned.step.priority,
        retry=RetryPolicy(max_attempts=max(1, request.retry.max_attempts)),
        submitted_by=f"workflow {execution.execution_id}", tenant=group.tenant,
        namespace=group.namespace)
    try:  # the checks submitting will make, made before the start is recorded
        SubmitJob.new(spec.source, spec.destination, job_id=spec.job_id, at=0.0,
                      options=spec.options, priority=spec.priority, retry=spec.retry,
                      tenant=spec.tenant, namespace=spec.namespace)
    except ValueError as exc:
        raise ConfigurationError(f"step {step_id} cannot become a job: {exc}") from None
    return spec


def job_options(bound: BoundStep, request: TransferRequest | None = None) -> JobOptions:
    """The job options of ``bound``, read from its request (``bound.request()`` unless given):
    an exact expected size becomes the job's ``expected_size`` (which quotas reserve), a range
    its ``size_min``/``size_max``."""
    request = request or bound.request()
    size = request.size
    exact = size.min if size is not None and size.min == size.max else None
    return JobOptions(
        checksum=str(request.checksum) if request.checksum else None,
        expected_size=exact,
        overwrite="fail" if request.overwrite is OverwritePolicy.FAIL else "overwrite",
        bandwidth_mbps=(request.bandwidth_limit * 8 / 1_000_000 if request.bandwidth_limit
                        else None),
        protocol_options=flat_options(bound.protocol_options),
        size_min=size.min if size is not None and exact is None else None,
        size_max=size.max if size is not None and exact is None else None,
        mode=request.mode,
        create_directories=request.create_directories,
        streams=request.streams,
    )


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


__all__ = ["JobSpec", "flat_options", "job_id_for", "job_options", "job_spec", "step_ended"]
