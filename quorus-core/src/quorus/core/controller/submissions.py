"""Job submissions over the REST API: the body of one (``POST /v1/jobs``), of a batch
(``POST /v1/jobs/batch``) and what a batch answers, and their admission.

Every job of a batch is admitted exactly as if it came alone: the caller's right to submit in
the job's tenant and namespace, the same checks of its URIs and labels, the state modules'
admission (quotas) inside the state machine, the same idempotent ``id``. The jobs that pass
the first checks are proposed together, so they take few consensus writes; each one's outcome
comes back in its place, and one refusal does not stop the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from quorus.core.controller.model import (
    JobOptions,
    JobPlacement,
    LabelRequirement,
    RetryPolicy,
    Site,
)
from quorus.core.controller.service import (
    ControllerService,
    InvalidRequest,
    JobRequest,
    ServiceError,
)

if TYPE_CHECKING:
    from quorus.core.auth import Principal
    from quorus.core.controller.model import JobRecord

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
#: The most jobs one batch may hold.
MAX_BATCH_JOBS = 1000


class SiteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str | None = None
    datacenter: str | None = None
    zone: str | None = None

    def site(self) -> Site:
        return Site(self.region, self.datacenter, self.zone)


class JobSubmission(BaseModel):
    """A transfer to run on the fleet. ``source`` and ``destination`` are URIs (or absolute
    paths for ``file``); ``id`` makes the submission safe to retry."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=8192)
    destination: str = Field(min_length=1, max_length=8192)
    id: str | None = Field(default=None, min_length=1, max_length=256, pattern=ID_PATTERN)
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    checksum: str | None = Field(default=None, pattern=r"^sha256:[0-9a-fA-F]{64}$")
    expected_size: int | None = Field(default=None, ge=0)
    overwrite: Literal["fail", "overwrite", "skip-same"] = "fail"
    bandwidth_mbps: float | None = Field(default=None, gt=0)
    protocol_options: dict[str, str] = Field(default_factory=dict)
    max_attempts: int = Field(default=3, ge=1, le=100)
    affinity: list[str] = Field(default_factory=list, max_length=32)
    anti_affinity: list[str] = Field(default_factory=list, max_length=32)
    required_site: SiteBody | None = None
    preferred_site: SiteBody | None = None
    tenant: str = Field(default="default", min_length=1, max_length=128, pattern=ID_PATTERN)
    namespace: str = Field(default="default", min_length=1, max_length=128,
                           pattern=ID_PATTERN)

    def request(self, submitted_by: str) -> JobRequest:
        """What the service takes; :class:`InvalidRequest` names a bad label selector."""
        return JobRequest(
            self.source, self.destination, job_id=self.id,
            options=JobOptions(
                checksum=self.checksum.lower() if self.checksum else None,
                expected_size=self.expected_size, overwrite=self.overwrite,
                bandwidth_mbps=self.bandwidth_mbps, protocol_options=self.protocol_options,
            ),
            priority=self.priority,
            placement=JobPlacement(
                affinity=_labels(self.affinity), anti_affinity=_labels(self.anti_affinity),
                required_site=self.required_site.site() if self.required_site else None,
                preferred_site=self.preferred_site.site() if self.preferred_site else None,
            ),
            retry=RetryPolicy(self.max_attempts),
            submitted_by=submitted_by, tenant=self.tenant, namespace=self.namespace,
        )


class JobBatch(BaseModel):
    """Several transfers at once (1 to 1,000), each as ``POST /v1/jobs`` takes it. Give each
    an ``id`` so that the whole batch is safe to retry: a job already submitted under its id
    is returned, not queued again."""

    model_config = ConfigDict(extra="forbid")
    jobs: list[JobSubmission] = Field(min_length=1, max_length=MAX_BATCH_JOBS)


class BatchItem(BaseModel):
    """One job's outcome, in the place it had in the request: ``status`` is what ``POST
    /v1/jobs`` would have answered for it alone, with the job (201) or the error."""

    index: int
    status: int
    job: dict[str, Any] | None = None
    error: str | None = None
    message: str | None = None
    details: dict[str, Any] | None = None


class BatchAnswer(BaseModel):
    """A batch's outcome: one result per job, in order; ``submitted`` counts the jobs that
    are queued (new ones and those already submitted under their id), ``refused`` the
    others."""

    results: list[BatchItem]
    submitted: int
    refused: int


def _labels(texts: list[str]) -> tuple[LabelRequirement, ...]:
    try:
        return tuple(LabelRequirement.parse(t) for t in texts)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


async def submit_batch(service: ControllerService, caller: Principal, batch: JobBatch
                       ) -> list[JobRecord | ServiceError]:
    """Admit and submit every job of ``batch`` for ``caller``; each one's job or error, in
    order. Raises what :meth:`ControllerService.submit_jobs` raises for the whole request
    (``LeaderElsewhere`` on a follower)."""
    outcomes: list[JobRecord | ServiceError | None] = [None] * len(batch.jobs)
    requests: list[JobRequest] = []
    places: list[int] = []
    for place, body in enumerate(batch.jobs):
        try:
            service.authorize(caller, "jobs.submit", body.tenant, body.namespace)
            requests.append(body.request(caller.name))
        except ServiceError as exc:
            outcomes[place] = exc
            continue
        places.append(place)
    for place, outcome in zip(places, await service.submit_jobs(requests), strict=True):
        outcomes[place] = outcome
    return [o for o in outcomes if o is not None]


__all__ = ["MAX_BATCH_JOBS", "BatchAnswer", "BatchItem", "JobBatch", "JobSubmission",
           "SiteBody", "submit_batch"]
