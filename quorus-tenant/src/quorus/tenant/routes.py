"""The tenant REST routes of a controller, under ``/v1/tenants``, and :class:`TenantExtension`,
the controller extension that serves them.

``PUT /v1/tenants`` takes TenantConfiguration YAML (``{"yaml": TEXT}``), checks it against the
current tenants before proposing anything (``400`` ``{"error":
"invalid-tenant-configuration", "message", "problems"}``), and the state module checks it again
when the command is applied (a refusal then, say a parent deleted meanwhile, is ``409``).
Listing, showing, the tree, effective configuration, usage and reports ask
``tenants.read``; applying, suspending, activating and deleting ask ``tenants.admin``, both in
the tenant concerned. Reads are linearizable unless ``consistent=false``; writes on a follower
are forwarded to the leader, as for jobs.
"""

from __future__ import annotations

import calendar
import csv
import io
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from quorus.core.controller.commands import Command
from quorus.core.controller.extension import request_principal as caller
from quorus.core.controller.service import (
    ControllerService,
    InvalidRequest,
    ResourceNotFound,
)
from quorus.tenant.commands import (
    ActivateTenant,
    ApplyTenants,
    DeleteTenant,
    SuspendTenant,
    TenantResult,
)
from quorus.tenant.config import TenantConfigError, merge, parse_configuration
from quorus.tenant.effective import UnknownScope, effective_config
from quorus.tenant.model import DEFAULT_TENANT, QUOTA_NAMES, Tenant, tenant_to_plain
from quorus.tenant.quotas import periods
from quorus.tenant.state import TenantStateModule

Consistent = Annotated[bool, Query(description="wait for a linearizable read")]
DATE = r"^\d{4}-\d{2}-\d{2}$"
#: ``day`` or ``month`` (the current UTC one), or a UTC day ``YYYY-MM-DD`` or month ``YYYY-MM``.
PERIOD = r"^(day|month|\d{4}-\d{2}(-\d{2})?)$"
#: Longest report, in days.
MAX_REPORT_DAYS = 400
REPORT_COLUMNS = ("date", "tenant", "submitted", "completed", "failed", "cancelled", "bytes",
                  "oversize")


class ApplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yaml: str = Field(min_length=1, max_length=4 * 1024 * 1024)
    file: str = Field(default="<tenants>", max_length=1024)


class SuspendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=1024)


def tenant_view(module: TenantStateModule, tenant: Tenant, at: float) -> dict[str, Any]:
    """A tenant as the API shows it: the record, its children and its usage now."""
    day, month = periods(at)
    view = tenant_to_plain(tenant)
    view["quotas"] = {QUOTA_NAMES[k]: v for k, v in view["quotas"].items()}
    view["children"] = module.children(tenant.id)
    view["running"] = module.ledger.running.get(tenant.id, 0)
    view["stored_bytes"] = module.ledger.stored.get(tenant.id, 0)
    view["usage"] = {"day": {"period": day, **module.ledger.usage(tenant.id, day).as_json()},
                     "month": {"period": month,
                               **module.ledger.usage(tenant.id, month).as_json()}}
    return view


def tenant_router(service: ControllerService, *, clock: Callable[[], float]) -> APIRouter:
    """The routes, reading and writing through ``service``."""
    router = APIRouter(tags=["tenants"])

    def module() -> TenantStateModule:
        return service.state_module(TenantStateModule, "quorus-tenant")

    async def read(consistent: bool = True) -> TenantStateModule:
        await service.consistent_read(consistent)
        return module()


    def known(tenants: TenantStateModule, tenant_id: str) -> Tenant:
        found = tenants.tenant(tenant_id)
        if found is None:
            raise ResourceNotFound(f"no tenant {tenant_id!r}: apply its TenantConfiguration "
                                   "(quorus tenant apply FILE)")
        return found

    async def propose(command: Command) -> TenantResult:
        return await service.propose_to_module(command, TenantResult)

    @router.put("/v1/tenants")
    async def apply_tenants(body: ApplyBody, request: Request) -> Any:
        """Add or replace tenants (and namespace settings) from TenantConfiguration YAML."""
        tenants = await read(True)
        try:
            parsed = parse_configuration(body.yaml, body.file)
            merge(tenants.tenants, parsed)
        except TenantConfigError as exc:
            return JSONResponse({"error": "invalid-tenant-configuration",
                                 "message": str(exc), "problems": list(exc.problems)}, 400)
        for tenant_id in dict.fromkeys([*(t.id for t in parsed.tenants),
                                        *(n.tenant for n in parsed.namespaces)]):
            service.authorize(caller(request), "tenants.admin", tenant_id, None)
        result = await propose(ApplyTenants(clock(), body.yaml, body.file,
                                            caller(request).name))
        return {"applied": list(result.tenants), "notices": list(parsed.notices)}

    @router.get("/v1/tenants")
    async def list_tenants(request: Request, consistent: Consistent = True) -> dict[str, Any]:
        """Every tenant the caller may read, by id."""
        tenants = await read(consistent)
        return {"tenants": [tenants.tenants[t].summary() for t in sorted(tenants.tenants)
                            if service.may(caller(request), "tenants.read", t, None)]}

    @router.get("/v1/tenants/tree")
    async def tenant_tree(request: Request, consistent: Consistent = True) -> dict[str, Any]:
        """The hierarchy; a tenant the caller may not read is left out and its readable
        descendants take its place."""
        def visible(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept: list[dict[str, Any]] = []
            for node in nodes:
                below = visible(node["children"])
                if service.may(caller(request), "tenants.read", node["id"], None):
                    kept.append({**node, "children": below})
                else:
                    kept.extend(below)
            return kept

        return {"tree": visible((await read(consistent)).tree())}

    @router.get("/v1/tenants/{tenant_id}")
    async def get_tenant(tenant_id: str, request: Request,
                         consistent: Consistent = True) -> dict[str, Any]:
        tenants = await read(consistent)
        service.authorize(caller(request), "tenants.read", tenant_id, None)
        return tenant_view(tenants, known(tenants, tenant_id), clock())

    async def change(tenant_id: str, command: Command, request: Request) -> dict[str, Any]:
        tenants = await read(True)
        service.authorize(caller(request), "tenants.admin", tenant_id, None)
        known(tenants, tenant_id)
        result = await propose(command)
        found = tenants.tenant(tenant_id)
        return {"tenant": tenant_id, "message": result.message,
                "status": str(found.status) if found is not None else "deleted"}

    @router.post("/v1/tenants/{tenant_id}/suspend")
    async def suspend_tenant(tenant_id: str, request: Request,
                             body: SuspendBody | None = None) -> dict[str, Any]:
        """Refuse the tenant's (and its descendants') new submissions; admitted jobs run."""
        reason = body.reason if body is not None else ""
        return await change(tenant_id, SuspendTenant(tenant_id, clock(), reason,
                                                          caller(request).name), request)

    @router.post("/v1/tenants/{tenant_id}/activate")
    async def activate_tenant(tenant_id: str, request: Request) -> dict[str, Any]:
        return await change(tenant_id, ActivateTenant(tenant_id, clock(),
                                                           caller(request).name), request)

    @router.delete("/v1/tenants/{tenant_id}")
    async def delete_tenant(tenant_id: str, request: Request) -> dict[str, Any]:
        """Remove a tenant without children or unfinished jobs (``409`` otherwise)."""
        return await change(tenant_id, DeleteTenant(tenant_id, clock(),
                                                         caller(request).name), request)

    @router.get("/v1/tenants/{tenant_id}/effective-config")
    async def tenant_effective_config(tenant_id: str, request: Request,
                                      namespace: str | None = None,
                                      consistent: Consistent = True) -> dict[str, Any]:
        """Every configuration value that applies to the tenant (in ``namespace``) and the
        layer it comes from."""
        tenants = await read(consistent)
        service.authorize(caller(request), "tenants.read", tenant_id, namespace)
        try:
            values = effective_config(tenants.tenants, tenant_id, namespace)
        except UnknownScope as exc:
            raise ResourceNotFound(str(exc)) from None
        return {"tenant": tenant_id, "namespace": namespace,
                "values": [v.as_json() for v in values]}

    def usage_scope(tenants: TenantStateModule, tenant_id: str, request: Request) -> None:
        service.authorize(caller(request), "tenants.read", tenant_id, None)
        if tenant_id != DEFAULT_TENANT:
            known(tenants, tenant_id)

    @router.get("/v1/tenants/{tenant_id}/usage")
    async def tenant_usage(tenant_id: str, request: Request,
                           period: Annotated[str, Query(pattern=PERIOD)] = "day",
                           consistent: Consistent = True) -> dict[str, Any]:
        """The tenant's usage (its descendants' included) in the current UTC day or month
        (``period`` ``day`` or ``month``), or in a given UTC day (``YYYY-MM-DD``) or month
        (``YYYY-MM``) while it is kept, with its quotas, what unfinished jobs hold now
        (``running``, ``reserved_bytes``) and the bytes its jobs ever wrote (``stored_bytes``,
        what ``maxStorageUsage`` counts)."""
        tenants = await read(consistent)
        usage_scope(tenants, tenant_id, request)
        day, month = periods(clock())
        current = day if period == "day" else month if period == "month" else \
            _period(period)
        found = tenants.tenant(tenant_id)
        return {"tenant": tenant_id, "period": current,
                "usage": tenants.ledger.usage(tenant_id, current).as_json(),
                "running": tenants.ledger.running.get(tenant_id, 0),
                "reserved_bytes": tenants.ledger.reserved.get(tenant_id, 0),
                "stored_bytes": tenants.ledger.stored.get(tenant_id, 0),
                "quotas": dict(found.quotas.items()) if found is not None else {}}

    @router.get("/v1/tenants/{tenant_id}/report")
    async def tenant_report(
        tenant_id: str, request: Request,
        start: Annotated[str, Query(alias="from", pattern=DATE)],
        end: Annotated[str, Query(alias="to", pattern=DATE)],
        format: Literal["json", "csv"] = "json",
        consistent: Consistent = True,
    ) -> Any:
        """Usage per UTC day from ``from`` to ``to`` (inclusive) of the tenant and each of its
        descendants (each row includes the row tenant's own descendants)."""
        tenants = await read(consistent)
        usage_scope(tenants, tenant_id, request)
        rows = report_rows(tenants, tenant_id, start, end)
        if format == "json":
            return {"tenant": tenant_id, "from": start, "to": end, "rows": rows}
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return PlainTextResponse(out.getvalue(), media_type="text/csv")

    return router


def report_rows(tenants: TenantStateModule, tenant_id: str, start: str, end: str
                ) -> list[dict[str, Any]]:
    """The report's rows: one per day and tenant (``tenant_id`` and its descendants)."""
    first, last = _day_number(start), _day_number(end)
    if last < first:
        raise InvalidRequest(f"the report ends ({end}) before it starts ({start})")
    if last - first >= MAX_REPORT_DAYS:
        raise InvalidRequest(f"a report covers at most {MAX_REPORT_DAYS} days, not "
                             f"{last - first + 1}: ask for a shorter range")
    scope = {t for t in tenants.tenants if tenant_id in tenants.chain(t)} | {tenant_id}
    return [{"date": day, "tenant": tenant, **usage.as_json()}
            for day, tenant, usage in tenants.ledger.daily(start, end) if tenant in scope]


def _period(text: str) -> str:
    """``text`` if it is a real UTC day ``YYYY-MM-DD`` or month ``YYYY-MM``."""
    try:
        time.strptime(text, "%Y-%m-%d" if len(text) == 10 else "%Y-%m")
    except ValueError:
        raise InvalidRequest(f"invalid period {text!r}: use day, month, a day YYYY-MM-DD or "
                             "a month YYYY-MM") from None
    return text


def _day_number(text: str) -> int:
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%d")) // 86400
    except ValueError:
        raise InvalidRequest(f"invalid date {text!r}: use YYYY-MM-DD") from None


class TenantExtension:
    """The tenant package's controller extension: the ``/v1/tenants`` routes. It has no leader
    duties: quotas and placement are enforced inside the state machine. ``clock`` gives the
    time commands carry."""

    name = "tenant"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def routes(self, service: ControllerService) -> Any:
        return tenant_router(service, clock=self.clock)

    async def lead(self, leadership: Any) -> None:
        return None


__all__ = ["ApplyBody", "TenantExtension", "report_rows", "tenant_router", "tenant_view"]
