"""``AccessExtension``: the controller extension that authenticates principals by their API
tokens and authorizes every REST endpoint by their role bindings, and serves
``/v1/principals``.

Tokens are checked against the replicated records of the ``access`` state module at the
extension's clock: a malformed, unknown, revoked or expired token proves nothing (the API
answers 401). Decisions are :func:`quorus.tenant.tokens.decide` over the principal's bindings
and the tenant hierarchy of the ``tenant`` state module. The controller's own token stays
all-powerful: it is how the first administrator binds the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from quorus.core.auth import Principal, TokenAuth
from quorus.core.controller.service import ControllerService
from quorus.tenant.access.state import AccessStateModule
from quorus.tenant.model import DEFAULT_TENANT
from quorus.tenant.state import TenantStateModule
from quorus.tenant.tokens import TOKEN_PREFIX, Refused, Verified, decide, verify

#: The method of the principals the API tokens of this package prove.
API_TOKEN_METHOD = "api-token"


def access_module(service: ControllerService) -> AccessStateModule | None:
    found = service.state.modules.get(AccessStateModule.name)
    return found if isinstance(found, AccessStateModule) else None


def tenant_ancestors(service: ControllerService) -> Callable[[str], Sequence[str]]:
    """The ancestors function :func:`decide` needs, over the ``tenant`` state module (without
    it every tenant stands alone)."""
    found = service.state.modules.get(TenantStateModule.name)
    if isinstance(found, TenantStateModule):
        return found.chain
    return lambda tenant: (tenant,)


def unknown_tenant(service: ControllerService, tenant: str) -> str | None:
    """Why ``tenant`` is no place to serve: tenants are configured and it is not one of them
    (the ``default`` tenant always is). ``None`` without the ``tenant`` module."""
    found = service.state.modules.get(TenantStateModule.name)
    if not isinstance(found, TenantStateModule) or not found.tenants or \
            tenant == DEFAULT_TENANT or tenant in found.tenants:
        return None
    return (f"there is no tenant {tenant}: it was deleted or never configured (apply its "
            "TenantConfiguration with quorus tenant apply)")


class ApiTokenAuthenticator:
    """Principals by their API tokens (``qrs_<id>_<secret>``), read from the replicated
    records at ``clock()``."""

    method = API_TOKEN_METHOD

    def __init__(self, service: ControllerService, clock: Callable[[], float]) -> None:
        self._service = service
        self._clock = clock

    def authenticate(self, credentials: Mapping[str, str]) -> Principal | None:
        presented = credentials.get("token")
        module = access_module(self._service)
        if not isinstance(presented, str) or module is None:
            return None
        outcome = verify(presented, module.tokens, self._clock())
        if not isinstance(outcome, Verified) or module.principal(outcome.principal) is None:
            return None
        return Principal(outcome.principal, self.method)

    def why_refused(self, credentials: Mapping[str, str]) -> str | None:
        """Why an API token (``qrs_...``) proves nothing: malformed, unknown, not matching,
        revoked, expired, or its principal deleted. ``None`` for other tokens (the
        controller's own, say), which are not this method's to explain."""
        presented = credentials.get("token")
        module = access_module(self._service)
        if not isinstance(presented, str) or module is None or \
                not presented.startswith(TOKEN_PREFIX):
            return None
        outcome = verify(presented, module.tokens, self._clock())
        if isinstance(outcome, Refused):
            return outcome.reason
        if module.principal(outcome.principal) is None:
            return f"principal {outcome.principal!r} was deleted"
        return None


class AccessExtension:
    """The access package's controller extension (see the module docstring). It has no
    leader duties. ``clock`` gives the time tokens are checked at and commands carry."""

    name = "access"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._service: ControllerService | None = None

    def routes(self, service: ControllerService) -> Any:
        from quorus.tenant.access.routes import principal_router

        self._service = service
        return principal_router(service, clock=self.clock)

    async def lead(self, leadership: Any) -> None:
        return None

    def authenticator(self, service: ControllerService) -> ApiTokenAuthenticator:
        self._service = service
        return ApiTokenAuthenticator(service, self.clock)

    def authorize(self, principal: Principal, action: str, tenant: str | None,
                  namespace: str | None) -> str | None:
        """Why ``principal`` may not do ``action`` in ``tenant``/``namespace``, or ``None``.

        Agents register (``agents.register``) only in a tenant that exists once any is
        configured, whoever they are: the agents of a deleted tenant would otherwise serve
        every shared tenant (the controller ends their sessions when it deletes it)."""
        service = self._service
        if action == "agents.register" and tenant is not None and service is not None:
            missing = unknown_tenant(service, tenant)
            if missing is not None:
                return missing
        if principal.method == TokenAuth.method:
            return None  # the controller's own token
        module = access_module(service) if service is not None else None
        if service is None or module is None:
            return ("this controller has no access state module: install quorus-tenant on "
                    "every controller and restart them")
        return decide(principal.name, action, tenant, namespace, module.bindings,
                      tenant_ancestors(service))


__all__ = ["API_TOKEN_METHOD", "AccessExtension", "ApiTokenAuthenticator", "access_module",
           "tenant_ancestors", "unknown_tenant"]
