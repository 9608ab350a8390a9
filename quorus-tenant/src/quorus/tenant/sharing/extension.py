"""``SharingExtension``: the controller extension that serves ``/v1/agreements`` — record,
list, show and revoke data-sharing agreements.

Recording and revoking an agreement ask ``tenants.admin`` in both tenants it names (a global
administrator, or the controller's own token, holds that everywhere). Reading asks
``tenants.read`` in one of them: an agreement naming no tenant the caller may read does not
exist for them (404) and is left out of listings. Times in requests are seconds since the
epoch or ISO 8601 (UTC unless they say otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from quorus.core.controller.commands import Command
from quorus.core.controller.extension import request_principal as caller
from quorus.core.controller.service import (
    ControllerService,
    InvalidRequest,
    ResourceNotFound,
)
from quorus.tenant.auditlog.extension import parse_time
from quorus.tenant.model import AgreementStatus, DataSharingAgreement
from quorus.tenant.sharing.commands import RecordAgreement, RevokeAgreement, SharingResult
from quorus.tenant.sharing.state import (
    ID_PATTERN,
    MAX_CLASSIFICATION,
    MAX_PURPOSE,
    SharingStateModule,
    agreement_problem,
    tenant_lookup,
)

Consistent = Annotated[bool, Query(description="wait for a linearizable read")]
#: A time in a request: seconds since the epoch, or ISO 8601 text.
Moment = float | str | None


class AgreementBody(BaseModel):
    """An agreement to record: ``provider`` shares with ``recipient`` (both ways if
    ``mutual``) from ``valid_from`` (default: now) until ``expires_at`` (default: until
    revoked)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN)
    provider: str = Field(min_length=1, max_length=256)
    recipient: str = Field(min_length=1, max_length=256)
    mutual: bool = False
    purpose: str = Field(default="", max_length=MAX_PURPOSE)
    classification: str | None = Field(default=None, min_length=1,
                                       max_length=MAX_CLASSIFICATION)
    valid_from: Moment = None
    expires_at: Moment = None


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=MAX_PURPOSE)


def moment(value: Moment, name: str) -> float | None:
    if value is None or isinstance(value, float | int):
        return None if value is None else float(value)
    return parse_time(value, name)


def sharing_router(service: ControllerService, *, clock: Callable[[], float]) -> APIRouter:
    """The routes, reading and writing through ``service``."""
    router = APIRouter(tags=["agreements"])

    def module() -> SharingStateModule:
        return service.state_module(SharingStateModule, "quorus-tenant")

    async def read(consistent: bool = True) -> SharingStateModule:
        await service.consistent_read(consistent)
        return module()

    def readable(request: Request, agreement: DataSharingAgreement) -> bool:
        return any(service.may(caller(request), "tenants.read", t, None)
                   for t in agreement.tenants)

    def found(request: Request, sharing: SharingStateModule, agreement_id: str
              ) -> DataSharingAgreement:
        agreement = sharing.agreement(agreement_id)
        if agreement is None or not readable(request, agreement):
            raise ResourceNotFound(f"no agreement {agreement_id!r}")
        return agreement

    def administer(request: Request, tenants: tuple[str, ...]) -> None:
        for tenant in dict.fromkeys(tenants):
            service.authorize(caller(request), "tenants.admin", tenant, None)

    async def propose(command: Command) -> SharingResult:
        return await service.propose_to_module(command, SharingResult)

    def shown(agreement_id: str) -> dict[str, Any]:
        agreement = module().agreement(agreement_id)
        if agreement is None:
            raise ResourceNotFound(f"no agreement {agreement_id!r}")
        return agreement.view(clock())

    @router.post("/v1/agreements", status_code=201)
    async def record_agreement(body: AgreementBody, request: Request) -> dict[str, Any]:
        """Record an agreement between two tenants (the same one again changes nothing)."""
        await read(True)
        administer(request, (body.provider, body.recipient))
        command = RecordAgreement(
            body.id, body.provider, body.recipient, clock(),
            moment(body.valid_from, "valid_from"), moment(body.expires_at, "expires_at"),
            body.mutual, body.purpose, body.classification, caller(request).name)
        lookup = tenant_lookup(service.state)
        problem = agreement_problem(command, lookup[0] if lookup is not None else None)
        if problem is not None:
            raise InvalidRequest(problem)
        await propose(command)
        return shown(body.id)

    @router.get("/v1/agreements")
    async def list_agreements(
        request: Request,
        tenant: str | None = None,
        status: Literal["pending", "active", "expired", "revoked"] | None = None,
        consistent: Consistent = True,
    ) -> dict[str, Any]:
        """The agreements naming a tenant the caller may read (naming ``tenant`` only; with
        ``status`` at this time only), in the order recorded."""
        sharing = await read(consistent)
        now = clock()
        wanted = AgreementStatus(status) if status is not None else None
        return {"agreements": [
            agreement.view(now) for agreement in sharing.agreements.values()
            if (tenant is None or agreement.names(tenant))
            and (wanted is None or agreement.status(now) is wanted)
            and readable(request, agreement)]}

    @router.get("/v1/agreements/{agreement_id}")
    async def get_agreement(agreement_id: str, request: Request,
                            consistent: Consistent = True) -> dict[str, Any]:
        sharing = await read(consistent)
        return found(request, sharing, agreement_id).view(clock())

    @router.post("/v1/agreements/{agreement_id}/revoke")
    async def revoke_agreement(agreement_id: str, request: Request,
                               body: RevokeBody | None = None) -> dict[str, Any]:
        """End an agreement at once: workflows naming it are refused from now on (it stays
        listed, revoked)."""
        agreement = found(request, await read(True), agreement_id)
        administer(request, agreement.tenants)
        reason = body.reason if body is not None else ""
        result = await propose(RevokeAgreement(agreement_id, clock(), caller(request).name,
                                               reason))
        return {**shown(agreement_id), "message": result.message}

    return router


class SharingExtension:
    """The data-sharing agreements' controller extension (see the module docstring). It has
    no leader duties. ``clock`` gives the time commands carry and statuses are shown at."""

    name = "sharing"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def routes(self, service: ControllerService) -> Any:
        return sharing_router(service, clock=self.clock)

    async def lead(self, leadership: Any) -> None:
        return None


__all__ = ["AgreementBody", "RevokeBody", "SharingExtension", "sharing_router"]
