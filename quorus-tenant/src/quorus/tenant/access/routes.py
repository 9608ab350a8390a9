"""The ``/v1/principals`` routes of a controller: create, list, show and delete principals,
issue and revoke their API tokens, bind and unbind their roles.

Every route asks ``principals.admin`` in the principal's tenant; binding (and unbinding) a role
asks it in the binding's tenant too, so no administrator grants more than they hold (a global
binding, tenant ``*``, needs a global administrator). A principal of a tenant the caller may
not even read does not exist for them (404). An issued token's text is in the ``201`` answer
once and nowhere else: the state keeps the SHA-256 of its secret.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from quorus.core.controller.commands import Command
from quorus.core.controller.extension import request_principal as caller
from quorus.core.controller.service import (
    ControllerService,
    InvalidRequest,
    ResourceNotFound,
)
from quorus.core.errors import ConfigurationError
from quorus.tenant.access.commands import (
    AccessResult,
    BindRole,
    CreatePrincipal,
    DeletePrincipal,
    IssueToken,
    RevokeToken,
    UnbindRole,
)
from quorus.tenant.access.state import (
    NAME_PATTERN,
    AccessStateModule,
    PrincipalKind,
    PrincipalRecord,
)
from quorus.tenant.model import DEFAULT_NAMESPACE, DEFAULT_TENANT
from quorus.tenant.state import TenantStateModule
from quorus.tenant.tokens import GLOBAL_TENANT, RoleBinding, issue_token, validate_binding

Consistent = Annotated[bool, Query(description="wait for a linearizable read")]
#: Longest token lifetime one request may ask for: ten years, in seconds.
MAX_TTL = 10 * 366 * 86400.0


class PrincipalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    tenant: str = Field(min_length=1, max_length=256)
    kind: PrincipalKind = PrincipalKind.USER


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_seconds: float | None = Field(default=None, gt=0, le=MAX_TTL)


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(min_length=1, max_length=64)
    tenant: str = Field(min_length=1, max_length=256)
    namespace: str | None = Field(default=None, min_length=1, max_length=256)


def principal_view(module: AccessStateModule, record: PrincipalRecord, now: float
                   ) -> dict[str, Any]:
    """A principal as the API shows it: never a token's secret or its hash."""
    tokens = [{"token_id": t.token_id, "created_at": t.created_at, "expires_at": t.expires_at,
               "revoked": t.revoked,
               "expired": t.expires_at is not None and now >= t.expires_at}
              for t in module.tokens_of(record.name)]
    roles = [{"role": b.role, "tenant": b.tenant, "namespace": b.namespace}
             for b in module.bindings_of(record.name)]
    return {**record.to_data(), "tokens": tokens, "roles": roles}


def principal_router(service: ControllerService, *, clock: Callable[[], float]) -> APIRouter:
    """The routes, reading and writing through ``service``."""
    router = APIRouter(tags=["principals"])

    def module() -> AccessStateModule:
        return service.state_module(AccessStateModule, "quorus-tenant")

    async def read(consistent: bool = True) -> AccessStateModule:
        await service.consistent_read(consistent)
        return module()


    def administered(request: Request, access: AccessStateModule, name: str
                     ) -> PrincipalRecord:
        """The principal ``name`` if the caller administers its tenant: 404 when the caller
        may not even read that tenant, 403 when they may read but not administer it."""
        record = access.principal(name)
        if record is None or not service.may(caller(request), "tenants.read", record.tenant):
            raise ResourceNotFound(f"no principal {name!r}")
        service.authorize(caller(request), "principals.admin", record.tenant)
        return record

    def known_place(tenant: str, namespace: str | None) -> None:
        """A 400 unless ``tenant`` (and ``namespace`` in it) is configured."""
        if tenant in (GLOBAL_TENANT, DEFAULT_TENANT):
            return
        tenants = service.state.modules.get(TenantStateModule.name)
        found = tenants.tenant(tenant) if isinstance(tenants, TenantStateModule) else None
        if found is None:
            raise InvalidRequest(f"no tenant {tenant!r}: apply its TenantConfiguration "
                                 "(quorus tenant apply FILE) first")
        if namespace is not None and namespace != DEFAULT_NAMESPACE and \
                namespace not in found.namespaces:
            known = ", ".join((DEFAULT_NAMESPACE, *found.namespaces))
            raise InvalidRequest(f"tenant {tenant!r} has no namespace {namespace!r} (it has "
                                 f"{known})")

    async def propose(command: Command) -> AccessResult:
        return await service.propose_to_module(command, AccessResult)

    def shown(name: str) -> dict[str, Any]:
        access = module()
        record = access.principal(name)
        if record is None:
            raise ResourceNotFound(f"no principal {name!r}")
        return principal_view(access, record, clock())

    @router.post("/v1/principals", status_code=201)
    async def create_principal(body: PrincipalBody, request: Request) -> dict[str, Any]:
        """A user or service account of a tenant, without tokens or roles yet."""
        await read(True)
        if body.tenant == GLOBAL_TENANT:
            raise InvalidRequest(f"a principal belongs to one tenant, not {GLOBAL_TENANT!r}: "
                                 f"create it in {DEFAULT_TENANT!r} and bind it globally")
        service.authorize(caller(request), "principals.admin", body.tenant)
        known_place(body.tenant, None)
        await propose(CreatePrincipal(body.name, str(body.kind), body.tenant, clock(),
                                      caller(request).name))
        return shown(body.name)

    @router.get("/v1/principals")
    async def list_principals(request: Request, tenant: str | None = None,
                              consistent: Consistent = True) -> dict[str, Any]:
        """The principals of the tenants the caller administers (of ``tenant`` only)."""
        access = await read(consistent)
        now = clock()
        return {"principals": [
            principal_view(access, record, now)
            for name, record in sorted(access.principals.items())
            if (tenant is None or record.tenant == tenant)
            and service.may(caller(request), "principals.admin", record.tenant)]}

    @router.get("/v1/principals/{name}")
    async def get_principal(name: str, request: Request,
                            consistent: Consistent = True) -> dict[str, Any]:
        access = await read(consistent)
        return principal_view(access, administered(request, access, name), clock())

    @router.delete("/v1/principals/{name}")
    async def delete_principal(name: str, request: Request) -> dict[str, Any]:
        """Remove a principal: its tokens stop working and its bindings go with it."""
        administered(request, await read(True), name)
        await propose(DeletePrincipal(name, clock(), caller(request).name))
        return {"deleted": name}

    @router.post("/v1/principals/{name}/tokens", status_code=201)
    async def issue(name: str, request: Request, body: TokenBody | None = None
                    ) -> dict[str, Any]:
        """A new API token: its text is in this answer and nowhere else, ever."""
        administered(request, await read(True), name)
        now = clock()
        ttl = body.ttl_seconds if body is not None else None
        try:
            text, record = issue_token(name, now=now, ttl=ttl)
        except ConfigurationError as exc:
            raise InvalidRequest(str(exc)) from None
        await propose(IssueToken(name, record.token_id, record.secret_sha256, now,
                                 record.expires_at, caller(request).name))
        return {"principal": name, "token_id": record.token_id, "token": text,
                "created_at": record.created_at, "expires_at": record.expires_at}

    @router.delete("/v1/principals/{name}/tokens/{token_id}")
    async def revoke(name: str, token_id: str, request: Request) -> dict[str, Any]:
        """Refuse the token from now on (it stays listed, revoked)."""
        administered(request, await read(True), name)
        result = await propose(RevokeToken(name, token_id, clock(), caller(request).name))
        return {"principal": name, "token_id": token_id, "revoked": True,
                "message": result.message}

    async def change_role(name: str, body: RoleBody, request: Request, bind: bool
                          ) -> dict[str, Any]:
        binding = RoleBinding(name, body.role, body.tenant, body.namespace)
        try:
            validate_binding(binding)
        except ConfigurationError as exc:
            raise InvalidRequest(str(exc)) from None
        administered(request, await read(True), name)
        service.authorize(caller(request), "principals.admin",
                          None if body.tenant == GLOBAL_TENANT else body.tenant,
                          body.namespace)
        if bind:
            known_place(body.tenant, body.namespace)
        command = (BindRole if bind else UnbindRole)(name, body.role, body.tenant, clock(),
                                                     body.namespace, caller(request).name)
        await propose(command)
        return shown(name)

    @router.post("/v1/principals/{name}/roles")
    async def bind_role(name: str, body: RoleBody, request: Request) -> dict[str, Any]:
        """Grant a role in a tenant (its namespaces and descendants) or one namespace."""
        return await change_role(name, body, request, True)

    @router.delete("/v1/principals/{name}/roles")
    async def unbind_role(name: str, body: RoleBody, request: Request) -> dict[str, Any]:
        """Take back a role binding given exactly as it was bound."""
        return await change_role(name, body, request, False)

    return router


__all__ = ["PrincipalBody", "RoleBody", "TokenBody", "principal_router", "principal_view"]
